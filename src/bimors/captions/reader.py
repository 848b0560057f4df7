"""Read, hash and decode the images of each batch, optionally in background workers.

Each image file is read once: the SHA-256 the store records is the hash of the
very bytes the captioner saw. Decoding runs in ``torch.utils.data.DataLoader``
workers so that disk and JPEG decoding overlap generation on the GPU.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset


@dataclass
class LoadedImage:
    """One image of a batch: decoded RGB image and hash, or the reason it failed."""

    relpath: str
    sha256: str | None = None
    image: Image.Image | None = None
    error: str | None = None


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_image(root: Path, relpath: str) -> LoadedImage:
    """Read ``root/relpath`` once, hash the bytes, decode them fully as RGB."""
    path = root / relpath
    try:
        data = path.read_bytes()
    except OSError as err:
        return LoadedImage(relpath, error=f"cannot read {path} ({err.strerror or err})")
    sha = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return LoadedImage(relpath, sha, im.convert("RGB"))
    except UnidentifiedImageError:
        return LoadedImage(
            relpath, sha, error=f"cannot decode {path} (not an image format PIL reads)"
        )
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        return LoadedImage(relpath, sha, error=f"cannot decode {path} ({err})")


class _Batches(Dataset):
    def __init__(self, root: Path, batches: list[list[str]]) -> None:
        self.root = root
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> list[LoadedImage]:
        return [load_image(self.root, r) for r in self.batches[i]]


def _keep(batch: list[LoadedImage]) -> list[LoadedImage]:
    return batch


def read_batches(
    root: str | Path, batches: list[list[str]], num_workers: int = 0
) -> Iterator[list[LoadedImage]]:
    """Yield the loaded images of each batch, in order."""
    loader = DataLoader(
        _Batches(Path(root), batches),
        batch_size=None,
        num_workers=num_workers,
        collate_fn=_keep,
        prefetch_factor=2 if num_workers else None,
    )
    yield from loader
