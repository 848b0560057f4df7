"""Base-to-new generalisation (CoCoOp; APPLeNet for RS).

Labels in the split file's order: the first ceil(n/2) are base, the rest new.
Train few-shot on base; test on the base test images with base class names
only, and on the new test images with new class names only.

With the ``hash`` sampler the base classes are cut first and then drawn from;
with ``dassl`` the draw runs over all classes first and is then cut, as the
official codes do (their draw of a base class depends on the whole class set).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bimors.data.fewshot import (
    base_new_labels,
    fewshot_with_index,
    subsample_classes,
    subsample_positions,
)
from bimors.data.split import Sample, Split

#: Validation images per class: CoOp samples min(shots, 4) for val.
MAX_VAL_SHOTS = 4


def val_shots(shots: int) -> int:
    """Validation shots for ``shots`` training shots (all images when shots <= 0)."""
    return min(shots, MAX_VAL_SHOTS) if shots > 0 else 0


@dataclasses.dataclass
class Task:
    """Samples and class names (label order) of one train or test set."""

    classnames: list[str]
    samples: list[Sample]


@dataclasses.dataclass
class Base2NewTasks:
    train: Task
    val: Task
    test_base: Task
    test_new: Task
    fewshot: dict[str, list[int]]  # part -> indices into the class-subsampled part


def base2new_tasks(
    split: Split,
    shots: int,
    seed: int,
    dataset: str,
    index_file: str | Path | None = None,
    sampler: str = "hash",
) -> Base2NewTasks:
    """The train/val/test tasks of base-to-new for one seed.

    ``index_file`` keeps the few-shot choice: read back if it exists, else
    written (for ``dassl`` it holds the draw over all classes).
    """
    base, new = base_new_labels(len(split.classnames))
    base_names = [split.classnames[i] for i in base]
    new_names = [split.classnames[i] for i in new]
    train_all = subsample_classes(split.train, base)
    val_all = subsample_classes(split.val, base)
    if sampler == "dassl":
        full = fewshot_with_index(
            {"train": (split.train, shots), "val": (split.val, val_shots(shots))},
            seed,
            dataset,
            shots,
            index_file,
            sampler,
        )
        idx = {
            "train": subsample_positions(split.train, base, full["train"]),
            "val": subsample_positions(split.val, base, full["val"]),
        }
    else:
        idx = fewshot_with_index(
            {"train": (train_all, shots), "val": (val_all, val_shots(shots))},
            seed,
            dataset,
            shots,
            index_file,
            sampler,
        )
    return Base2NewTasks(
        train=Task(base_names, [train_all[i] for i in idx["train"]]),
        val=Task(base_names, [val_all[i] for i in idx["val"]]),
        test_base=Task(base_names, subsample_classes(split.test, base)),
        test_new=Task(new_names, subsample_classes(split.test, new)),
        fewshot=idx,
    )
