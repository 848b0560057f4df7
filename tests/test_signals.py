"""SIGTERM / SIGINT stop a real run between steps; the rerun resumes bit-equal (issue 20, item 6).

The process signals itself through the ``BIMORS_TEST_PAUSE`` hook at a known
step, so nothing here waits on the clock.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from bimors.core.locks import lock_path
from bimors.engine.checkpoint import read_checkpoint

from .test_baselines_experiment import _sets


def _train(out, tiny_dir, scenes, pause=None, method="coop"):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("BIMORS_TEST_PAUSE", None)
    if pause:
        env["BIMORS_TEST_PAUSE"] = pause
    cmd = [
        sys.executable, "-m", "bimors", "-q", "run", "--protocol", "base2new", "--method", method,
        "--dataset", "synthetic", "--seeds", "1", "--root", str(scenes), "--out", str(out),
        *_sets(tiny_dir),
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, check=False)


def _cell(out):
    """The grid's run folder of the one cell (its lock is ``<folder>.lock``)."""
    return out / "base2new" / "synthetic" / "coop" / "seed1"


def _same_weights(a, b):
    sa, sb = read_checkpoint(a)["state"], read_checkpoint(b)["state"]
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture(scope="module")
def uninterrupted(tiny_dir, scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("signals") / "full"
    proc = _train(out, tiny_dir, scenes)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _cell(out)


@pytest.mark.parametrize(
    "pause, code, where",
    [
        ("SIGTERM@4", 143, "epoch 2, step 4"),  # inside epoch 2: the sampler position is saved
        pytest.param("SIGINT@3", 130, "epoch 2, step 3", marks=pytest.mark.slow),
    ],
)
def test_a_signal_stops_between_steps_and_the_rerun_is_bit_equal(
    uninterrupted, tiny_dir, scenes, tmp_path, pause, code, where
):
    runs = tmp_path / "runs"
    out = _cell(runs)
    proc = _train(runs, tiny_dir, scenes, pause)
    name = pause.split("@")[0]
    assert proc.returncode == code, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"bimors: stopped by {name} after {where}: rerun the same command to resume"
    assert "Traceback" not in proc.stderr
    assert (out / "last.pt").is_file() and not (out / "checkpoint.pt").exists()
    assert lock_path(out).parent.is_dir() and not lock_path(out).exists()  # lock released
    assert read_checkpoint(out / "last.pt")["trainer"]["steps"] == int(pause.split("@")[1])
    proc = _train(runs, tiny_dir, scenes)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _same_weights(uninterrupted / "checkpoint.pt", out / "checkpoint.pt")
    assert (out / "metrics.jsonl").read_text() == (uninterrupted / "metrics.jsonl").read_text()
