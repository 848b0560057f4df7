"""Outputs honour the umask, killed writers leave nothing behind, storage errors are named."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from bimors.core import atomic
from bimors.core.errors import StorageError


@pytest.fixture
def umask():
    """Set a umask for one test and restore the old one."""
    old = os.umask(0o022)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expect", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_outputs_honour_the_umask(tmp_path, umask, mask, expect):
    umask(mask)
    atomic.write_json(tmp_path / "results.json", {"a": 1})
    with atomic.atomic_path(tmp_path / "model.pt") as tmp:
        tmp.write_bytes(b"x")
    assert _mode(tmp_path / "results.json") == expect
    assert _mode(tmp_path / "model.pt") == expect


def test_seeded_split_and_scene_folder_are_readable_by_others(tmp_path, umask):
    from bimors.data import build_dataset
    from bimors.data.synthetic import generate_scenes

    umask(0o022)
    root = generate_scenes(tmp_path / "syn", per_class=3, size=16, classes=["river", "forest"])
    assert _mode(root) == 0o755
    ds = build_dataset("synthetic", root)
    ds.split()
    assert _mode(ds.split_path) == 0o644


def test_checkpoint_mode_follows_umask(tmp_path, umask, hf_backbone):
    from bimors.engine.checkpoint import save_checkpoint
    from bimors.methods import build_method

    umask(0o002)
    method = build_method("coop", hf_backbone, ["river", "forest"])
    save_checkpoint(tmp_path / "checkpoint.pt", method, {})
    assert _mode(tmp_path / "checkpoint.pt") == 0o664


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    dead = 2**22 + 12345  # above the default pid_max: no such process
    stale = tmp_path / f".last.pt.{atomic._HOST}.{dead}.0badc0de.tmp"
    stale.write_bytes(b"")
    live = tmp_path / f".last.pt.{atomic._HOST}.{os.getpid()}.0000beef.tmp"
    live.write_bytes(b"")
    other_host = tmp_path / f".last.pt.elsewhere.{dead}.0badc0de.tmp"
    other_host.write_bytes(b"")
    atomic.write_text(tmp_path / "last.pt", "new")
    assert not stale.exists()
    assert live.exists() and other_host.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".last.pt")) == sorted(
        [live.name, other_host.name]
    )


@pytest.mark.parametrize(
    "code, words",
    [(errno.ENOSPC, "disk full"), (errno.EROFS, "read-only"), (errno.EACCES, "permission denied")],
)
def test_os_errors_become_one_line_storage_errors_and_keep_the_old_file(
    tmp_path, monkeypatch, code, words
):
    target = tmp_path / "results.jsonl"
    target.write_text("old\n")

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(StorageError, match=words) as info:
        atomic.write_text(target, "new\n")
    assert "\n" not in str(info.value) and str(target) in str(info.value)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.jsonl"]  # no temp file left


def test_torch_write_failure_on_a_full_disk_says_disk_full(tmp_path, monkeypatch):
    import torch

    target = tmp_path / "last.pt"
    torch.save({"a": 1}, target)

    def enforce_fail(obj, path):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64")

    monkeypatch.setattr(torch, "save", enforce_fail)
    monkeypatch.setattr(atomic, "disk_full", lambda folder: True)
    with pytest.raises(StorageError, match="disk full"), atomic.atomic_path(target) as tmp:
        torch.save({"b": 2}, tmp)
    monkeypatch.undo()
    assert torch.load(target) == {"a": 1}


def test_unrelated_errors_pass_through(tmp_path):
    with pytest.raises(ValueError, match="boom"), atomic.atomic_path(tmp_path / "x"):
        raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []


def test_json_writers_never_write_nan(tmp_path):
    import json

    atomic.write_jsonl(tmp_path / "m.jsonl", [{"loss": float("nan"), "x": [float("inf"), 1.0]}])
    assert json.loads((tmp_path / "m.jsonl").read_text(), parse_constant=None) == {
        "loss": None,
        "x": [None, 1.0],
    }
