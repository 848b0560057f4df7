"""Grids spread over a cluster: --list, --shard K/N and a lock per run folder."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from bimors.cli import main
from bimors.core.locks import RunLock, lock_path
from bimors.grid.runner import grid_cells

from .test_experiments import env  # noqa: F401  (env is a fixture)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_shards_partition_the_grid(n):
    everything = grid_cells(["a", "b"], ["coop", "bimors", "maple"], [1, 2, 3])
    parts = [
        grid_cells(["a", "b"], ["coop", "bimors", "maple"], [1, 2, 3], (k, n))
        for k in range(1, n + 1)
    ]
    assert sorted(c for p in parts for c in p) == sorted(everything)
    assert sum(len(p) for p in parts) == len(everything) == 18


def test_lock_is_exclusive_and_a_dead_holder_is_taken_over(tmp_path):
    run = tmp_path / "seed1"
    first, second = RunLock(run), RunLock(run)
    assert first.acquire() and not second.acquire()
    first.release()
    assert not lock_path(run).exists() and second.acquire()
    second.release()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    import socket

    lock_path(run).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)}))
    taker = RunLock(run)
    assert taker.acquire()  # its holder exited: stale
    taker.release()


def _grid_args(env, out, *extra):  # noqa: F811
    return [
        "run",
        "--protocol",
        "base2new",
        "--method",
        "zeroshot",
        "coop",
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
        *env["sets"],
        "--set",
        "train.epochs=1",
        *extra,
    ]


def test_list_prints_each_run_with_its_own_command(env, tmp_path, capsys):  # noqa: F811
    capsys.readouterr()
    assert main(["-q", *_grid_args(env, tmp_path / "runs", "--list")]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["method"], r["seed"]) for r in rows] == [
        ("zeroshot", 1),
        ("zeroshot", 2),
        ("coop", 1),
        ("coop", 2),
    ]
    assert rows[2]["run"].endswith("base2new/synthetic/coop/seed1")
    assert "--method coop --seeds 1" in rows[2]["command"] and "--list" not in rows[2]["command"]
    assert not (tmp_path / "runs").exists()  # listing does no work
    assert "--caption" not in rows[2]["command"]
    assert main(["-q", *_grid_args(env, tmp_path / "runs", "--list", "--caption")]) == 0
    flagged = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert flagged and all("--caption" in shlex.split(r["command"]) for r in flagged)
    assert main(["-q", *_grid_args(env, tmp_path / "runs", "--list", "--shard", "2/3")]) == 0
    # shards are dealt by cost, longest first to the least-loaded: the trained runs spread first
    shard = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["method"], r["seed"]) for r in shard] == [("coop", 2)]


def test_shard_processes_started_together_run_every_run_once(env, tmp_path):  # noqa: F811
    out = tmp_path / "runs"
    environ = {**os.environ, "HF_HUB_OFFLINE": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bimors.cli", "-q", *_grid_args(env, out, "--shard", f"{k}/2")],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in (1, 2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    runs = sorted(out.glob("base2new/synthetic/*/seed*"))
    assert [r.relative_to(out).as_posix() for r in runs if r.is_dir()] == [
        "base2new/synthetic/coop/seed1",
        "base2new/synthetic/coop/seed2",
        "base2new/synthetic/zeroshot/seed1",
        "base2new/synthetic/zeroshot/seed2",
    ]
    for run in (r for r in runs if r.is_dir()):
        records = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
        assert sorted(r["split"] for r in records) == ["base", "new"]  # once, not twice
    assert not list(out.rglob("*.lock"))
    # a shard run again skips its finished runs; the report merges all shards
    assert main(["-q", *_grid_args(env, out, "--shard", "1/2")]) == 0
    assert main(["-q", "report", str(out)]) == 0
    assert "CoOp" in (out / "report.md").read_text()


def test_a_run_held_by_a_live_process_is_skipped(env, tmp_path):  # noqa: F811
    out = tmp_path / "runs"
    held = out / "base2new" / "synthetic" / "coop" / "seed1"
    lock = RunLock(held)
    assert lock.acquire()  # this (live) process holds it
    try:
        assert main(["-q", *_grid_args(env, out)]) == 0
    finally:
        lock.release()
    assert not held.exists()
    assert (out / "base2new" / "synthetic" / "coop" / "seed2" / "results.jsonl").is_file()


def test_a_killed_shard_restarted_finishes_its_runs(env, tmp_path):  # noqa: F811
    import signal
    import time

    out = tmp_path / "runs"
    command = [sys.executable, "-m", "bimors.cli", "-q", *_grid_args(env, out, "--shard", "2/2")]
    environ = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(command, env=environ, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(out.rglob("*.lock")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # killed while holding a run's lock
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # it really died mid-grid, lock left behind
    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    for method in ("zeroshot", "coop"):
        records = (out / "base2new" / "synthetic" / method / "seed2" / "results.jsonl").read_text()
        assert sorted(json.loads(x)["split"] for x in records.splitlines()) == ["base", "new"]
    assert not list(out.rglob("*.lock"))


def test_a_run_killed_before_its_meta_was_written_starts_afresh(tmp_path):
    from bimors.engine.rundir import RunDir

    run = RunDir(tmp_path / "seed1")
    run.path.mkdir()
    (run.path / "config.yaml").write_text("method: {name: coop}\n")  # killed right here
    (run.path / ".meta.json.host.1.ab.tmp").write_text("")
    assert run.prepare({"method": {"name": "coop"}}, {"method": "coop"}) == "new"
    assert run.meta_file.is_file()
    other = RunDir(tmp_path / "mine")
    other.path.mkdir()
    (other.path / "notes.txt").write_text("not a run")
    with pytest.raises(Exception, match="not a bimors run directory"):
        other.prepare({}, {})
