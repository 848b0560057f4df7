"""Run folders: failed starts never block, finished runs need a readable model, last.pt stays."""

from __future__ import annotations

import json

import pytest

from bimors.core.errors import CheckpointError
from bimors.engine.rundir import RunDir


def test_a_start_that_failed_before_any_work_does_not_block_the_corrected_rerun(tmp_path):
    run = RunDir(tmp_path / "run")
    meta = {"method": "coop", "protocol": "base2new", "dataset": "synthetic", "seed": 1}
    assert run.prepare({"data": {"exclude": None}}, meta) == "new"
    assert run.prepare({"data": {"exclude": "bad.txt"}}, meta) == "new"  # no work yet: replaced
    (run.path / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(Exception, match="different config"):
        run.prepare({"data": {"exclude": None}}, meta)


def test_a_finished_run_with_a_truncated_checkpoint_is_not_skipped(tmp_path, hf_backbone):
    from bimors.engine.checkpoint import save_checkpoint
    from bimors.methods import build_method

    run = RunDir(tmp_path / "run")
    run.prepare({}, {"method": "coop"})
    save_checkpoint(run.checkpoint, build_method("coop", hf_backbone, ["a", "b"]), {})
    run.add_records([{"dataset": "d", "split": "base", "accuracy": 50.0}])
    run.mark_done(checkpoint=True)
    run.check_finished()
    run.checkpoint.write_bytes(run.checkpoint.read_bytes()[:64])
    with pytest.raises(CheckpointError, match="unusable.*results.*intact.*--overwrite"):
        run.check_finished()
    run.checkpoint.unlink()
    with pytest.raises(CheckpointError, match="does not exist"):
        run.check_finished()
    assert json.loads(run.results_file.read_text())["accuracy"] == 50.0


def test_the_trainer_keeps_last_pt_when_asked(scenes, hf_backbone, tmp_path):
    from bimors.engine.checkpoint import read_checkpoint
    from bimors.engine.trainer import FINAL, LAST, Trainer
    from bimors.methods import build_method
    from bimors.run.config import TrainConfig

    from ..test_engine import _tasks

    train, _, _ = _tasks(scenes, hf_backbone, shots=2)
    cfg = TrainConfig(epochs=1, batch_size=4, warmup_epochs=0)
    method = build_method("coop", hf_backbone, train.classnames)
    trainer = Trainer(method, cfg, tmp_path, {"train": cfg.__dict__})
    trainer.keep_last = True
    trainer.fit(train)
    assert (tmp_path / LAST).is_file() and (tmp_path / FINAL).is_file()
    assert read_checkpoint(tmp_path / LAST)["trainer"]["epoch"] == 1
    again = Trainer(method, cfg, tmp_path, {"train": cfg.__dict__}).fit(train)
    assert again.resumed_from == 1 and again.history  # nothing retrained


def test_caption_store_disk_full_is_named(tmp_path, monkeypatch):
    import sqlite3

    import numpy as np

    from bimors.captions.store import CaptionStore
    from bimors.core.errors import StorageError

    from ..test_captions_training import provenance

    store = CaptionStore.open_or_create(tmp_path / "s.sqlite", provenance())

    class FullDB:
        def __init__(self, db):
            self.db = db

        def __enter__(self):
            raise sqlite3.OperationalError("database or disk is full")

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(store, "_db", FullDB(store._db))
    with pytest.raises(StorageError, match="disk full.*continues after the last committed"):
        store.commit([("a.png", "h", "c", np.zeros(8, np.float32))])
