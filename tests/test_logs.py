"""Logs that read well in a file: no redrawn bars off a terminal, one complete line per
epoch and per N caption batches, with the rate and the time left."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

from tqdm.auto import tqdm

from bimors.core import progress as progress_module
from bimors.core.progress import LineProgress, progress
from tests.test_experiments import env  # noqa: F401 (fixture)


def test_off_a_terminal_progress_is_plain_lines_every_n_items(caplog, monkeypatch):
    monkeypatch.setattr(progress_module, "on_terminal", lambda: False)
    with caplog.at_level(logging.INFO, logger="bimors.progress"):
        bar = progress(total=10, desc="captions", unit="img", every=4)
        assert isinstance(bar, LineProgress)
        with bar:
            for _ in range(5):
                bar.update(2)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" (")[0] for line in lines] == [
        "captions: 4/10 img",
        "captions: 8/10 img",
        "captions: 10/10 img",
    ]
    assert all(re.search(r"img/s, ETA \d+:\d\d\)$", line) for line in lines)


def test_without_every_or_when_quiet_nothing_is_logged(caplog, monkeypatch):
    monkeypatch.setattr(progress_module, "on_terminal", lambda: False)
    with caplog.at_level(logging.INFO, logger="bimors.progress"):
        assert list(progress(range(3), desc="eval")) == [0, 1, 2]
        assert list(progress(range(3), desc="eval", every=1, enabled=False)) == [0, 1, 2]
    assert caplog.records == []


def test_on_a_terminal_it_is_a_tqdm_bar(monkeypatch):
    monkeypatch.setattr(progress_module, "on_terminal", lambda: True)
    bar = progress(range(3), desc="eval")
    assert isinstance(bar, tqdm)
    assert list(bar) == [0, 1, 2]
    quiet = progress(range(3), desc="eval", enabled=False)
    assert isinstance(quiet, LineProgress)


def test_a_run_logged_to_a_file_has_epoch_lines_and_no_carriage_returns(env, tmp_path):  # noqa: F811
    log = tmp_path / "train.log"
    command = [
        sys.executable, "-m", "bimors", "train", "--method", "coop", "--dataset", "synthetic",
        "--root", str(env["scenes"]), "--out", str(tmp_path / "run"),
        "--store", f"synthetic={env['store']}", *env["sets"],
    ]  # fmt: skip
    with log.open("w") as fh:
        done = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, env=dict(os.environ))
    text = log.read_text()
    assert done.returncode == 0, text[-3000:]
    assert "\r" not in text
    epochs = re.findall(r"epoch (\d)/2: loss \d+\.\d+, train acc .*steps/s, ETA \d+:\d\d", text)
    assert epochs == ["1", "2"]


def test_the_epoch_line_of_a_closed_form_fit_lists_its_fields():
    from bimors.engine.trainer import epoch_line

    assert (
        epoch_line({"epoch": 0, "C": 0.5, "val_acc": 60.0}, 0, 0.0, 0.0) == "fit: C 0.5, val_acc 60"
    )
    line = epoch_line(
        {"epoch": 2, "loss": 0.5, "train_acc": 50.0, "lr": 0.002, "skipped_steps": 0}, 5, 3.0, 65.0
    )
    assert line == "epoch 2/5: loss 0.5000, train acc 50.00%, lr 0.002, 3.00 steps/s, ETA 01:05"
