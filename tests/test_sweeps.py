"""Sweeps as a grid axis (run folders, records, --list/--shard, conflicts), the ablation
report (tables, few-shot curves) and BiMoRS's ``method.keys`` ablation."""

from __future__ import annotations

import json
import shlex
import statistics

import pytest
import torch

from bimors.cli import main
from bimors.core.errors import ConfigError
from bimors.grid.runner import grid_cells
from bimors.grid.sweep import parse_sweeps, point_folder, point_overrides
from bimors.methods import build_method

from .conftest import CLASSNAMES
from .test_experiments import env  # noqa: F401  (env is a fixture)


# -- the sweep itself ---------------------------------------------------------------------------
def test_sweep_values_are_yaml_and_points_are_the_cartesian_product():
    sweep = parse_sweeps(["data.shots=1,2,4", "method.n_ctx=2,4", "train.lr=2e-3,0.01"])
    assert sweep.keys == ["data.shots", "method.n_ctx", "train.lr"]
    points = sweep.points()
    assert len(points) == 12 and points[0] == (
        ("data.shots", 1),
        ("method.n_ctx", 2),
        ("train.lr", 0.002),
    )
    assert [p[0][1] for p in points] == [1] * 4 + [2] * 4 + [4] * 4  # first key slowest
    assert point_folder(points[0]) == "shots=1,n_ctx=2,lr=0.002"
    assert point_overrides(points[0]) == ["data.shots=1", "method.n_ctx=2", "train.lr=0.002"]
    assert parse_sweeps([]).points() == [()]


def test_folder_names_are_short_unambiguous_and_safe():
    both = parse_sweeps(["data.seed_like=1,2", "train.seed_like=3"]).points()[0]
    assert point_folder(both) == "data.seed_like=1,train.seed_like=3"  # same last part: full
    enc = parse_sweeps(["captions.encoder=/models/tiny bert,org/Model-X"]).points()
    assert [point_folder(p) for p in enc] == ["encoder=models_tiny_bert", "encoder=org_Model-X"]
    long = parse_sweeps(["captions.encoder=/a/" + "x" * 80]).points()[0]
    assert len(point_folder(long)) < 60 and "/" not in point_folder(long)
    words = parse_sweeps(["method.keys=both,visual", "method.ctx_init='a photo'"]).points()
    assert point_overrides(words[0])[1] == 'method.ctx_init="a photo"'


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("data.shots=1,1", "more than once"),
        ("captions.encoder=a/b,a_b", "more than once"),
        ("data.shots=[1,2]", "give comma-separated values|not a single value"),
        ("data.shots=", "comma-separated values"),
        ("shots=1,2", "section.field"),
        ("train.seed=1,2", "--seeds"),
        ("data.dataset=a,b", "--dataset"),
        ("captions.store=//", "no usable run folder name"),
    ],
)
def test_bad_sweeps_are_refused_with_the_reason(item, match):
    with pytest.raises(ConfigError, match=match):
        parse_sweeps([item])


def test_a_key_given_twice_is_refused():
    with pytest.raises(ConfigError, match="given twice"):
        parse_sweeps(["data.shots=1", "data.shots=2"])


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_of_a_swept_grid_cover_every_cell_once(n):
    points = parse_sweeps(["data.shots=1,2,4", "method.n_ctx=2,4"]).points()
    everything = grid_cells(["a", "b"], ["coop", "bimors"], [1, 2], None, points)
    assert len(everything) == 2 * 2 * 6 * 2 == len(set(everything))
    parts = [
        grid_cells(["a", "b"], ["coop", "bimors"], [1, 2], (k, n), points) for k in range(1, n + 1)
    ]
    assert sorted(c for p in parts for c in p) == sorted(everything)
    assert sum(map(len, parts)) == len(everything)


# -- BiMoRS keys --------------------------------------------------------------------------------
def _logits(hf_backbone, params):
    torch.manual_seed(0)
    m = build_method("bimors", hf_backbone, CLASSNAMES, params, caption_dim=8)
    size = hf_backbone.preprocess.image_size
    gen = torch.Generator().manual_seed(1)
    feats = hf_backbone.encode_image(torch.randn(3, 3, size, size, generator=gen))
    caps = torch.randn(3, 8, generator=gen)
    with torch.no_grad():
        return m, m(feats, caps), m.conditioned_context(feats, caps), feats, caps


