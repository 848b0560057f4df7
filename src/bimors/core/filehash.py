"""SHA-256 of weight files, computed once per file version.

A model folder or checkpoint file is identified by its content, not its path,
so that what made a result (a caption store's vectors, a backbone's weights)
is recognised on another machine or in another virtual environment. Hashing a
15 GB BLIP-2 folder takes a while, so each digest is remembered in
``$BIMORS_CACHE/file_hashes.json`` under the file's resolved path, size and
modification time: a file that changes is hashed again, one that does not
never is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from bimors.core import atomic

logger = logging.getLogger(__name__)

#: Files that hold a model's weights inside a model folder.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5")
_memo: dict[str, str] = {}


def _cache_file() -> Path:
    root = os.environ.get("BIMORS_CACHE") or Path.home() / ".cache" / "bimors"
    return Path(root) / "file_hashes.json"


def _key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of ``path``'s bytes, from the cache when the file has not changed."""
    path = Path(path)
    key = _key(path)
    if key in _memo:
        return _memo[key]
    cache_file = _cache_file()
    try:
        cached = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = {}
    digest = cached.get(key) if isinstance(cached, dict) else None
    if not isinstance(digest, str):
        if path.stat().st_size > 1 << 28:
            logger.info("hashing %s once (its digest is kept in %s)", path, cache_file)
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        digest = h.hexdigest()
        cached = cached if isinstance(cached, dict) else {}
        cached[key] = digest
        try:
            atomic.write_json(cache_file, cached)
        except OSError:  # a read-only home: hash again next time, never fail for a cache
            logger.debug("cannot write %s; digests are not kept", cache_file)
    _memo[key] = digest
    return digest


def folder_digest(folder: str | os.PathLike[str]) -> str:
    """One SHA-256 over a model folder's weight files (names and contents), sorted by name.

    Only weights count: a tokenizer or README edited in place does not change
    the vectors' space, and the config that shapes the model is hashed too.
    """
    folder = Path(folder)
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.name == "config.json")
    )
    h = hashlib.sha256()
    for p in files:
        h.update(p.relative_to(folder).as_posix().encode() + b"\0")
        h.update(sha256_file(p).encode() + b"\n")
    return h.hexdigest()
