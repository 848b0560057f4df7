"""Kill-and-resume and two-process sharding of ``bimors caption``, as users run it.

Both end with a store compared against an uninterrupted single-process run:
same keys, hashes, captions, failures and provenance, and the same vectors.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bimors
from bimors.captions.provenance import identity
from bimors.captions.store import CaptionStore
from bimors.cli import main
from bimors.demo.tiny import minilm_path

N_IMAGES = 24  # plus one broken file


@pytest.fixture(scope="module")
def job(tmp_path_factory, tiny_dir):
    """An image folder with one undecodable file, the command, and a clean run's store."""
    from bimors.data.synthetic import SCENES, generate_scenes

    base = tmp_path_factory.mktemp("resume")
    root = generate_scenes(base / "scenes", per_class=6, size=32, seed=5, classes=list(SCENES)[:4])
    (root / "river" / "river_broken.png").write_bytes(b"\x89PNG truncated")
    args = ["caption", "--dataset", "imagefolder", "--root", str(root)]
    args += ["--captioner", str(tiny_dir / "blip2"), "--encoder", str(minilm_path())]
    args += ["--batch-size", "4", "--device", "cpu"]
    clean = base / "clean.sqlite"
    assert main(["-q", *args, "--store", str(clean)]) == 2  # exit 2: the broken file is listed
    return {"root": root, "args": args, "clean": clean, "base": base}


def env() -> dict[str, str]:
    src = str(Path(bimors.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def content(path: Path) -> dict:
    with CaptionStore(path, readonly=True) as store:
        return {
            "provenance": identity(store.provenance),
            "rows": {r.relpath: (r.sha256, r.caption, r.vector.tobytes()) for r in store},
            "failures": store.failures(),
        }


def assert_same_store(path: Path, clean: Path, exact_vectors: bool = True) -> None:
    got, want = content(path), content(clean)
    assert len(want["rows"]) == N_IMAGES and list(want["failures"]) == ["river/river_broken.png"]
    assert got["provenance"] == want["provenance"]
    assert got["failures"] == want["failures"]
    assert sorted(got["rows"]) == sorted(want["rows"])
    for key, (sha, caption, vec) in want["rows"].items():
        assert got["rows"][key][:2] == (sha, caption), key
        a, b = (np.frombuffer(v, dtype=np.float32) for v in (got["rows"][key][2], vec))
        if exact_vectors:
            np.testing.assert_array_equal(a, b, err_msg=key)
        else:
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0, err_msg=key)
    leftovers = [p.name for p in path.parent.iterdir() if p.name.startswith(f"{path.name}.")]
    leftovers += [p.name for p in path.parent.glob(f".{path.name}*")]
    assert leftovers == []


def committed(path: Path) -> int:
    """Rows (captions + failures) committed so far, read while the job runs."""
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5) as db:
            n = db.execute(
                "SELECT (SELECT COUNT(*) FROM captions) + (SELECT COUNT(*) FROM failures)"
            )
            return int(n.fetchone()[0])
    except sqlite3.DatabaseError:  # created but not yet renamed into place, or locked
        return 0


def test_sigkill_at_random_points_then_rerun_equals_clean_run(job):
    store = job["base"] / "killed.sqlite"
    command = [sys.executable, "-m", "bimors.cli", "-q", *job["args"], "--store", str(store)]
    rng = random.Random(4)
    at_kill = []
    # Kill 1 anywhere in start-up (imports, model loading, store creation); kills 2-3 at
    # random moments after some batches are committed (mid-batch or mid-commit).
    for attempt in range(3):
        proc = subprocess.Popen(command, env=env(), stderr=subprocess.DEVNULL)
        start = committed(store)
        if attempt == 0:
            time.sleep(rng.uniform(0.5, 3.0))
        else:
            deadline = time.monotonic() + 120
            while committed(store) <= start and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is not None:
            break  # finished before the kill: nothing left to interrupt
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        at_kill.append(committed(store))
    assert any(0 < n < N_IMAGES + 1 for n in at_kill), at_kill  # some kill hit mid-job
    command.remove("-q")  # the last run logs how much was left to do
    done = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert (
        "river_broken.png" in done.stderr and "1 of 25 images could not be captioned" in done.stderr
    )
    left = int(re.search(r"(\d+) of 25 images to caption", done.stderr).group(1))
    assert left < N_IMAGES + 1  # the killed runs' batches were kept, not redone
    assert_same_store(store, job["clean"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_under_accelerate_launch_merge_to_the_clean_store(job):
    store = job["base"] / "sharded.sqlite"
    launcher = Path(sys.executable).with_name("accelerate")
    command = [
        str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
        str(free_port()), "-m", "bimors.cli", *job["args"], "--store", str(store),
    ]  # fmt: skip
    done = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=300)
    assert "river_broken.png" in done.stderr, done.stderr[-3000:]
    assert done.returncode != 0  # the broken file is reported as a failure by the launch
    assert "process 0 of 2 takes 4" in done.stderr and "process 1 of 2 takes 3" in done.stderr
    # Each process ran with one thread (accelerate's default), the clean run with two:
    # float sums may differ in the last bits, the captions may not.
    assert_same_store(store, job["clean"], exact_vectors=False)
