"""What ``bimors data list`` shows: each dataset's facts and its status under a data folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bimors.core.errors import DataError
from bimors.data.base import SceneDataset, list_images
from bimors.data.published import split_candidates


@dataclasses.dataclass
class Status:
    """A dataset's state under a data folder.

    ``state`` is ``missing`` (no folder), ``ready`` (layout right, expected
    number of images), ``incomplete`` (folder there but something is off:
    ``detail`` says what) or ``n/a`` (datasets without a usual folder name).
    """

    state: str
    path: Path | None = None
    images: int = 0
    split: str = ""
    detail: str = ""


def split_kind(cls: type[SceneDataset]) -> str:
    return f"published ({cls.published.filename})" if cls.published else "seeded (ours)"


def locate(cls: type[SceneDataset], data_dir: Path) -> Path | None:
    """The dataset's folder under ``data_dir`` (usual name, registry name or lower case)."""
    for name in dict.fromkeys((cls.folder, cls.name, cls.folder.lower())):
        if name and (data_dir / name).is_dir():
            return data_dir / name
    return None


def dataset_status(cls: type[SceneDataset], data_dir: str | Path) -> Status:
    """Look (without decoding, fetching or writing) at ``cls`` under ``data_dir``."""
    if not cls.folder:
        return Status("n/a", detail="give its folder with --root")
    path = locate(cls, Path(data_dir))
    if path is None:
        return Status("missing", detail=f"expected {Path(data_dir) / cls.folder}")
    try:
        ds = cls(path, fetch=False)
    except DataError as err:
        return Status("incomplete", path, detail=str(err))
    found, *_ = ds.class_folders()
    images = sum(len(list_images(f)) for f in found.values())
    if cls.published is not None:
        local = any(p.is_file() for p in split_candidates(cls.published, path))
        split = "split file found" if local else "split file fetched on first use"
    else:
        split = "split saved" if ds.default_split_file().is_file() else "split made on first use"
    problems = ds.layout_problems()
    if not problems and cls.info.images and images != cls.info.images:
        problems.append(f"{images} images, {cls.info.images} expected")
    if problems:
        return Status("incomplete", path, images, split, "; ".join(problems))
    return Status("ready", path, images, split)


def describe(cls: type[SceneDataset]) -> list[tuple[str, str]]:
    """``(field, text)`` rows describing ``cls`` for ``bimors data list NAME``."""
    info = cls.info
    rows = [
        ("dataset", f"{cls.name} ({info.title})"),
        ("source", info.source),
        ("licence", info.licence),
        ("citation", info.citation),
        ("layout", info.layout),
        ("images", str(info.images) if info.images else "unknown / varies"),
        ("split", split_kind(cls)),
    ]
    if cls.published:
        rows.append(("split sha256", cls.published.sha256))
        rows.append(("split sizes", "train {}, val {}, test {}".format(*cls.published.counts)))
    if info.archive:
        rows.append(("download", ", ".join(info.archive.urls)))
        if info.archive.note:
            rows.append(("download note", info.archive.note))
    elif not info.hub:
        rows.append(("download", "manual: " + (info.manual or "see the source")))
    if info.hub:
        rows.append(("hugging face", f"{info.hub.repo} (label column {info.hub.label_column})"))
        if info.hub.note:
            rows.append(("hub note", info.hub.note))
    return rows
