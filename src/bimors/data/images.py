"""A torch dataset over split samples that decodes images and never skips one silently."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from bimors.core.errors import DataError
from bimors.data.split import Sample

BAD_IMAGE_FIX = (
    "replace it with a good copy (download again), or leave it out on purpose with an "
    "exclude list (data.exclude / --exclude)"
)


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB of any decoded image; 16-bit greyscale is scaled to 8 bits, not clipped."""
    if im.mode.startswith("I;16"):
        arr = np.asarray(im, dtype=np.uint32) // 257
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    return im.convert("RGB")


def image_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable image (empty, not an image, corrupt), or None if it decodes."""
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as im:
            im.load()
            _to_rgb(im)
    except FileNotFoundError:
        return "missing"
    except UnidentifiedImageError:
        return "not an image (no known image format)"
    except Image.DecompressionBombError:
        return (
            "corrupt or hostile image: its header claims too many pixels to decode safely "
            f"(over {2 * (Image.MAX_IMAGE_PIXELS or 0)}; a decompression bomb)"
        )
    except (OSError, SyntaxError, ValueError) as err:
        return f"corrupt or truncated image ({err})"
    return None


def open_rgb(path: Path) -> Image.Image:
    """Decode ``path`` fully as RGB, or raise DataError naming the file and the fix."""
    try:
        with Image.open(path) as im:
            im.load()
            return _to_rgb(im)
    except FileNotFoundError:
        raise DataError(
            f"image {path} does not exist; check the dataset root and split file"
        ) from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        problem = image_problem(path) or "cannot be decoded"
        raise DataError(f"image {path}: {problem}; {BAD_IMAGE_FIX}") from None


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
