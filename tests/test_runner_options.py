"""What the runner hands every dataset and run: data options for targets, the DG label-order
check, the few-shot sampler, and presets resolved per protocol and dataset."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from bimors.cli import main
from bimors.data.synthetic import SyntheticScenes
from bimors.grid.runner import config_for


def _sets(tiny_dir, *extra):
    sets = [
        "backbone.adapter=hf",
        f"backbone.model={tiny_dir / 'clip-hf'}",
        "train.device=cpu",
        "data.shots=2",
        "data.num_workers=0",
        *extra,
    ]
    return [x for s in sets for x in ("--set", s)]


@pytest.fixture(scope="module")
def target(scenes, tmp_path_factory):
    """The scenes again as an ``imagefolder`` target (classes in sorted folder order)."""
    root = tmp_path_factory.mktemp("target") / "folder"
    shutil.copytree(scenes, root, ignore=shutil.ignore_patterns("split_*", ".bimors"))
    return root


def _grid(protocol, scenes, target, out, *extra):
    return [
        "-q",
        "run",
        "--protocol",
        protocol,
        "--method",
        "zeroshot",
        "--dataset",
        "synthetic",
        "--targets",
        "imagefolder",
        "--seeds",
        "1",
        "--root",
        f"synthetic={scenes}",
        "--root",
        f"imagefolder={target}",
        "--out",
        str(out),
        *extra,
    ]


def test_transfer_targets_get_the_runs_exclude_list(tiny_dir, scenes, target, tmp_path):
    from bimors.data.imagefolder import ImageFolder

    source_test = SyntheticScenes(scenes).split().test
    target_test = ImageFolder(target).split().test
    shared = {s.relpath for s in source_test} & {s.relpath for s in target_test}
    both, only_source, only_target = sorted(shared)[:3]  # the copy has the same relpaths
    exclude = tmp_path / "bad.txt"
    exclude.write_text(f"{both}\nsynthetic:{only_source}\nimagefolder:{only_target}\n")
    out = tmp_path / "runs"
    argv = _grid("cross_dataset", scenes, target, out, *_sets(tiny_dir, f"data.exclude={exclude}"))
    assert main(argv) == 0
    run = out / "cross_dataset" / "synthetic" / "zeroshot" / "seed1"
    data = json.loads((run / "data.json").read_text())
    assert data["synthetic"]["excluded"] == sorted([both, only_source])
    assert data["imagefolder"]["excluded"] == sorted([both, only_target])
    recs = {
        r["dataset"]: r for r in map(json.loads, (run / "results.jsonl").read_text().splitlines())
    }
    assert recs["imagefolder"]["total"] == len(target_test) - 2
    assert recs["synthetic"]["total"] == len(source_test) - 2
    # the record says which sampler and preset layers the run used
    assert recs["synthetic"]["fewshot_sampler"] == "dassl"
    assert recs["synthetic"]["preset"] == "zeroshot"
    assert json.loads((run / "fewshot.json").read_text())["sampler"] == "dassl"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["preset"]["protocol"] == "cross_dataset" and cfg["preset"]["layers"] == ["zeroshot"]


def test_an_exclude_entry_of_no_dataset_is_refused(tiny_dir, scenes, target, tmp_path, capsys):
    exclude = tmp_path / "bad.txt"
    exclude.write_text("nowhere/missing.png\nimagefolder:river/nope.png\n")
    argv = _grid("cross_dataset", scenes, target, tmp_path / "runs")
    assert main(argv + _sets(tiny_dir, f"data.exclude={exclude}")) == 2
    err = capsys.readouterr().err
    assert "2 file(s)" in err and "synthetic, imagefolder" in err


def test_the_runner_checks_the_domain_generalisation_label_order(
    tiny_dir, scenes, target, tmp_path, capsys
):
    assert SyntheticScenes(scenes).split().classnames != sorted(
        SyntheticScenes(scenes).split().classnames
    )  # the target lists the same classes in another order
    assert main(_grid("domain_gen", scenes, target, tmp_path / "runs", *_sets(tiny_dir))) == 2
    err = capsys.readouterr().err
    assert "same label order" in err and "imagefolder" in err
    assert not (tmp_path / "runs" / "domain_gen").exists()


def _cfg(method, dataset="patternnet", protocol=None):
    return config_for(method, dataset, "/data/x", 1, None, [], protocol)


@pytest.mark.parametrize("protocol", ["cross_dataset", "domain_gen"])
def test_maple_follows_its_official_transfer_config(protocol):
    cfg = _cfg("maple", protocol=protocol)
    assert (cfg.train.lr, cfg.train.epochs, cfg.method_params.prompt_depth) == (0.0026, 2, 3)
    assert cfg.method_params.n_ctx == 2 and cfg.train.batch_size == 4
    assert cfg.preset.layers == ["maple", f"maple/protocols/{protocol}"]
    b2n = _cfg("maple", protocol="base2new")
    assert (b2n.train.lr, b2n.train.epochs, b2n.method_params.prompt_depth) == (0.0035, 5, 9)
    assert b2n.preset.layers == ["maple"]


def test_prograd_follows_its_16_shot_schedule_and_eurosat_settings():
    cfg = _cfg("prograd")
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.batch_size) == (200, 0.002, 32)
    assert cfg.method_params.grad_lambda == 1.0
    euro = _cfg("prograd", "eurosat")
    assert euro.method_params.grad_lambda == 0.8
    assert euro.method_params.template == "a centered satellite photo of {}."
    assert euro.method_params.ctx_init == "a centered satellite photo of"
    assert euro.preset.layers == ["prograd", "prograd/datasets/eurosat"]


@pytest.mark.parametrize("method", ["zeroshot", "clip_adapter", "linear_probe", "prograd"])
def test_eurosat_gets_its_official_template(method):
    assert _cfg(method, "eurosat").method_params.template == "a centered satellite photo of {}."
    assert _cfg(method, "patternnet").method_params.template == "a photo of a {}."


def test_user_settings_win_over_every_preset_layer():
    cfg = config_for("maple", "patternnet", "/d", 1, None, ["train.lr=0.5"], "cross_dataset")
    assert cfg.train.lr == 0.5 and cfg.train.epochs == 2


@pytest.mark.parametrize(
    "method",
    ["applenet", "bimors", "clip_adapter", "cocoop", "coop", "maple", "prograd", "taskres"],
)
def test_paper_presets_use_the_dassl_sampler(method):
    assert _cfg(method).data.fewshot_sampler == "dassl"


def test_list_shows_preset_variants_and_the_resolved_preset(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "maple: also protocols/cross_dataset, protocols/domain_gen" in out
    (prograd,) = [line for line in out.splitlines() if line.strip().startswith("prograd: also")]
    # its EuroSAT layer, and the few-shot protocol's per-shot layers (CoOp's epochs per shot)
    assert "datasets/eurosat" in prograd and "protocols/fewshot/shots/1" in prograd
    assert main(["list", "--preset", "maple", "--protocol", "domain_gen"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# preset layers: maple + maple/protocols/domain_gen")
    shown = yaml.safe_load(out)
    assert shown["train"]["lr"] == 0.0026 and shown["method"]["prompt_depth"] == 3
