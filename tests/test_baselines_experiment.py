"""Every baseline runs through the experiment path: CLI -> run plan -> one trainer -> evaluator
-> run folder -> report, on one process and (slow) on two."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch

from bimors.cli import main
from bimors.data.synthetic import SyntheticScenes
from bimors.engine.checkpoint import load_into, read_checkpoint
from bimors.engine.trainer import Trainer
from bimors.methods import build_method
from bimors.methods.prograd import ProGrad
from bimors.protocols.base2new import base2new_tasks
from bimors.run.config import resolve_config
from bimors.run.experiment import task_data

BASELINES = ["clip_adapter", "linear_probe", "prograd", "maple", "applenet"]
OVERRIDES = {"maple": ["method.prompt_depth=2"]}


def _sets(tiny_dir, *extra):
    sets = [
        "backbone.adapter=hf",
        f"backbone.model={tiny_dir / 'clip-hf'}",
        "train.device=cpu",
        "train.epochs=2",
        "train.batch_size=4",
        "data.shots=4",
        "data.num_workers=0",
        *extra,
    ]
    return [x for s in sets for x in ("--set", s)]


def _records(path):
    return [json.loads(x) for x in (path / "results.jsonl").read_text().splitlines()]


def test_list_shows_every_baseline(capsys):
    assert main(["list"]) == 0
    methods = capsys.readouterr().out.splitlines()[0]
    for name in BASELINES:
        assert name in methods, name


@pytest.fixture(scope="module")
def runs(tiny_dir, scenes, tmp_path_factory):
    """A runs folder with every baseline trained on base2new, seed 1.

    MaPLe needs ``method.prompt_depth`` within the tiny encoders' depth, a field
    the others lack, so it goes through ``bimors train`` into the grid's own run
    folder; the rest through one ``bimors run``, whose report then covers all five.
    """
    runs = tmp_path_factory.mktemp("baseline-runs")
    train = ["-q", "train", "--method", "maple", "--dataset", "synthetic", "--root", str(scenes)]
    train += ["--out", str(runs / "base2new" / "synthetic" / "maple" / "seed1")]
    assert main(train + _sets(tiny_dir, "method.prompt_depth=2")) == 0
    others = [m for m in BASELINES if m != "maple"]
    grid = ["-q", "run", "--protocol", "base2new", "--method", *others, "--dataset", "synthetic"]
    grid += ["--seeds", "1", "--root", str(scenes), "--out", str(runs)]
    assert main(grid + _sets(tiny_dir)) == 0
    return runs


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_writes_a_complete_run(runs, hf_backbone, name):
    run = runs / "base2new" / "synthetic" / name / "seed1"
    names = {p.name for p in run.iterdir()}
    assert {"meta.json", "config.yaml", "metrics.jsonl", "checkpoint.pt", "results.jsonl"} <= names
    assert "last.pt" not in names
    assert json.loads((run / "meta.json").read_text())["status"] == "done"
    records = {r["split"]: r for r in _records(run)}
    assert set(records) == {"base", "new"}
    for r in records.values():
        assert r["method"] == name and 0.0 <= r["accuracy"] <= 100.0 and r["total"] > 0
    payload = read_checkpoint(run / "checkpoint.pt")
    params = {"prompt_depth": 2} if name == "maple" else {}
    fresh = build_method(name, hf_backbone, payload["classnames"], params)
    load_into(fresh, payload)  # strict: every key and shape matches
    for key, value in payload["state"].items():
        assert torch.equal(fresh.method_state_dict()[key], value), key
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    if name == "linear_probe":  # fitted in closed form: one row with the chosen C, no epochs
        assert len(rows) == 1 and rows[0]["C"] > 0 and records["base"]["selection"] == "val"
        assert float(payload["state"]["c"]) == pytest.approx(rows[0]["C"], rel=1e-6)
        # it has no weights for new classes: zero-shot CLIP scored them, and the record says so
        assert records["new"]["fallback"] == "zeroshot" and "fallback" not in records["base"]
    else:
        assert [row["epoch"] for row in rows] == [1, 2]
        assert all("fallback" not in r for r in records.values())


def test_report_marks_the_fallback_cells(runs):
    from bimors.report.names import method_label

    report = (runs / "report.md").read_text()
    for name in BASELINES:
        assert f"| {method_label(name)} | " in report, name
    (probe,) = [line for line in report.splitlines() if line.startswith("| Linear probe |")]
    base, new = probe.split("|")[2:4]
    assert new.strip().endswith("†") and not base.strip().endswith("†")
    assert "† scored by a fallback (zeroshot)" in report
    assert all("†" not in line for line in report.splitlines() if line.startswith("| ProGrad |"))
    rows = list(csv.DictReader(io.StringIO((runs / "report.csv").read_text())))
    probe_rows = {r["metric"]: r for r in rows if r["method"] == "linear_probe"}
    assert probe_rows["new"]["fallback"] == "zeroshot" and probe_rows["base"]["fallback"] == ""
    assert r"$^\dagger$" in (runs / "report.tex").read_text()


def test_the_trainer_steps_through_the_method_backward_hook(
    tiny_dir, scenes, hf_backbone, monkeypatch
):
    calls = []
    original = ProGrad.backward

    def spy(self, loss, scaler):
        calls.append(float(loss.detach()))
        return original(self, loss, scaler)

    monkeypatch.setattr(ProGrad, "backward", spy)
    cfg = resolve_config(
        "prograd",
        overrides=[
            f"backbone.model={tiny_dir / 'clip-hf'}",
            "data.shots=4",
            "train.epochs=1",
            "train.batch_size=4",
            "train.device=cpu",
        ],
    )
    dataset = SyntheticScenes(scenes)
    tasks = base2new_tasks(dataset.split(), cfg.data.shots, 1, dataset.name)
    train = task_data(dataset, tasks.train, hf_backbone, True, None, "reference")
    method = build_method("prograd", hf_backbone, train.classnames, cfg.method_params)
    result = Trainer(method, cfg.train).fit(train)
    assert result.steps >= 1 and len(calls) == result.steps


@pytest.mark.slow
def test_two_processes_fit_the_linear_probe_like_one(runs, tiny_dir, scenes, tmp_path):
    """Sharded feature extraction, assembled on every rank, gives the one-process fit."""
    from .test_experiments import _launch

    out = tmp_path / "probe-ddp"
    args = ["train", "--method", "linear_probe", "--dataset", "synthetic", "--root", str(scenes)]
    _launch([*args, "--out", str(out), *_sets(tiny_dir)], tmp_path)
    one = read_checkpoint(
        runs / "base2new" / "synthetic" / "linear_probe" / "seed1" / "checkpoint.pt"
    )
    two = read_checkpoint(out / "checkpoint.pt")
    assert float(two["state"]["c"]) == pytest.approx(float(one["state"]["c"]), rel=1e-9)
    for key in ("weight", "bias"):
        torch.testing.assert_close(two["state"][key], one["state"][key], atol=1e-4, rtol=1e-3)
    single = {r["split"]: r for r in _records(runs / "base2new/synthetic/linear_probe/seed1")}
    double = {r["split"]: r for r in _records(out)}
    assert double["new"]["fallback"] == "zeroshot"
    assert double["base"]["total"] == single["base"]["total"]


@pytest.mark.slow
def test_two_process_prograd_training_completes(tiny_dir, scenes, tmp_path):
    """ProGrad's backward hook (teacher gradient averaged across ranks) under DDP."""
    from .test_experiments import _launch

    out = tmp_path / "prograd-ddp"
    args = ["train", "--method", "prograd", "--dataset", "synthetic", "--root", str(scenes)]
    _launch([*args, "--out", str(out), *_sets(tiny_dir)], tmp_path)
    assert [r["split"] for r in _records(out)] == ["base", "new"]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]


@pytest.mark.slow
def test_every_sgd_method_stays_in_sync_across_ranks(tiny_dir, scenes, tmp_path):
    """Two processes train each SGD method with different shards; weights must agree."""
    from pathlib import Path

    from .test_experiments import _launch

    script = Path(__file__).with_name("ddp_sync_check.py")
    _launch([str(tiny_dir / "clip-hf"), str(scenes)], tmp_path, script=script)
