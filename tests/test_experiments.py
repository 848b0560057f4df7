"""End-to-end experiment commands on synthetic scenes and tiny models: train, eval, run,
report, predict, with skip/resume/refusal behaviour."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from bimors.cli import main


@pytest.fixture(scope="session")
def env(tiny_dir, scenes, tmp_path_factory):
    """Caption store for the scenes, and the overrides that point a run at the tiny models."""
    from bimors.captions.captioner import Captioner
    from bimors.captions.encoder import CaptionEncoder
    from bimors.captions.job import caption_images
    from bimors.data.synthetic import SyntheticScenes
    from bimors.demo.tiny import minilm_path
    from bimors.run.config import resolve_config

    split = SyntheticScenes(scenes).split()
    relpaths = [s.relpath for p in (split.train, split.val, split.test) for s in p]
    store = tmp_path_factory.mktemp("store") / "captions.sqlite"
    caption_images(
        scenes,
        relpaths,
        store,
        # the caption settings of the BiMoRS preset, so the bimors runs accept the store
        Captioner.from_pretrained(
            str(tiny_dir / "blip2"), resolve_config("bimors").captions.generation()
        ),
        CaptionEncoder.from_pretrained(str(minilm_path())),
        batch_size=24,
        progress=False,
    ).close()
    sets = [
        "backbone.adapter=hf",
        f"backbone.model={tiny_dir / 'clip-hf'}",
        f"captions.captioner={tiny_dir / 'blip2'}",
        f"captions.encoder={minilm_path()}",
        "train.device=cpu",
        "train.epochs=2",
        "train.batch_size=4",
        "data.shots=4",
        "data.num_workers=0",
    ]
    return {"scenes": scenes, "store": store, "sets": [x for s in sets for x in ("--set", s)]}


def _train(env, out, method="bimors", extra=()):
    return main(
        [
            "-q",
            "train",
            "--method",
            method,
            "--dataset",
            "synthetic",
            "--root",
            str(env["scenes"]),
            "--out",
            str(out),
            "--store",
            f"synthetic={env['store']}",
            *env["sets"],
            *extra,
        ]
    )


def _records(path):
    return [json.loads(x) for x in (path / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def trained_run(env, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "bimors-run"
    assert _train(env, out) == 0
    return out


def test_train_writes_a_complete_run_folder(trained_run, isolated_feature_cache):
    names = {p.name for p in trained_run.iterdir()}
    assert {
        "meta.json",
        "config.yaml",
        "fewshot.json",
        "data.json",
        "metrics.jsonl",
        "checkpoint.pt",
        "results.jsonl",
        "tb",
    } <= names
    assert "last.pt" not in names
    meta = json.loads((trained_run / "meta.json").read_text())
    assert (
        meta["status"] == "done" and meta["method"] == "bimors" and meta["protocol"] == "base2new"
    )
    cfg = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert cfg["method"]["name"] == "bimors" and cfg["train"]["epochs"] == 2
    fewshot = json.loads((trained_run / "fewshot.json").read_text())
    assert len(fewshot["train"]) == 3 * 4
    data = json.loads((trained_run / "data.json").read_text())["synthetic"]
    split_file = Path(data["split_file"])
    assert split_file.is_file() and data["excluded"] == []
    assert data["split_sha256"] == hashlib.sha256(split_file.read_bytes()).hexdigest()
    rows = [json.loads(x) for x in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    recs = _records(trained_run)
    assert [r["split"] for r in recs] == ["base", "new"]
    assert all(r["selection"] == "last" and r["seed"] == 1 for r in recs)
    # evaluation read cached features (the default), training ran the image encoder
    assert all(r["image_features"] == "cache" for r in recs)
    assert all(r["train_image_features"] == "encoder" for r in recs)
    assert any(isolated_feature_cache.rglob("*.pooled.safetensors"))
    assert any(p.name.startswith("events.out.tfevents") for p in (trained_run / "tb").iterdir())


def test_records_carry_the_confusion_and_tensorboard_the_final_accuracies(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from bimors.report.aggregate import harmonic_mean

    recs = {r["split"]: r for r in _records(trained_run)}
    for r in recs.values():
        conf = r["confusion"]
        assert len(conf) == len(r["class_names"]) == len(conf[0])
        assert sum(map(sum, conf)) == r["total"]
        assert sum(conf[i][i] for i in range(len(conf))) == r["correct"]
    events = EventAccumulator(str(trained_run / "tb"))
    events.Reload()
    final = {tag: events.Scalars(tag)[-1] for tag in events.Tags()["scalars"] if "test/" in tag}
    assert set(final) == {"test/synthetic/base", "test/synthetic/new", "test/synthetic/hm"}
    assert final["test/synthetic/base"].value == pytest.approx(recs["base"]["accuracy"])
    assert final["test/synthetic/new"].value == pytest.approx(recs["new"]["accuracy"])
    hm = harmonic_mean(recs["base"]["accuracy"], recs["new"]["accuracy"])
    assert final["test/synthetic/hm"].value == pytest.approx(hm)
    assert all(e.step == 2 for e in final.values())  # the last of train.epochs=2


def test_rerun_skips_and_other_config_is_refused(env, trained_run, capsys):
    before = (trained_run / "results.jsonl").read_text()
    mtime = (trained_run / "checkpoint.pt").stat().st_mtime_ns
    assert _train(env, trained_run) == 0
    assert (trained_run / "checkpoint.pt").stat().st_mtime_ns == mtime
    assert (trained_run / "results.jsonl").read_text() == before
    capsys.readouterr()
    assert _train(env, trained_run, extra=["--set", "train.lr=0.5"]) == 2
    assert "was run with a different config (train.lr); pass --overwrite" in capsys.readouterr().err
    # where or how fast it runs is no difference: the finished run is skipped
    assert _train(env, trained_run, extra=["--set", "data.num_workers=1"]) == 0
    assert (trained_run / "checkpoint.pt").stat().st_mtime_ns == mtime
    assert (trained_run / "checkpoint.pt").stat().st_mtime_ns == mtime
    assert _train(env, trained_run, method="coop") == 2
    assert "holds method 'bimors', not 'coop'" in capsys.readouterr().err


def test_eval_reproduces_the_run_records_and_refuses_other_classes(
    env, trained_run, tmp_path, capsys
):
    recs = {r["split"]: r for r in _records(trained_run)}
    assert main(["-q", "eval", str(trained_run), "--store", f"synthetic={env['store']}"]) == 0
    again = {r["split"]: r for r in _records(trained_run)}
    assert again["base"]["accuracy"] == recs["base"]["accuracy"]
    assert again["new"]["accuracy"] == recs["new"]["accuracy"]
    # a dataset folder with other classes under the same name is refused for the trained split
    other = tmp_path / "synthetic"
    shutil.copytree(env["scenes"], other)
    for saved in other.glob("split_bimors*.json"):
        saved.unlink()
    shutil.rmtree(other / "river")
    capsys.readouterr()
    rc = main(
        [
            "-q",
            "eval",
            str(trained_run),
            "--root",
            str(other),
            "--split",
            "base",
            "--store",
            f"synthetic={env['store']}",
        ]
    )
    assert rc == 2
    assert "differ from the checkpoint's" in capsys.readouterr().err


def test_run_grid_report_and_skip(env, tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = [
        "-q",
        "run",
        "--protocol",
        "base2new",
        "--method",
        "zeroshot",
        "coop",
        "--dataset",
        "synthetic",
        "--seeds",
        "1",
        "2",
        "--root",
        str(env["scenes"]),
        "--out",
        str(runs),
        *env["sets"],
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for m in ("zeroshot", "coop"):
        for s in (1, 2):
            assert (runs / "base2new" / "synthetic" / m / f"seed{s}" / "results.jsonl").is_file()
    assert "| CoOp | " in out and "| Method | synthetic Base | synthetic New | synthetic H |" in out
    report = (runs / "report.md").read_text()
    assert "## Base-to-new generalisation" in report
    assert "2 seeds per cell" in report  # mean ± std over the two seeds
    assert (
        (runs / "report.csv")
        .read_text()
        .startswith("protocol,train_dataset,method,dataset,metric,mean,std,seeds,datasets")
    )
    assert r"\begin{tabular}" in (runs / "report.tex").read_text()
    assert (runs / "base2new.png").is_file()
    assert (runs / "per_run" / "base2new" / "synthetic" / "coop" / "seed2").is_dir()
    stamp = (
        (runs / "base2new" / "synthetic" / "coop" / "seed1" / "checkpoint.pt").stat().st_mtime_ns
    )
    assert main(argv) == 0  # everything finished: skipped
    assert (
        runs / "base2new" / "synthetic" / "coop" / "seed1" / "checkpoint.pt"
    ).stat().st_mtime_ns == stamp


def test_run_with_caption_fills_the_default_store_then_trains(env, tmp_path, capsys):
    from bimors.captions.provenance import default_store_path
    from bimors.captions.store import CaptionStore
    from bimors.demo.tiny import minilm_path

    scenes = tmp_path / "synthetic"
    shutil.copytree(env["scenes"], scenes)
    runs = tmp_path / "runs"
    argv = ["-q", "run", "--protocol", "base2new", "--method", "bimors", "--dataset",
            "synthetic", "--seeds", "1", "--root", str(scenes), "--out", str(runs),
            *env["sets"], "--set", "train.epochs=1"]  # fmt: skip
    assert main(argv) == 2  # no store yet and no --caption: refused, naming the command
    assert "make it with: bimors caption --dataset synthetic" in capsys.readouterr().err
    assert main([*argv, "--caption"]) == 0
    blip2 = env["sets"][5].split("=", 1)[1]  # captions.captioner=<tiny BLIP-2>
    store_path = default_store_path(scenes, blip2, str(minilm_path()))
    from bimors.captions.scope import Cell, plan_images
    from bimors.data.synthetic import SyntheticScenes
    from bimors.run.config import resolve_config

    cfg = resolve_config("bimors", overrides=env["sets"][1::2], protocol="base2new")
    cell = Cell(1, cfg.data.shots, cfg.data.fewshot_sampler)
    planned = plan_images("base2new", SyntheticScenes(scenes), [], [cell])["synthetic"]
    with CaptionStore(store_path, readonly=True) as store:  # only what the run reads (issue 12)
        assert store.keys() == planned.relpaths()
        assert len(store) < len(list(scenes.glob("*/*.png")))
    assert (runs / "base2new" / "synthetic" / "bimors" / "seed1" / "results.jsonl").is_file()
    stamp = store_path.stat().st_mtime_ns
    assert main([*argv, "--caption"]) == 0  # complete store and finished run: nothing redone
    assert store_path.stat().st_mtime_ns == stamp


def test_predict_cli_and_api(env, trained_run, capsys):
    from bimors.run.predict import Predictor

    images = sorted((env["scenes"] / "river").glob("*.png"))[:2]
    assert main(["-q", "predict", str(trained_run), *map(str, images), "--topk", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "prompt names (reference): river, forest, runway"
    out = out[1:]
    assert out[0] == str(images[0]) and len(out) == 6
    assert out[1].strip().endswith(("river", "forest", "runway"))
    predictor = Predictor.from_run(trained_run, device="cpu")
    top = predictor.predict([str(images[0])], topk=3)[0]
    assert top[0][0] in predictor.classnames and len(top) == 3
    assert sum(p for _, p in predictor.predict([str(images[0])], topk=3)[0]) <= 1.0 + 1e-6
    # captions from the store give the same prediction as captions made on the fly
    from_store = Predictor.from_run(
        trained_run, device="cpu", store=env["store"], store_root=env["scenes"]
    )
    got = from_store.predict([str(images[0])], topk=3)[0]
    assert [n for n, _ in got] == [n for n, _ in top]
    assert [p for _, p in got] == pytest.approx([p for _, p in top], abs=1e-5)


def free_port() -> int:
    """A TCP port nobody listens on now (the OS picks it), for one launch's rendezvous.

    Fixed ports collide with a port still in TIME_WAIT from the previous launch or
    with another test run on the same machine, and the rendezvous then fails.
    """
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args, tmp_path, expect_rc=0, script=None, timeout=1800):
    """Run ``bimors ARGS`` (or ``python SCRIPT ARGS``) in two CPU processes under accelerate.

    ``timeout`` only guards against a hang: on two cores shared with other work
    a launch can take minutes, and a tight limit made these tests fail there.
    """
    port = free_port()
    import os
    import subprocess
    import sys

    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(port),
        *([str(script)] if script else ["-m", "bimors", "-q"]), *args,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout, check=False
    )
    assert (proc.returncode == 0) == (expect_rc == 0), proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_two_process_evaluation_equals_one_process(env, trained_run, tmp_path):
    single = {r["split"]: r for r in _records(trained_run)}
    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    _launch(
        ["eval", str(run), "--device", "cpu", "--store", f"synthetic={env['store']}"],
        tmp_path,
    )
    double = {r["split"]: r for r in _records(run)}
    for split in ("base", "new"):
        assert (double[split]["correct"], double[split]["total"]) == (
            single[split]["correct"],
            single[split]["total"],
        )


@pytest.mark.slow
def test_two_process_training_completes(env, tmp_path):
    out = tmp_path / "ddp-run"
    args = [
        "train",
        "--method",
        "cocoop",
        "--dataset",
        "synthetic",
        "--root",
        str(env["scenes"]),
        "--out",
        str(out),
        *env["sets"],
    ]
    proc = _launch(args, tmp_path)
    assert proc.stdout.count("run folder:") == 1  # one process reports
    recs = _records(out)
    assert [r["split"] for r in recs] == ["base", "new"]
    assert (out / "checkpoint.pt").is_file() and not (out / "last.pt").exists()
    # a refused run directory fails on every rank at once instead of leaving one waiting
    args[args.index("cocoop")] = "coop"
    proc = _launch(args, tmp_path, expect_rc=1)
    assert "holds method 'cocoop', not 'coop'" in proc.stderr


@pytest.mark.slow
def test_a_rank_failing_alone_ends_the_launch(tmp_path):
    from pathlib import Path

    script = Path(__file__).with_name("ddp_fail_check.py")
    proc = _launch([], tmp_path, expect_rc=1, script=script, timeout=900)
    assert "runs folder /nonexistent/rank-1-fails-alone does not exist" in proc.stderr


@pytest.mark.slow
def test_train_killed_with_sigkill_resumes_to_the_same_result(env, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    import torch

    from bimors.engine.checkpoint import read_checkpoint

    sets = [*env["sets"], "--set", "train.epochs=30", "--set", "train.deterministic=true"]
    base = [
        "-m",
        "bimors",
        "-q",
        "train",
        "--method",
        "bimors",
        "--dataset",
        "synthetic",
        "--root",
        str(env["scenes"]),
    ]
    tail = ["--store", f"synthetic={env['store']}", *sets]
    envvars = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def run(out):
        subprocess.run(
            [sys.executable, *base, "--out", str(out), *tail], check=True, env=envvars, timeout=1800
        )

    killed = tmp_path / "killed"
    # the process SIGKILLs itself once 10 steps are done (inside epoch 4): no clock involved
    kill = {**envvars, "BIMORS_TEST_PAUSE": "SIGKILL@10"}
    proc = subprocess.run(
        [sys.executable, *base, "--out", str(killed), *tail], env=kill, timeout=1800, check=False
    )
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "checkpoint.pt").exists()
    done_epochs = read_checkpoint(killed / "last.pt")["trainer"]["epoch"]
    assert 1 <= done_epochs < 30
    run(killed)  # the same command again resumes and finishes
    clean = tmp_path / "clean"
    run(clean)
    a, b = read_checkpoint(clean / "checkpoint.pt"), read_checkpoint(killed / "checkpoint.pt")
    for key in a["state"]:
        torch.testing.assert_close(a["state"][key], b["state"][key], atol=0, rtol=0)
    assert (clean / "metrics.jsonl").read_text() == (killed / "metrics.jsonl").read_text()
    acc = [[r["accuracy"] for r in _records(p)] for p in (clean, killed)]
    assert acc[0] == acc[1]
