"""Progress that reads well on a terminal and in a log file.

A progress bar redraws itself with carriage returns: on a terminal that is one
live line, in a SLURM log file it is thousands of ``\\r`` fragments. So a bar
is drawn only when standard error is a terminal; elsewhere a job that wants
progress in its log gets one plain, complete line every ``every`` items (and
one at the end) with the rate and the time left, through ``logging`` like any
other library message.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

logger = logging.getLogger("bimors.progress")


def on_terminal() -> bool:
    """Whether standard error is a terminal (where a redrawn bar belongs)."""
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None)) and stream.isatty()


def eta(seconds: float) -> str:
    """``H:MM:SS`` or ``M:SS``, tqdm's own format, for log lines."""
    return tqdm.format_interval(max(seconds, 0.0))


class LineProgress:
    """The plain-line stand-in for a tqdm bar: same ``update``/iteration/``with`` use."""

    def __init__(
        self, iterable: Iterable | None, total: int | None, desc: str, unit: str, every: int | None
    ) -> None:
        self.iterable = iterable
        self.total = total if total is not None else _length(iterable)
        self.desc, self.unit, self.every = desc, unit, every
        self.n = 0
        self._start = time.monotonic()
        self._last_line = 0
        self._closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items; log a line when another ``every`` have passed."""
        self.n += n
        if self.every and self.n - self._last_line >= self.every:
            self._line()

    def line(self) -> str:
        """``captions: 320/1000 img (41.2 img/s, ETA 0:16)``."""
        elapsed = time.monotonic() - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        left = ""
        if self.total and rate > 0:
            left = f", ETA {eta((self.total - self.n) / rate)}"
        return f"{self.desc}: {done} {self.unit} ({rate:.1f} {self.unit}/s{left})"

    def _line(self) -> None:
        self._last_line = self.n
        logger.info("%s", self.line())

    def close(self) -> None:
        """The closing line, once, if this progress logs lines at all."""
        if not self._closed and self.every and self.n != self._last_line:
            self._line()
        self._closed = True


def _length(iterable: Iterable | None) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str = "it",
    enabled: bool = True,
    every: int | None = None,
    leave: bool = False,
) -> Any:
    """A tqdm bar on a terminal; plain log lines every ``every`` items elsewhere.

    ``enabled=False`` (``--quiet``) shows nothing; without ``every`` nothing is
    logged off a terminal either, for loops whose caller logs its own summary
    (the trainer logs one line per epoch).
    """
    if enabled and on_terminal():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave)
    return LineProgress(iterable, total, desc, unit, every if enabled else None)
