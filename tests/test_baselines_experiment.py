"""Every baseline runs through the experiment path (presets, one trainer, evaluator, checkpoint)."""

from __future__ import annotations

import json

import pytest
import torch

from bimors.data.synthetic import SyntheticScenes
from bimors.engine.checkpoint import load_into, read_checkpoint
from bimors.engine.trainer import Trainer
from bimors.experiment import run_base2new, task_data
from bimors.methods import build_method
from bimors.methods.prograd import ProGrad
from bimors.protocols.base2new import base2new_tasks
from bimors.run_config import resolve_config

OVERRIDES = {"maple": ["method.prompt_depth=2"]}


def _config(name, tiny_dir, scenes, *extra):
    return resolve_config(
        name,
        overrides=[
            f"backbone.model={tiny_dir / 'clip-hf'}",
            f"data.root={scenes}",
            "data.shots=4",
            "data.num_workers=0",
            "train.epochs=2",
            "train.batch_size=4",
            "train.device=cpu",
            *OVERRIDES.get(name, []),
            *extra,
        ],
    )


@pytest.mark.parametrize("name", ["clip_adapter", "linear_probe", "prograd", "maple", "applenet"])
def test_run_base2new_completes_for_every_baseline(tiny_dir, scenes, hf_backbone, tmp_path, name):
    cfg = _config(name, tiny_dir, scenes)
    records = run_base2new(cfg, SyntheticScenes(scenes), hf_backbone, out_dir=tmp_path)
    assert [r["split"] for r in records] == ["base", "new"]
    for r in records:
        assert r["method"] == name and 0.0 <= r["accuracy"] <= 100.0 and r["total"] > 0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    payload = read_checkpoint(tmp_path / "checkpoint.pt")
    fresh = build_method(name, hf_backbone, payload["classnames"], cfg.method_params)
    load_into(fresh, payload)  # strict: every key and shape matches
    for key, value in payload["state"].items():
        assert torch.equal(dict(fresh.method_state_dict())[key], value), key
    if name == "linear_probe":  # fitted in closed form: one row with the chosen C, no epochs
        assert len(rows) == 1 and rows[0]["C"] > 0 and records[0]["selection"] == "val"
        assert float(payload["state"]["c"]) == pytest.approx(rows[0]["C"], rel=1e-6)
    else:
        assert [row["epoch"] for row in rows] == [1, 2]


def test_the_trainer_steps_through_the_method_backward_hook(
    tiny_dir, scenes, hf_backbone, monkeypatch
):
    calls = []
    original = ProGrad.backward

    def spy(self, loss, scaler):
        calls.append(float(loss.detach()))
        return original(self, loss, scaler)

    monkeypatch.setattr(ProGrad, "backward", spy)
    cfg = _config("prograd", tiny_dir, scenes, "train.epochs=1")
    dataset = SyntheticScenes(scenes)
    tasks = base2new_tasks(dataset.split(), cfg.data.shots, 1, dataset.name)
    train = task_data(dataset, tasks.train, hf_backbone, True, None, "reference")
    method = build_method("prograd", hf_backbone, train.classnames, cfg.method_params)
    result = Trainer(method, cfg.train).fit(train)
    assert result.steps >= 1 and len(calls) == result.steps
