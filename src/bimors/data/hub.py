"""Materialise a Hugging Face dataset repository as the dataset's class-folder layout.

Repositories such as ``jonathan-roberts1/Optimal-31`` hold parquet shards
(an ``image`` struct of encoded bytes and an original path, and a label
column) with the class names as ``ClassLabel`` names in the README's
``dataset_info`` YAML; others hold class folders of image files. The images
are written once, byte for byte (never re-encoded, unlike fewshot_RSVLMs,
which saves every image as PNG), as ``<root>/<image dir>/<class>/<file>``:
into a hidden temporary folder first, which is renamed into place only when
complete, so an interrupted run leaves no half-written folder (its leftovers
are removed by the next run). A marker file records the repository and
commit and makes a rerun a no-op. Labels map to our class folders by name;
a name that maps to none is refused, naming the repository and the class.

File names: the image's original name where the shard keeps one, otherwise
``<class>_<n><ext>`` numbered in shard (sorted) and row order, which is fixed
for a given commit. Seeded splits depend on file names, so pin ``revision``
where a repository may change.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import yaml

from bimors.core.errors import DataError
from bimors.data.base import IMAGE_EXTENSIONS, SceneDataset
from bimors.data.info import HubSource

logger = logging.getLogger(__name__)

_MAGIC = (
    (b"\x89PNG", ".png"),
    (b"\xff\xd8", ".jpg"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"BM", ".bmp"),
)


def key(name: str) -> str:
    """A class name for matching: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]+", "", name.lower())


def marker_path(root: Path, source: HubSource) -> Path:
    return root / f".hub-{source.repo.replace('/', '--')}.done"


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            "reading a Hugging Face dataset's parquet shards needs pyarrow: "
            "pip install 'bimors[hub]' (or pip install pyarrow)"
        ) from None
    return pq


def _features(info: object) -> list:
    if isinstance(info, list):  # one entry per config: the first with features
        return next((f for i in info if isinstance(i, dict) for f in [i.get("features")] if f), [])
    return info.get("features", []) if isinstance(info, dict) else []


def card_class_names(snapshot: Path, column: str) -> list[str] | None:
    """``ClassLabel`` names of ``column`` in the README's ``dataset_info`` YAML, or None."""
    readme = snapshot / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8")
    m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not m:
        return None
    meta = yaml.safe_load(m.group(1)) or {}
    for feat in _features(meta.get("dataset_info")):
        if isinstance(feat, dict) and feat.get("name") == column:
            names = (feat.get("dtype") or {}).get("class_label", {}).get("names")
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names, key=lambda k: int(k))]
            if isinstance(names, list):
                return [str(n) for n in names]
    return None


def schema_class_names(schema, column: str) -> list[str] | None:
    """``ClassLabel`` names of ``column`` in a shard's ``huggingface`` schema metadata."""
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return None
    feat = json.loads(raw).get("info", {}).get("features", {}).get(column, {})
    names = feat.get("names") if isinstance(feat, dict) else None
    return [str(n) for n in names] if names else None


def class_map(names: list[str], cls: type[SceneDataset], repo: str) -> dict[str, str]:
    """Repository class name -> our class folder; refuses a name that maps to none."""
    ours = {key(c): c for c in cls.classes}
    out = {}
    for n in names:
        if key(n) not in ours:
            raise DataError(
                f"{repo}: class {n!r} maps to no {cls.name} class folder "
                f"({', '.join(cls.classes)}); the repository is not the expected copy"
            )
        out[n] = ours[key(n)]
    return out


def _extension(data: bytes, path: str) -> str:
    suffix = Path(path).suffix.lower() if path else ""
    if suffix in IMAGE_EXTENSIONS:
        return suffix
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    raise DataError(f"an image of {path or 'the repository'} is in no known image format")


