"""Atomic file output: write to a temporary name beside the target, then rename.

A crash or kill mid-write leaves either the old file or no file, never half a
file, because ``os.replace`` within one directory is atomic on POSIX and Windows.

Three things make it safe on shared machines and bad days:

- the temporary file is created with mode 0666 filtered by the umask (not
  ``mkstemp``'s 0600), so colleagues read results, splits and checkpoints
  exactly as the umask allows;
- it is named after the host and process that write it, so a later write of
  the same target removes what a killed writer left behind (0-byte ``.tmp``
  files) without touching a live writer's file;
- a write that fails because the file system is read-only, permission is
  denied or the disk is full raises :class:`~bimors.core.errors.StorageError` with
  what happened and the fix, in one line (torch's ``inline_container.cc``
  failures carry no errno, so a full disk is detected by its free space).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from bimors.core.errors import StorageError

#: Below this many free bytes a failed write is reported as a full disk.
FULL_DISK_BYTES = 1 << 20

_HOST = re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname()) or "host"
_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic set-and-restore
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike[str], directory: bool = False) -> None:
    """Give ``path`` the mode a plain ``open``/``mkdir`` would have (``mkdtemp`` gives 0700)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def disk_full(folder: str | os.PathLike[str]) -> bool:
    """Whether the file system holding ``folder`` has (almost) no space left for us."""
    try:
        return shutil.disk_usage(folder).free < FULL_DISK_BYTES
    except OSError:
        return False


def storage_problem(err: BaseException, path: str | os.PathLike[str]) -> StorageError | None:
    """A one-line StorageError for a write of ``path`` that failed with ``err``, or None.

    None means ``err`` is not a storage condition we can explain; re-raise it.
    """
    code = getattr(err, "errno", None)
    where = Path(path)
    if code in (errno.ENOSPC, errno.EDQUOT) or (
        not isinstance(err, OSError) and disk_full(where.parent if where.parent else ".")
    ):
        return StorageError(
            f"disk full: cannot write {where} (no space left on the device holding "
            f"{where.parent}); free some space, or write elsewhere, and rerun: files written "
            "before are intact"
        )
    if code == errno.EROFS:
        return StorageError(
            f"read-only file system: cannot write {where}; choose a writable folder "
            "(e.g. --out DIR, --store FILE, features.dir=DIR) and rerun"
        )
    if code in (errno.EACCES, errno.EPERM):
        return StorageError(
            f"permission denied: cannot write {where}; choose a folder you can write to, or "
            f"ask its owner for write access to {where.parent}"
        )
    return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (under any user)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


def sweep_stale(folder: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Remove temporary files this host's dead processes left in ``folder`` (for ``name``).

    Files of other hosts are left alone: a PID means nothing across machines.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TMP.match(entry.name)
        if not m or m["host"] != _HOST or (name is not None and m["name"] != name):
            continue
        if not pid_alive(int(m["pid"])):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _create_temp(target: Path) -> Path:
    """An empty file beside ``target``, mode 0666 & ~umask, named after this host and process."""
    while True:
        tmp = target.with_name(f".{target.name}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``target`` only on success.

    Raises:
        StorageError: the folder is read-only or not ours, or the disk is full;
            ``target`` keeps its previous content.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(target.parent, target.name)
        tmp = _create_temp(target)
    except OSError as err:
        raise (storage_problem(err, target) or err) from None
    try:
        yield tmp
        os.replace(tmp, target)
    except (OSError, RuntimeError) as err:  # torch.save: RuntimeError without an errno
        problem = storage_problem(err, target)
        if problem is None or isinstance(err, StorageError):
            raise
        raise problem from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(
    target: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing that atomically becomes ``target`` on close."""
    if "b" in mode:
        encoding = None
    with atomic_path(target) as tmp, open(tmp, mode, encoding=encoding) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Atomically write ``text`` to ``target``."""
    with atomic_open(target) as fh:
        fh.write(text)


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None: JSON has no such numbers."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON (non-finite numbers become null)."""
    write_text(target, json.dumps(_finite(obj), indent=2, sort_keys=False) + "\n")


def write_jsonl(target: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    """Atomically write one JSON object per line (non-finite numbers become null)."""
    write_text(target, "".join(json.dumps(_finite(r)) + "\n" for r in rows))
