"""A torch dataset over split samples that decodes images and never skips one silently."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from bimors.data.split import Sample
from bimors.errors import DataError


def open_rgb(path: Path) -> Image.Image:
    """Decode ``path`` fully as RGB, or raise DataError naming the file."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except FileNotFoundError:
        raise DataError(
            f"image {path} does not exist; check the dataset root and split file"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"image {path} cannot be decoded ({err}); replace the file or exclude it explicitly"
        ) from None


class ImageDataset(Dataset):
    """Samples under ``root``; item i is ``{"pixels", "label", "index"}``.

    ``index`` is the position in ``samples``, used to fetch per-image data such
    as caption vectors in bulk.
    """

    def __init__(self, root: str | Path, samples: list[Sample], transform: Callable) -> None:
        self.root = Path(root)
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        return {
            "pixels": self.transform(open_rgb(self.root / s.relpath)),
            "label": s.label,
            "index": i,
        }