def test_keys_both_is_todays_bimors_and_visual_or_caption_change_the_logits(hf_backbone):
    _, today, *_ = _logits(hf_backbone, {})
    _, both, *_ = _logits(hf_backbone, {"keys": "both"})
    assert torch.equal(today, both)  # bit-identical
    m, visual, ctx, feats, caps = _logits(hf_backbone, {"keys": "visual"})
    _, caption, *_ = _logits(hf_backbone, {"keys": "caption"})
    assert not torch.allclose(visual, today) and not torch.allclose(caption, today)
    assert not torch.allclose(visual, caption)
    # visual: one key, the meta-net's mean over tokens; the caption is not looked at
    with torch.no_grad():
        key = m.meta_net(feats.tokens).mean(dim=1, keepdim=True)
        q = m.ctx.unsqueeze(0).expand(3, -1, -1)
        torch.testing.assert_close(ctx, m.cross_attn(q, key), atol=0, rtol=0)
        torch.testing.assert_close(m.conditioned_context(feats, caps * 0 + 5), ctx)
    # the dropped key's module is built but frozen: it gets no gradient
    assert not any(p.requires_grad for p in m.caption_proj.parameters())
    mc, *_ = _logits(hf_backbone, {"keys": "caption"})
    assert not any(p.requires_grad for p in mc.meta_net.parameters())
    assert all(p.requires_grad for p in mc.caption_proj.parameters())


def test_a_bad_keys_value_is_refused(hf_backbone):
    with pytest.raises(ConfigError, match=r"method.bimors.keys: 'image'.*'both', 'visual'"):
        build_method("bimors", hf_backbone, CLASSNAMES, {"keys": "image"}, caption_dim=8)


# -- the grid on the synthetic scenes ----------------------------------------------------------
def _sets(env, drop=("data.shots=",)):  # noqa: F811
    """The env's overrides less those starting with ``drop`` (swept here), 1 epoch."""
    pairs = [env["sets"][i + 1] for i in range(0, len(env["sets"]), 2)]
    keep = [s for s in pairs if not s.startswith(drop)] + ["train.epochs=1"]
    return [x for s in keep for x in ("--set", s)]


def _args(env, out, methods=("coop",), *extra, random_ctx=True):  # noqa: F811
    return [
        "run",
        "--protocol",
        "base2new",
        "--method",
        *methods,
        "--dataset",
        "synthetic",
        "--root",
        f"synthetic={env['scenes']}",
        "--seeds",
        "1",
        "2",
        "--out",
        str(out),
        "--store",
        f"synthetic={env['store']}",
        *_sets(env),
        *(["--set", "method.ctx_init="] if random_ctx else []),
        "--sweep",
        "data.shots=1,2",
        "--sweep",
        "method.n_ctx=2,4",
        *extra,
    ]


