"""Datasets (one file each), splits, few-shot sampling, transforms and synthetic scenes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bimors.data.aid import AID
from bimors.data.base import SceneDataset
from bimors.data.eurosat import EuroSAT
from bimors.data.imagefolder import ImageFolder
from bimors.data.mlrsnet import MLRSNet
from bimors.data.mlrsnetv2 import MLRSNetv2
from bimors.data.patternnet import PatternNet
from bimors.data.patternnetv2 import PatternNetv2
from bimors.data.resisc45 import RESISC45
from bimors.data.resisc45v2 import RESISC45v2
from bimors.data.rsicd import RSICD
from bimors.data.rsicdv2 import RSICDv2
from bimors.data.synthetic import SyntheticScenes
from bimors.data.ucmerced import UCMerced
from bimors.data.whurs19 import WHURS19
from bimors.registry import Registry

DATASETS: Registry[Callable[..., SceneDataset]] = Registry("dataset")
for _cls in (
    PatternNet,
    RSICD,
    RESISC45,
    MLRSNet,
    PatternNetv2,
    RSICDv2,
    RESISC45v2,
    MLRSNetv2,
    UCMerced,
    EuroSAT,
    AID,
    WHURS19,
    ImageFolder,
    SyntheticScenes,
):
    DATASETS.register(_cls.name)(_cls)


def build_dataset(name: str, root: str | Path, **options: Any) -> SceneDataset:
    """The registered dataset ``name`` under ``root``.

    ``options`` go to the dataset: ``split_file``, ``split_seed``, ``exclude``,
    ``fetch``, ``check_split`` (and ``class_order`` for ``imagefolder``).
    """
    return DATASETS.get(name)(root, **options)


def dataset_options(data: Any) -> dict[str, Any]:
    """Dataset options from a run's ``data`` config section (``bimors.run_config.DataConfig``)."""
    out: dict[str, Any] = {}
    for field in ("split_file", "split_seed", "exclude"):
        value = getattr(data, field, None)
        if value is not None:
            out[field] = value
    if getattr(data, "check_split", True) is False:
        out["check_split"] = False
    return out


__all__ = ["DATASETS", "SceneDataset", "build_dataset", "dataset_options"]
