"""Datasets (one file each), splits, few-shot sampling, transforms and synthetic scenes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bimors.core.registry import Registry
from bimors.data.aid import AID
from bimors.data.base import SceneDataset
from bimors.data.eurosat import EuroSAT
from bimors.data.imagefolder import ImageFolder
from bimors.data.mlrsnet import MLRSNet
from bimors.data.mlrsnetv2 import MLRSNetv2
from bimors.data.optimal31 import OPTIMAL31
from bimors.data.patternnet import PatternNet
from bimors.data.patternnetv2 import PatternNetv2
from bimors.data.resisc45 import RESISC45
from bimors.data.resisc45v2 import RESISC45v2
from bimors.data.rsc11 import RSC11
from bimors.data.rsicb128 import RSICB128
from bimors.data.rsicb256 import RSICB256
from bimors.data.rsicd import RSICD
from bimors.data.rsicdv2 import RSICDv2
from bimors.data.synthetic import SyntheticScenes
from bimors.data.ucmerced import UCMerced
from bimors.data.whurs19 import WHURS19

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
    OPTIMAL31,
    RSC11,
    RSICB128,
    RSICB256,
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


def dataset_options(data: Any, target: bool = False) -> dict[str, Any]:
    """Dataset options from a run's ``data`` config section (``bimors.run.config.DataConfig``).

    ``target=True`` gives the options of a transfer target of the run: the
    seeded-split seed and the exclude list (shared by all datasets of the run,
    each taking its own entries), but not ``split_file``, which names the
    training dataset's split.
    """
    out: dict[str, Any] = {}
    fields = ("split_seed", "exclude") if target else ("split_file", "split_seed", "exclude")
    for field in fields:
        value = getattr(data, field, None)
        if value is not None:
            out[field] = value
    if getattr(data, "check_split", True) is False:
        out["check_split"] = False
    if target and out.get("exclude") is not None:
        out["exclude_shared"] = True
    return out


def check_exclusions(exclude: Any, datasets: list[SceneDataset]) -> None:
    """Every entry of a run's shared exclude list must be an image of one of its datasets.

    With ``exclude_shared`` each dataset ignores entries that are not its own,
    so a typo would otherwise go unnoticed; this names the entries no dataset
    took and the file to fix.
    """
    from bimors.core.errors import DataError
    from bimors.data.base import read_exclude

    if exclude is None:
        return
    wanted = read_exclude(exclude)
    taken: set[str] = set()
    for ds in datasets:
        ds.split()
        taken |= set(ds.excluded) | {f"{ds.name}:{r}" for r in ds.excluded}
    unknown = sorted(wanted - taken)
    if unknown:
        names = ", ".join(ds.name for ds in datasets)
        raise DataError(
            f"the exclude list {exclude} names {len(unknown)} file(s) that are in none of the "
            f"run's datasets ({names}), e.g. {unknown[0]}; remove them from the list"
        )


__all__ = ["DATASETS", "SceneDataset", "build_dataset", "check_exclusions", "dataset_options"]
