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


def _stale(path: Path) -> bool:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
        age = time.time() - path.stat().st_mtime
    except (OSError, ValueError):
        return False  # being written or removed right now: not ours to judge
    if holder.get("host") == socket.gethostname():
        return not pid_alive(int(holder.get("pid", -1)))
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
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not _stale(self.path):
                    return False
                logger.warning("%s: its holder is gone; taking the %s over", self.path, self.what)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"host": socket.gethostname(), "pid": os.getpid()}, f)
            self.held = True
            self._stop.clear()
            threading.Thread(target=self._keep_fresh, daemon=True).start()
            return True
        return False

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
            h = json.loads(self.path.read_text(encoding="utf-8"))
            return f"{h.get('host')}:{h.get('pid')}"
        except (OSError, ValueError):
            return "another process"

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
