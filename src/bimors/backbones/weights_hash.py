"""What names a backbone's weights in a record: the preset, the hub id or tag, or a file
and its SHA-256 (from :mod:`bimors.core.filehash`, hashed once per file version).

A result must name the exact weights behind it; a path alone does not (the
file can be replaced), and a local model folder is named by its weights'
digest so that the same weights elsewhere are recognised.
"""

from __future__ import annotations

from pathlib import Path

from bimors.core.filehash import folder_digest, sha256_file


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of the file at ``path`` (cached by path, size and mtime)."""
    return sha256_file(path)


def weights_identity(adapter: str, model: str, pretrained: str | None, preset: str | None) -> dict:
    """What names the weights: the preset, the hub id / open_clip tag, or a file and its hash.

    A local file gets ``sha256``; a local model folder (``hf``) gets the digest
    of its weight files.
    """
    out: dict = {"preset": preset}
    source = pretrained if adapter == "open_clip" else model
    if source and Path(source).is_file():
        out.update(file=str(Path(source).resolve()), sha256=file_sha256(source))
    elif source and Path(source).is_dir():
        out.update(folder=str(Path(source).resolve()), sha256=folder_digest(source))
    else:
        out.update(id=source)
    return out
