"""Every case of the fault script (issue 11) ends with a one-line message or the right result.

The script replays each reported failure through the real CLI on tiny models
and fake layouts; here each case is one test, with the disk cases simulated
(no mounts in a test run).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fault_replay.py"


@pytest.fixture(scope="module")
def replay():
    spec = importlib.util.spec_from_file_location("fault_replay", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fault_replay"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def work(replay, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BIMORS_CACHE", str(root / "cache"))
        mp.setenv("BIMORS_FAULTS_SIMULATE", "1")
        yield root, replay.setup(root)


# 11-16: issue 20's bad inputs; 17 (SIGTERM and resume, three real trainings) is slow
@pytest.mark.parametrize("number", [*range(1, 17), pytest.param(17, marks=pytest.mark.slow)])
def test_fault_case(replay, work, number, monkeypatch):
    monkeypatch.setenv("BIMORS_FAULTS_SIMULATE", "1")
    folder, env = work
    note = replay.CASES[number](folder, env)  # raises CaseFailed with what went wrong
    assert note
