"""SHA-256 of a checkpoint file, computed once per (path, size, mtime).

A result must name the exact weights behind it; a path alone does not (the
file can be replaced). Hashing a 600 MB checkpoint takes seconds, so the hash
is cached in-process keyed by the resolved path, size and modification time:
a changed file gets a new hash, an unchanged one is never read twice.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the file at ``path`` (cached by path, size and mtime)."""
    resolved = Path(path).resolve()
    st = os.stat(resolved)
    key = (str(resolved), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        digest = hashlib.sha256()
        with open(resolved, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _CACHE[key] = digest.hexdigest()
    return _CACHE[key]


def weights_identity(adapter: str, model: str, pretrained: str | None, preset: str | None) -> dict:
    """What names the weights: the preset, the hub id / open_clip tag, or a file and its hash.

    A local file (``model`` for ``hf`` when it is a folder is named by path only:
    hashing a whole folder is left to its provenance) gets ``sha256``.
    """
    out: dict = {"preset": preset}
    source = pretrained if adapter == "open_clip" else model
    if source and Path(source).is_file():
        out.update(file=str(Path(source).resolve()), sha256=file_sha256(source))
    else:
        out.update(id=source)
    return out
