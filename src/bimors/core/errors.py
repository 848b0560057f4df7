"""Exceptions the toolkit raises on bad input.

They subclass the built-in exception a caller would expect (so generic handlers
keep working) and carry a message that names the offending file or field and
the fix, which the CLI prints without a traceback.
"""

from __future__ import annotations

import re


class BimorsError(Exception):
    """Base class of every user-facing error; the CLI prints its message and exits 2.

    An error raised in a DataLoader worker reaches the main process rebuilt
    from torch's text ("Caught DataError in DataLoader worker process 0" and
    the worker's whole traceback); the constructor keeps only the worker's own
    message, so the user still reads one line naming the bad file.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (_unwrap_worker_message(args[0], type(self)),)
        super().__init__(*args)


class UnknownNameError(BimorsError, KeyError):
    """A method, backbone or dataset name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it verbatim
        return str(self.args[0]) if self.args else ""


class ConfigError(BimorsError, ValueError):
    """A config field with a wrong name, type or value."""


class DataError(BimorsError, ValueError):
    """A missing, empty or unreadable dataset file or folder."""


class CheckpointError(BimorsError, ValueError):
    """A checkpoint whose keys, shapes or provenance do not match the model."""


class StorageError(BimorsError, OSError):
    """A file that cannot be written: read-only file system, no permission, or a full disk."""

    def __str__(self) -> str:  # OSError formats (errno, strerror); we want the message verbatim
        return str(self.args[0]) if self.args else ""


class IntegrityError(DataError):
    """A derived artefact (cache entry, shared view, caption row) whose checksum disagrees
    with its bytes, or that carries none: it is never used."""


_WORKER = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback")


def _unwrap_worker_message(text: str, cls: type) -> str:
    """The original message inside torch's worker re-raise text, or ``text`` unchanged."""
    if not _WORKER.match(text):
        return text
    marker = f"{cls.__module__}.{cls.__qualname__}: "
    at = text.rfind(marker)
    if at < 0:
        return text
    return text[at + len(marker) :].strip()
