"""A run killed after an epoch resumes from last.pt and ends exactly like an uninterrupted one."""

from __future__ import annotations

import json

import pytest
import torch

from bimors.engine.checkpoint import read_checkpoint
from bimors.engine.trainer import FINAL, LAST, Trainer
from bimors.methods import build_method
from bimors.run.config import TrainConfig

from .test_engine import _tasks


class Killed(Exception):
    pass


@pytest.mark.parametrize(
    "name, selection", [("bimors", "last"), ("coop", "val"), ("prograd", "last")]
)
def test_resume_after_kill_equals_uninterrupted(
    scenes, hf_backbone, tmp_path, monkeypatch, name, selection
):
    train, val, _ = _tasks(scenes, hf_backbone, shots=3, captions=name == "bimors")
    cfg = TrainConfig(
        epochs=4, batch_size=2, lr=0.02, warmup_epochs=1, selection=selection, deterministic=True
    )

    def build(seed):
        torch.manual_seed(seed)
        return build_method(name, hf_backbone, train.classnames, caption_dim=8)

    full = build(0)
    Trainer(full, cfg, tmp_path / "a", {"train": cfg.__dict__}).fit(train, val)

    killed = build(0)
    trainer = Trainer(killed, cfg, tmp_path / "b", {"train": cfg.__dict__})
    real = trainer._write_epoch

    def write_then_die(row, history):
        real(row, history)
        if row["epoch"] == 2:
            raise Killed

    monkeypatch.setattr(trainer, "_write_epoch", write_then_die)
    with pytest.raises(Killed):
        trainer.fit(train, val)
    assert (tmp_path / "b" / LAST).is_file() and not (tmp_path / "b" / FINAL).exists()
    assert read_checkpoint(tmp_path / "b" / LAST)["trainer"]["epoch"] == 2

    resumed = build(99)  # a different init: everything must come from last.pt
    result = Trainer(resumed, cfg, tmp_path / "b", {"train": cfg.__dict__}).fit(train, val)
    assert result.resumed_from == 2
    a = read_checkpoint(tmp_path / "a" / FINAL)
    b = read_checkpoint(tmp_path / "b" / FINAL)
    assert a["selected_epoch"] == b["selected_epoch"]
    for key in a["state"]:
        torch.testing.assert_close(a["state"][key], b["state"][key], atol=0, rtol=0)
    rows_a = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert rows_a == rows_b
    assert not (tmp_path / "b" / LAST).exists()


def test_resume_refuses_other_training_settings(scenes, hf_backbone, tmp_path, monkeypatch):
    from bimors.core.errors import CheckpointError

    train, _, _ = _tasks(scenes, hf_backbone, shots=2)
    cfg = TrainConfig(epochs=2, batch_size=2, warmup_epochs=0)
    method = build_method("coop", hf_backbone, train.classnames)
    trainer = Trainer(method, cfg, tmp_path, {"train": cfg.__dict__})
    monkeypatch.setattr(trainer, "_write_epoch", lambda row, h: (_ for _ in ()).throw(Killed()))
    with pytest.raises(Killed):
        trainer.fit(train)
    other = TrainConfig(epochs=2, batch_size=2, warmup_epochs=0, lr=0.5)
    with pytest.raises(CheckpointError, match="other training settings"):
        Trainer(method, other, tmp_path, {"train": other.__dict__}).fit(train)
