"""Train on one dataset's classes, test on other datasets with their own class names.

Cross-dataset transfer and domain generalisation share this shape (APPLeNet,
following CoCoOp): few-shot training and validation on all classes of the
source, then every target's whole test split, each evaluated with the
target's class names in the target's label order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from bimors.core.errors import DataError
from bimors.data.fewshot import fewshot_with_index
from bimors.data.split import Split
from bimors.protocols.base2new import Task, val_shots


@dataclasses.dataclass
class TransferTasks:
    """Source train/val tasks and one test task per target (target name -> task)."""

    source: str
    train: Task
    val: Task
    tests: dict[str, Task]
    fewshot: dict[str, list[int]]  # part -> indices into the source's part


def transfer_tasks(
    source_split: Split,
    target_splits: Mapping[str, Split],
    shots: int,
    seed: int,
    source: str,
    index_file: str | Path | None = None,
    sampler: str = "hash",
) -> TransferTasks:
    """Few-shot tasks on all classes of ``source``; every target's test split as is."""
    if not target_splits:
        raise DataError("transfer needs at least one target dataset")
    if source in target_splits:
        raise DataError(f"the source {source!r} cannot also be a target")
    idx = fewshot_with_index(
        {"train": (source_split.train, shots), "val": (source_split.val, val_shots(shots))},
        seed,
        source,
        shots,
        index_file,
        sampler,
    )
    names = list(source_split.classnames)
    return TransferTasks(
        source=source,
        train=Task(names, [source_split.train[i] for i in idx["train"]]),
        val=Task(names, [source_split.val[i] for i in idx["val"]]),
        tests={t: Task(list(s.classnames), list(s.test)) for t, s in target_splits.items()},
        fewshot=idx,
    )