def _rows(snapshot: Path, source: HubSource, cls: type[SceneDataset]):
    """``(class folder, original name, bytes)`` of every image of the repository."""
    shards = sorted(p for p in snapshot.rglob("*.parquet") if ".cache" not in p.parts)
    if not shards:  # an image-folder repository: the parent folder is the class
        images = sorted(
            p
            for p in snapshot.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and ".cache" not in p.parts
        )
        if not images:
            raise DataError(f"{source.repo}: no parquet shards and no image files in {snapshot}")
        mapping = class_map(sorted({p.parent.name for p in images}), cls, source.repo)
        for p in images:
            yield mapping[p.parent.name], p.name, p.read_bytes()
        return
    pq = _pyarrow()
    names = card_class_names(snapshot, source.label_column)
    for shard in shards:
        table = pq.read_table(shard)
        if source.label_column not in table.column_names or "image" not in table.column_names:
            raise DataError(
                f"{source.repo}: {shard.name} has columns {table.column_names}; expected "
                f"'image' and {source.label_column!r}"
            )
        shard_names = names or schema_class_names(table.schema, source.label_column)
        labels = table.column(source.label_column).to_pylist()
        if shard_names is None and labels and not isinstance(labels[0], str):
            raise DataError(
                f"{source.repo}: no ClassLabel names for column {source.label_column!r} in "
                "README.md dataset_info or the shard metadata; cannot name the classes"
            )
        mapping = class_map(shard_names or sorted(set(labels)), cls, source.repo)
        for label, image in zip(labels, table.column("image").to_pylist(), strict=True):
            name = label if isinstance(label, str) else shard_names[label]
            if isinstance(image, dict):
                data, path = image.get("bytes"), image.get("path") or ""
            else:
                data, path = image, ""
            if not data:
                raise DataError(f"{source.repo}: {shard.name} has an image without bytes")
            yield mapping[name], Path(path).name if path else "", data


def sweep_temp(root: Path) -> None:
    """Remove temporary folders an interrupted materialisation left in ``root``."""
    for p in root.glob(".hub-tmp-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def materialise(
    cls: type[SceneDataset], root: str | Path, snapshot: str | Path | None = None
) -> Path:
    """Write ``cls``'s Hugging Face repository as class folders under ``root``; returns them.

    Args:
        cls: a dataset class whose ``info.hub`` is set.
        root: the dataset folder.
        snapshot: a local copy of the repository (offline use); default:
            ``huggingface_hub.snapshot_download`` of ``info.hub``.
    """
    source = cls.info.hub
    if source is None:
        raise DataError(f"{cls.name} has no Hugging Face source")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    image_dir = cls.image_dirs[0]
    target = root if image_dir == "." else root / image_dir
    marker = marker_path(root, source)
    if marker.is_file():
        logger.info("%s is already materialised in %s", source.repo, target)
        return target
    if image_dir == "." or (target.exists() and any(target.iterdir())):
        raise DataError(
            f"{target} already exists and was not written from {source.repo}; move it away "
            "to download again"
        )
    sweep_temp(root)
    if snapshot is None:
        from huggingface_hub import snapshot_download

        snapshot = snapshot_download(source.repo, repo_type="dataset", revision=source.revision)
    snapshot = Path(snapshot)
    tmp = Path(tempfile.mkdtemp(prefix=".hub-tmp-", dir=root))
    try:
        counts: dict[str, int] = defaultdict(int)
        for folder, original, data in _rows(snapshot, source, cls):
            counts[folder] += 1
            name = original or f"{folder}_{counts[folder]}{_extension(data, original)}"
            dest = tmp / folder / name
            if dest.exists():
                raise DataError(f"{source.repo}: two images are named {folder}/{name}")
            dest.parent.mkdir(exist_ok=True)
            dest.write_bytes(data)
        empty = [c for c in cls.classes if not counts.get(c)]
        if empty:
            raise DataError(f"{source.repo}: no images for class(es) {', '.join(empty)}")
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    marker.write_text(
        json.dumps({"repo": source.repo, "snapshot": str(snapshot), "revision": snapshot.name})
        + "\n"
    )
    return target
