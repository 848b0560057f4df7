"""Tiny fake copies of each dataset's folder layout, with seeded 32-px images."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from bimors.data.base import SceneDataset
from bimors.data.split import PARTS


def image_bytes(seed: int, size: tuple[int, int] = (32, 32), fmt: str = "JPEG") -> bytes:
    """A seeded noise image encoded as ``fmt``."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


_FORMATS = {".jpg": "JPEG", ".png": "PNG", ".tif": "TIFF"}


def write_image(path: Path, seed: int, size: tuple[int, int] = (32, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(seed, size, _FORMATS[path.suffix.lower()]))
    return path


def file_name(cls: type[SceneDataset], classname: str, i: int) -> str:
    """The dataset's own file naming (as far as we know it)."""
    if cls.name == "patternnet":
        return f"{classname.replace('_', '')}{i}.jpg"
    if cls.name == "ucmerced":
        return f"{classname}{i:02d}.tif"
    if cls.name in ("optimal31", "rsc11", "rsicb128", "rsicb256"):
        return f"{classname}_{i + 1}.png"  # as fewshot_RSVLMs writes them
    if cls.name in ("aid", "whurs19"):
        return f"{classname.lower()}_{i}.jpg"
    return f"{classname}_{i}.jpg"


def fake_dataset(
    cls: type[SceneDataset],
    root: Path,
    per_class: int = 3,
    image_dir: str | None = None,
    seed: int = 0,
) -> Path | None:
    """Write a fake ``cls`` under ``root``; returns a fake split file for published datasets.

    The fake split follows the published format and label order: image i of
    each class goes to train, val and test in turn.
    """
    image_dir = image_dir if image_dir is not None else cls.image_dirs[0]
    base = root if image_dir == "." else root / image_dir
    rows: dict[str, list] = {p: [] for p in PARTS}
    for label, c in enumerate(cls.classes):
        for i in range(per_class):
            rel = f"{c}/{file_name(cls, c, i)}"
            write_image(base / rel, seed * 100_000 + label * 100 + i)
            rows[PARTS[i % 3]].append([rel, label, c])
    if cls.published is None:
        return None
    split_file = root / "fake_split.json"
    split_file.write_text(json.dumps(rows))
    return split_file