def test_a_shots_by_n_ctx_sweep_runs_resumes_and_reports(env, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "runs"
    assert main(["-q", *_args(env, out)]) == 0
    runs = sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("results.jsonl"))
    want = [
        f"base2new/synthetic/coop/shots={s},n_ctx={n}/seed{k}"
        for s in (1, 2)
        for n in (2, 4)
        for k in (1, 2)
    ]
    assert runs == sorted(want)
    records = []
    for run in runs:
        rows = [json.loads(x) for x in (out / run / "results.jsonl").read_text().splitlines()]
        cfg = json.loads(
            json.dumps(__import__("yaml").safe_load((out / run / "config.yaml").read_text()))
        )
        shots, n_ctx = (int(x.split("=")[1]) for x in run.split("/")[3].split(","))
        assert cfg["data"]["shots"] == shots and cfg["method"]["n_ctx"] == n_ctx
        fewshot = json.loads((out / run / "fewshot.json").read_text())
        assert all(r["sweep"] == {"data.shots": shots, "method.n_ctx": n_ctx} for r in rows)
        records += rows
        assert len(fewshot["train"]) == 3 * shots  # 3 base classes: the swept shots apply
    # a rerun skips every finished run: nothing is rewritten
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("results.jsonl")}
    assert main(["-q", *_args(env, out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("results.jsonl")} == stamps
    # the report: an ablation table with one row per (shots, n_ctx), means over the seeds
    md = (out / "report.md").read_text()
    assert "## Ablation over data.shots × method.n_ctx" in md
    assert "| Method | data.shots | method.n_ctx | synthetic Base |" in md
    lines = [x for x in md.splitlines() if x.startswith("| CoOp |")]
    assert [x.split(" | ")[1:3] for x in lines] == [["1", "2"], ["1", "4"], ["2", "2"], ["2", "4"]]
    for line in lines:
        shots, n_ctx = int(line.split(" | ")[1]), int(line.split(" | ")[2])
        base = [
            r["accuracy"]
            for r in records
            if r["split"] == "base" and r["sweep"] == {"data.shots": shots, "method.n_ctx": n_ctx}
        ]
        assert len(base) == 2
        mean, std = statistics.fmean(base), statistics.stdev(base)
        assert line.split(" | ")[3].replace("**", "") == f"{mean:.2f} ± {std:.2f}"
    assert "## Base-to-new generalisation\n" not in md  # no main table: every run is swept
    png = out / "fewshot_base2new_data-shots_method-n_ctx.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"]({png.name})" in md
    tex = (out / "report.tex").read_text()
    assert r"Ablation over data.shots $\times$ method.n\_ctx" in tex
    csv = (out / "ablation.csv").read_text().splitlines()
    assert len(csv) == 1 + 4 * 3  # header + (4 points) x (base, new, hm)
    per_run = sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("*_confusion.csv"))
    assert "per_run/base2new/synthetic/coop/shots=2,n_ctx=4/seed2" in per_run

    # --list: every run once, each command runs exactly its run
    capsys.readouterr()
    assert main(["-q", *_args(env, out, ("coop",), "--list")]) == 0
    listed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert sorted(e["run"] for e in listed) == sorted(str(out / r) for r in want)
    entry = listed[5]
    assert entry["sweep"] == {"data.shots": 2, "method.n_ctx": 2} and entry["seed"] == 2
    assert "--sweep data.shots=2 --sweep method.n_ctx=2" in entry["command"]
    shard_runs = []
    for k in (1, 2, 3):
        assert main(["-q", *_args(env, out, ("coop",), "--list", "--shard", f"{k}/3")]) == 0
        shard_runs += [json.loads(x)["run"] for x in capsys.readouterr().out.splitlines()]
    assert sorted(shard_runs) == sorted(e["run"] for e in listed)
    # the listed command, run in a fresh folder, makes exactly that one run
    fresh = tmp_path / "fresh"
    cmd = shlex.split(entry["command"].replace(str(out), str(fresh)))[1:]
    assert main(["-q", *cmd]) == 0
    made = [p.parent for p in fresh.rglob("results.jsonl")]
    assert [p.relative_to(fresh).as_posix() for p in made] == [
        "base2new/synthetic/coop/shots=2,n_ctx=2/seed2"
    ]


