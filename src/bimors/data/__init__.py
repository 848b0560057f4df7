"""Datasets (one file each), splits, few-shot sampling, transforms and synthetic scenes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bimors.data.base import SceneDataset
from bimors.data.imagefolder import ImageFolder
from bimors.data.synthetic import SyntheticScenes
from bimors.registry import Registry

DATASETS: Registry[Callable[..., SceneDataset]] = Registry("dataset")
DATASETS.register(ImageFolder.name)(ImageFolder)
DATASETS.register(SyntheticScenes.name)(SyntheticScenes)


def build_dataset(name: str, root: str | Path, **options: Any) -> SceneDataset:
    """The registered dataset ``name`` under ``root``."""
    return DATASETS.get(name)(root, **options)


__all__ = ["DATASETS", "SceneDataset", "build_dataset"]
