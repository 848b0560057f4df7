"""Stopping a run cleanly on SIGTERM or SIGINT (SLURM preemption, time limits, Ctrl-C).

A signal only sets a flag; the trainer (or the caption job) looks at it at
its next safe point, between two steps, where everything needed to resume
can be written: the trainer saves ``last.pt`` with the position inside the
epoch, the caption job has just committed its batch. It then raises
:class:`Stopped`, which unwinds through the ``with`` blocks that hold the
run or store lock (releasing it) to the CLI, which prints one line and exits
with the shell's status for the signal (143 for SIGTERM, 130 for SIGINT).
A second signal of the same kind while the first waits stops at once.

``BIMORS_TEST_PAUSE="SIGTERM@3"`` makes the process send itself SIGTERM
after its third step, so tests stop a real process at a known point
without sleeping.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

#: Signals that stop a run at its next safe point.
SIGNALS = (signal.SIGTERM, signal.SIGINT)
TEST_HOOK = "BIMORS_TEST_PAUSE"


class Stopped(BaseException):
    """A run stopped by a signal at a safe point; its state is saved and it can resume.

    A BaseException (like KeyboardInterrupt), so a handler that keeps going
    after an ordinary error (a grid's failing cell) does not swallow it.
    """

    def __init__(self, signum: int, where: str) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name} after {where}: "
            "rerun the same command to resume"
        )


class StopFlag:
    """The first stop signal received while installed (None while none came)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._pid = os.getpid()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked child (DataLoader worker): die as by default
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.signum == signum:  # asked twice: stop now
            raise KeyboardInterrupt if signum == signal.SIGINT else SystemExit(128 + signum)
        self.signum = signum

    def check(self, where: str) -> None:
        """Raise :class:`Stopped` if a signal came (call only where state is saved)."""
        if self.signum is not None:
            raise Stopped(self.signum, where)

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """Catch SIGTERM and SIGINT while the body runs; previous handlers come back after.

    Outside the main thread signals cannot be caught, so the flag is never set
    there (the default behaviour stays).
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {s: signal.signal(s, flag._handle) for s in SIGNALS}
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def test_pause(step: int) -> None:
    """Send this process the signal ``BIMORS_TEST_PAUSE`` names once ``step`` is reached."""
    hook = os.environ.get(TEST_HOOK)
    if not hook:
        return
    name, _, at = hook.partition("@")
    if int(at) == step:
        os.kill(os.getpid(), signal.Signals[name])
