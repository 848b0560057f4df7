"""Checks a run passes before any work: what the config names must exist and work here.

The config dataclasses check what they can alone (types, ranges, finite
numbers, device names). What depends on the machine or the data is checked
here, before a model is loaded or an epoch trained, so a bad value costs
seconds, not a run: the device exists, the folders a run writes are
writable, every evaluation set has images, and every image decodes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from bimors.core import atomic
from bimors.core.errors import ConfigError, DataError, StorageError
from bimors.engine.dist import check_device

if TYPE_CHECKING:
    from bimors.protocols.plan import Plan
    from bimors.run.config import RunConfig


def check_writable(folder: str | os.PathLike[str], field: str) -> None:
    """Create ``folder`` if needed and prove a file can be written there.

    Raises:
        StorageError: read-only, not permitted or full, with ``field`` named.
        ConfigError: the folder cannot be created at all (e.g. under /proc).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(folder / ".bimors-write-check") as tmp:
            tmp.write_bytes(b"")
        (folder / ".bimors-write-check").unlink()
    except StorageError as err:
        raise StorageError(f"{field}: {err}") from None
    except OSError as err:
        raise ConfigError(
            f"{field}={folder}: cannot create or write that folder ({err.strerror or err}); "
            "choose a writable folder"
        ) from None


def check_config(cfg: RunConfig, out: str | os.PathLike[str] | None = None) -> None:
    """What the config names exists on this machine: device, feature cache, output folder."""
    from bimors.engine.feature_cache import default_cache_dir

    check_device(cfg.train.device)
    f = cfg.features
    if f.cache or f.train_views:
        where = f.dir or default_cache_dir()
        try:
            check_writable(where, "features.dir")
        except ConfigError as err:
            raise ConfigError(f"{err}, or set features.cache=false") from None
    if out is not None:
        check_writable(out, "--out")


def check_plan(cfg: RunConfig, plan: Plan, progress: bool = False) -> None:
    """Every set the run trains, selects on or evaluates on has images, and they decode."""
    sets = [("train", plan.train), ("val", plan.val)]
    if cfg.train.selection != "val":
        sets = sets[:1]
    sets += [(f"{spec.dataset.name} {spec.split}", spec.task) for spec in plan.evals]
    empty = [name for name, task in sets if not task.samples]
    if empty:
        raise DataError(
            f"no images in: {', '.join(empty)} (every image excluded, or classes without "
            "test images): a result over 0 images is no result; exclude fewer images "
            "(data.exclude) or restore them"
        )
    check_tasks(
        [(plan.train_dataset, [plan.train, plan.val])]
        + [(spec.dataset, [spec.task]) for spec in plan.evals],
        plan.train_dataset.name,
        progress,
    )


def check_tasks(groups, trained_on: str | None, progress: bool = False) -> None:
    """Decode the images of ``(dataset, tasks)`` groups; one error naming every bad file."""
    from bimors.data.checks import check_images

    by_dataset: dict[str, tuple] = {}
    for dataset, tasks in groups:
        rel = {s.relpath for task in tasks for s in task.samples}
        if dataset.name in by_dataset:
            by_dataset[dataset.name][1].update(rel)
        else:
            by_dataset[dataset.name] = (dataset, set(rel))
    for name, (dataset, relpaths) in by_dataset.items():
        check_images(
            name,
            dataset.image_root,
            relpaths,
            dataset.excluded,
            excludable=name == trained_on,
            progress=progress,
        )
