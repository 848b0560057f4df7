"""A lock per run folder (or caption store), so processes sharing it never work on it at once.

Grid shards (``bimors run --shard K/N``) are disjoint, but a user may start
the same shard twice, or a whole grid beside a shard. The lock is a file
``<run folder>.lock`` created atomically (``O_CREAT | O_EXCL``), holding the
holder's host and process id. A lock whose holder is gone is stale and taken
over: on the same host when that process no longer exists, on another host
when the lock has not been refreshed for ``STALE_AFTER_S`` (the holder
refreshes it as it works; a killed job stops refreshing). On a network
filesystem, ``O_EXCL`` creation is atomic on NFSv3+ and most cluster
filesystems (Lustre, GPFS, BeeGFS).

The holder's record is written to a private file first and then linked to
the lock name (``os.link`` fails if the name exists, like ``O_EXCL``), so a
lock file is never seen half-written. A lock file whose content is not a
holder record (garbage, empty, truncated by a full disk) therefore names no
live holder and is stale by the same rule as a dead holder's: it is taken
over, with a warning naming the file.

The caption job takes the same kind of lock on its store (``<store>.lock``):
two processes filling one store would caption the same images twice.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

from bimors.core.atomic import pid_alive

logger = logging.getLogger(__name__)

#: A lock from another host untouched for this long is taken as abandoned.
STALE_AFTER_S = 3600
#: How often a holder touches its lock.
REFRESH_S = 300


def lock_path(run_dir: str | Path) -> Path:
    """``<folder or file>.lock``, beside what it guards."""
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + ".lock")


def _read_holder(path: Path) -> dict | None:
    """The holder record of lock ``path``, or None if the file holds no valid record."""
    try:
        holder = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(holder, dict) or not isinstance(holder.get("host"), str):
        return None
    try:
        int(holder.get("pid"))
    except (TypeError, ValueError):
        return None
    return holder


def _stale(path: Path) -> bool:
    try:
        holder = _read_holder(path)
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False  # removed right now: not ours to judge
    if holder is None:
        logger.warning(
            "%s holds no readable holder record (garbage or truncated): no live process "
            "holds it, so it is stale",
            path,
        )
        return True
    if holder.get("host") == socket.gethostname():
        return not pid_alive(int(holder["pid"]))
    return age > STALE_AFTER_S


def held_by(guarded: str | Path) -> str | None:
    """``host:pid`` of the live holder of ``guarded``'s lock, or None if nobody holds it."""
    path = lock_path(guarded)
    if not path.exists() or _stale(path):
        return None
    lock = RunLock(guarded)
    return lock.holder()


class RunLock:
    """``with RunLock(run_dir) as held:`` runs the body with ``held`` True only if taken.

    ``what`` names the guarded thing in log lines (a run, a caption store).
    """

    def __init__(self, run_dir: str | Path, what: str = "run") -> None:
        self.path = lock_path(run_dir)
        self.what = what
        self.held = False
        self._stop = threading.Event()

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                self._create()
            except FileExistsError:
                if not _stale(self.path):
                    return False
                logger.warning("%s: its holder is gone; taking the %s over", self.path, self.what)
                self.path.unlink(missing_ok=True)
                continue
            self.held = True
            self._stop.clear()
            threading.Thread(target=self._keep_fresh, daemon=True).start()
            return True
        return False

    def _create(self) -> None:
        """Make the lock file, complete, or raise FileExistsError; never half-written."""
        record = json.dumps({"host": socket.gethostname(), "pid": os.getpid()})
        tmp = self.path.with_name(f".{self.path.name}.{socket.gethostname()}.{os.getpid()}")
        tmp.write_text(record, encoding="utf-8")
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: exclusive create instead
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(record)
        finally:
            tmp.unlink(missing_ok=True)

    def _keep_fresh(self) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                self.refresh()
            except OSError:
                return

    def refresh(self) -> None:
        """Mark the lock as alive (holders on other hosts judge staleness by its age)."""
        if self.held:
            os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def holder(self) -> str:
        try:
            h = _read_holder(self.path)
        except OSError:
            return "another process"
        return "another process" if h is None else f"{h.get('host')}:{h.get('pid')}"

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
