"""Keep open_clip's own log lines out of bimors' output while bimors builds a model.

open_clip logs through the *root* logger (``logging.info("Loaded ... model
config")``, ``logging.error("Failed to download weights ...")``), so silencing
the ``open_clip`` logger by name does not reach it. While bimors calls
``create_model`` it turns any failure into one :class:`ModelLoadError` line
that carries the library's reason, so the library's own INFO and ERROR lines
are dropped for that call; its warnings still pass.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path


class _FromOpenClip(logging.Filter):
    """Drop root-logger records written by open_clip's modules, except warnings."""

    def __init__(self) -> None:
        super().__init__()
        import open_clip

        self.package = str(Path(open_clip.__file__).parent)

    def filter(self, record: logging.LogRecord) -> bool:
        mine = record.name == "root" and record.pathname.startswith(self.package)
        return not mine or record.levelno == logging.WARNING


@contextlib.contextmanager
def quiet_open_clip() -> Iterator[None]:
    """Within the block, open_clip's root-logger INFO/ERROR lines are not shown."""
    root = logging.getLogger()
    flt = _FromOpenClip()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)
