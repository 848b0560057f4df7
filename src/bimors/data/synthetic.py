"""Seeded, procedurally drawn remote-sensing-like scenes for tests and the demo.

Each class has a recognisable layout (a winding river, a runway with a centre
line, a grid of roofs, ...) with per-image random geometry, colours and
texture, so that classes are visually distinct but images within a class are
not copies. Output is an image-folder dataset: ``root/<class>/<class>_<i>.png``.
Generation is deterministic in (seed, class, index) and independent of
enumeration order, so the same call always writes the same bytes.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from bimors.core import atomic
from bimors.data.imagefolder import ImageFolder

logger = logging.getLogger(__name__)

Painter = Callable[[np.random.Generator, int], Image.Image]


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int], amount: int = 18) -> tuple:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def _texture(rng: np.random.Generator, size: int, rgb: tuple[int, int, int], amount: float = 14.0):
    """A flat colour with smooth noise: the ground of most scenes."""
    base = np.array(_jitter(rng, rgb), dtype=np.float32)
    coarse = rng.normal(0, amount, (size // 8 + 1, size // 8 + 1, 3)).astype(np.float32)
    coarse = np.kron(coarse, np.ones((8, 8, 1), dtype=np.float32))[:size, :size]
    fine = rng.normal(0, amount / 2, (size, size, 3)).astype(np.float32)
    return Image.fromarray(np.clip(base + coarse + fine, 0, 255).astype(np.uint8))


def _river(rng, size):
    img = _texture(rng, size, (96, 128, 70))
    draw = ImageDraw.Draw(img)
    phase, amp, width = (
        rng.uniform(0, 2 * math.pi),
        rng.uniform(0.1, 0.25) * size,
        size * rng.uniform(0.1, 0.18),
    )
    pts = [
        (x, size / 2 + amp * math.sin(phase + 2 * math.pi * x / size))
        for x in range(-4, size + 5, 2)
    ]
    draw.line(pts, fill=_jitter(rng, (50, 90, 160)), width=int(width))
    return img.rotate(
        float(rng.uniform(0, 180)), resample=Image.BILINEAR, fillcolor=_jitter(rng, (96, 128, 70))
    )


def _forest(rng, size):
    img = _texture(rng, size, (30, 80, 35), 10)
    draw = ImageDraw.Draw(img)
    for _ in range(int(size * size / 30)):
        x, y, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(1.5, 4)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_jitter(rng, (20, 70, 25), 25))
    return img


def _runway(rng, size):
    img = _texture(rng, size, (150, 160, 120))
    draw = ImageDraw.Draw(img)
    w = size * rng.uniform(0.16, 0.24)
    c = size / 2 + rng.uniform(-0.15, 0.15) * size
    draw.rectangle([-size, c - w / 2, 2 * size, c + w / 2], fill=_jitter(rng, (70, 70, 75), 8))
    for x in np.arange(-size, 2 * size, size / 6):
        draw.rectangle([x, c - 1, x + size / 12, c + 1], fill=(235, 235, 235))
    return img.rotate(
        float(rng.uniform(0, 180)), resample=Image.BILINEAR, fillcolor=_jitter(rng, (150, 160, 120))
    )


def _farmland(rng, size):
    img = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(img)
    palette = [(200, 180, 90), (110, 150, 60), (150, 120, 70), (170, 190, 90), (90, 120, 50)]
    n = int(rng.integers(3, 6))
    edges = np.linspace(0, size, n + 1)
    for i in range(n):
        for j in range(n):
            col = palette[int(rng.integers(len(palette)))]
            draw.rectangle([edges[i], edges[j], edges[i + 1], edges[j + 1]], fill=_jitter(rng, col))
            for k in range(0, size, 3):  # furrows
                y = edges[j] + k
                if y < edges[j + 1]:
                    draw.line(
                        [(edges[i], y), (edges[i + 1], y)], fill=_jitter(rng, col, 30), width=1
                    )
    return img.rotate(
        float(rng.uniform(0, 90)), resample=Image.BILINEAR, expand=False, fillcolor=palette[0]
    )


def _beach(rng, size):
    img = _texture(rng, size, (220, 205, 160), 8)
    draw = ImageDraw.Draw(img)
    cut = rng.uniform(0.35, 0.65) * size
    draw.polygon(
        [(cut, -size), (2 * size, -size), (2 * size, 2 * size), (cut - size * 0.2, 2 * size)],
        fill=_jitter(rng, (40, 110, 170)),
    )
    draw.line(
        [(cut, -size), (cut - size * 0.2, 2 * size)], fill=(245, 245, 245), width=max(2, size // 20)
    )
    return img.rotate(
        float(rng.uniform(0, 360)), resample=Image.BILINEAR, fillcolor=(220, 205, 160)
    )


def _residential(rng, size):
    img = _texture(rng, size, (120, 120, 120), 6)
    draw = ImageDraw.Draw(img)
    step = size / rng.integers(5, 8)
    for x in np.arange(0, size, step):
        for y in np.arange(0, size, step):
            roof = [(170, 70, 60), (110, 110, 120), (190, 170, 150)][int(rng.integers(3))]
            m = step * 0.15
            draw.rectangle([x + m, y + m, x + step - m, y + step - m], fill=_jitter(rng, roof, 25))
    return img.rotate(
        float(rng.choice([0, 15, 30, 45])), resample=Image.BILINEAR, fillcolor=(120, 120, 120)
    )


def _lake(rng, size):
    img = _texture(rng, size, (80, 120, 60))
    draw = ImageDraw.Draw(img)
    cx, cy = rng.uniform(0.35, 0.65, 2) * size
    rx, ry = rng.uniform(0.2, 0.38, 2) * size
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=_jitter(rng, (30, 70, 130)))
    return img.filter(ImageFilter.GaussianBlur(0.6))


def _desert(rng, size):
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, freq = rng.uniform(0, math.pi), rng.uniform(3, 6)
    wave = np.sin((x * math.cos(angle) + y * math.sin(angle)) * freq * 2 * math.pi / size)
    base = np.array(_jitter(rng, (215, 180, 120)), dtype=np.float32)
    arr = base + 22 * wave[..., None] + rng.normal(0, 5, (size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _parking_lot(rng, size):
    img = _texture(rng, size, (85, 85, 90), 6)
    draw = ImageDraw.Draw(img)
    rows = int(rng.integers(3, 5))
    for r in range(rows):
        y0 = (r + 0.5) * size / rows - size / (3 * rows)
        for x in np.arange(0, size, size / 10):
            draw.line([(x, y0), (x, y0 + size / (1.5 * rows))], fill=(230, 230, 230), width=1)
            if rng.random() < 0.6:
                car = [(200, 30, 30), (230, 230, 230), (30, 30, 30), (40, 70, 200)][
                    int(rng.integers(4))
                ]
                draw.rectangle(
                    [x + 1.5, y0 + 2, x + size / 10 - 1.5, y0 + size / (1.5 * rows) - 2], fill=car
                )
    return img.rotate(float(rng.choice([0, 90])), resample=Image.BILINEAR)


def _harbor(rng, size):
    img = _texture(rng, size, (35, 85, 140), 8)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, size, size * rng.uniform(0.15, 0.3)], fill=_jitter(rng, (150, 150, 140)))
    for x in np.arange(size * 0.1, size, size / rng.integers(3, 6)):
        draw.rectangle([x, 0, x + size / 25, size * 0.75], fill=(200, 200, 195))
        for y in np.arange(size * 0.35, size * 0.7, size / 8):
            if rng.random() < 0.7:
                draw.ellipse(
                    [x + size / 20, y, x + size / 20 + size / 10, y + size / 25],
                    fill=(245, 245, 245),
                )
    return img.rotate(float(rng.choice([0, 90, 180, 270])), resample=Image.BILINEAR)


#: Classes in label order (folder names use underscores, as the RS datasets do).
SCENES: dict[str, Painter] = {
    "river": _river,
    "forest": _forest,
    "runway": _runway,
    "farmland": _farmland,
    "beach": _beach,
    "dense_residential": _residential,
    "lake": _lake,
    "desert": _desert,
    "parking_lot": _parking_lot,
    "harbor": _harbor,
}


def draw_scene(name: str, seed: int, index: int, size: int = 64) -> Image.Image:
    """One scene of class ``name``; identical for identical (name, seed, index, size)."""
    painter = SCENES[name]
    class_id = list(SCENES).index(name)
    rng = np.random.default_rng([seed, class_id, index])
    big = painter(rng, size * 2)  # draw at 2x, then downsample: smooth edges, cheap anti-aliasing
    return big.resize((size, size), Image.BICUBIC)


def generate_scenes(
    root: str | Path,
    per_class: int = 40,
    size: int = 64,
    seed: int = 0,
    classes: list[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an image-folder dataset of synthetic scenes to ``root``.

    The folder is written under a temporary name and renamed into place, so an
    interrupted call leaves no partial dataset.
    """
    root = Path(root)
    classes = list(SCENES) if classes is None else classes
    unknown = [c for c in classes if c not in SCENES]
    if unknown:
        raise ValueError(f"unknown synthetic classes {unknown}; valid: {', '.join(SCENES)}")
    if root.exists():
        if not overwrite:
            raise FileExistsError(f"{root} exists; pass overwrite=True (--overwrite) to replace it")
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        atomic.honour_umask(tmp, directory=True)  # mkdtemp makes it 0700: others could not read
        for name in classes:
            (tmp / name).mkdir()
            for i in range(per_class):
                draw_scene(name, seed, i, size).save(tmp / name / f"{name}_{i:04d}.png")
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info(
        "wrote %d synthetic scenes in %d classes to %s",
        per_class * len(classes),
        len(classes),
        root,
    )
    return root


class SyntheticScenes(ImageFolder):
    """A folder written by :func:`generate_scenes`, in the generator's label order."""

    name = "synthetic"

    def __init__(
        self,
        root: str | Path,
        split_file: str | Path | None = None,
        split_seed: int = 0,
        **options: Any,
    ) -> None:
        present = (
            {p.name for p in Path(root).iterdir() if p.is_dir()} if Path(root).is_dir() else set()
        )
        order = [c for c in SCENES if c in present]
        order += sorted(c for c in present - set(SCENES) if not c.startswith("."))
        super().__init__(root, order or None, split_file, split_seed, **options)