def test_conflicting_or_inapplicable_sweeps_are_refused(env, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "runs"
    capsys.readouterr()
    assert main(["-q", *_args(env, out, ("coop",), "--set", "data.shots=4")]) == 2
    err = capsys.readouterr().err
    assert "data.shots=4 (config file or --set) conflicts with --sweep data.shots" in err
    assert main(["-q", *_args(env, out, ("coop",), "--set", "data.shots=4", "--list")]) == 2
    assert "conflicts with --sweep data.shots" in capsys.readouterr().err
    assert main(["-q", *_args(env, out, ("zeroshot", "coop"))]) == 2
    err = capsys.readouterr().err
    assert "--sweep method.n_ctx: method 'zeroshot' has no option 'n_ctx'" in err
    assert main(["-q", *_args(env, out, ("zeroshot",), "--list")]) == 2  # --list checks too
    assert main(["-q", *_args(env, out, ("bimors",), random_ctx=False)]) == 2  # a phrase
    assert "add --set method.ctx_init=" in capsys.readouterr().err
    assert not out.exists()  # refused before any work


def test_an_encoder_sweep_captions_into_one_store_per_encoder(env, tmp_path):  # noqa: F811
    import shutil

    from bimors.demo.tiny import minilm_path, write_bert

    root = tmp_path / "synthetic"
    shutil.copytree(env["scenes"], root, ignore=shutil.ignore_patterns(".bimors"))
    bert = write_bert(tmp_path / "bert-tiny")
    out = tmp_path / "runs"
    sets = _sets(env, drop=("data.shots=", "captions.encoder="))
    args = [
        "-q",
        "run",
        "--protocol",
        "base2new",
        "--method",
        "bimors",
        "--dataset",
        "synthetic",
        "--root",
        f"synthetic={root}",
        "--seeds",
        "1",
        "--out",
        str(out),
        *sets,
        "--set",
        "data.shots=1",
        "--sweep",
        "method.keys=visual,caption",
        "--sweep",
        f"captions.encoder={minilm_path()},{bert}",
    ]
    assert main([*args, "--store", f"synthetic={env['store']}"]) == 2  # one store for two
    assert main([*args, "--caption"]) == 0
    stores = sorted(p.name for p in (root / ".bimors" / "captions").glob("*.sqlite"))
    assert len(stores) == 2 and any("bert-tiny" in s for s in stores)
    runs = sorted(p.parent for p in out.rglob("results.jsonl"))
    assert len(runs) == 4
    for run in runs:
        record = json.loads((run / "results.jsonl").read_text().splitlines()[0])
        encoder = record["sweep"]["captions.encoder"]
        assert (run.parent.name.split(",")[0], encoder in (str(minilm_path()), str(bert))) == (
            f"keys={record['sweep']['method.keys']}",
            True,
        )
        meta = json.loads((run / "meta.json").read_text())
        assert meta["sweep"] == record["sweep"]


def test_transfer_ablation_rows_average_the_targets_per_point():
    from bimors.report.ablation import ablation_markdown, ablation_tables

    def rec(n_ctx, seed, dataset, acc):
        return {
            "protocol": "cross_dataset",
            "method": "coop",
            "train_dataset": "a",
            "dataset": dataset,
            "split": "all",
            "seed": seed,
            "accuracy": acc,
            "sweep": {"method.n_ctx": n_ctx},
        }

    records = [
        rec(n, s, d, 10.0 * n + s + (5 if d == "c" else 0))
        for n in (8, 2)
        for s in (1, 2)
        for d in ("a", "b", "c")
    ]
    records.append({**rec(2, 1, "a", 99.0), "sweep": None})  # not swept: not in the ablation
    (table,) = ablation_tables(records)
    assert table.groups == ["a", "b", "c", "average"] and table.source == "a"
    assert [r.point for r in table.rows] == [{"method.n_ctx": 2}, {"method.n_ctx": 8}]
    avg = table.rows[0].cells[("average", "acc")]
    assert avg.mean == pytest.approx(statistics.fmean([21, 26, 22, 27]))  # targets b, c only
    md = ablation_markdown(table)
    assert "| Method | method.n_ctx | a (source) | b | c | Average |" in md
    assert "| CoOp | 8 | **81.50** ± 0.71 |" in md  # the best of its column


def test_the_ablation_demo_commands_list_their_grids(tmp_path, capsys):
    from bimors.demo.ablation import ablation_commands

    capsys.readouterr()
    prepare, *runs, report = ablation_commands(tmp_path)
    assert not any(tmp_path.iterdir())  # listing the commands writes nothing
    assert report == f"bimors report {tmp_path / 'runs'}"
    assert main(["-q", *shlex.split(prepare)[1:]]) == 0  # the first command writes the inputs
    assert (tmp_path / "models" / "clip-hf").is_dir() and (tmp_path / "data").is_dir()
    capsys.readouterr()
    counts = []
    for cmd in runs:
        assert main(["-q", *shlex.split(cmd)[1:], "--list"]) == 0
        counts.append(len(capsys.readouterr().out.splitlines()))
    assert counts == [2 * 3 * 2 * 2, 3 * 2 * 2 * 2]  # methods x points x seeds
