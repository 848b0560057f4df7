"""Base-to-new generalisation (CoCoOp; APPLeNet for RS).

Labels in the split file's order: the first ceil(n/2) are base, the rest new.
Train few-shot on base; test on the base test images with base class names
only, and on the new test images with new class names only.
"""

from __future__ import annotations

import dataclasses

from bimors.data.fewshot import base_new_labels, fewshot_indices, subsample_classes
from bimors.data.split import Sample, Split

#: Validation images per class: CoOp samples min(shots, 4) for val.
MAX_VAL_SHOTS = 4


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


def base2new_tasks(split: Split, shots: int, seed: int, dataset: str) -> Base2NewTasks:
    """The train/val/test tasks of base-to-new for one seed."""
    base, new = base_new_labels(len(split.classnames))
    base_names = [split.classnames[i] for i in base]
    new_names = [split.classnames[i] for i in new]
    train_all = subsample_classes(split.train, base)
    val_all = subsample_classes(split.val, base)
    train_idx = fewshot_indices(train_all, shots, seed, f"{dataset}/train")
    val_idx = fewshot_indices(
        val_all, min(shots, MAX_VAL_SHOTS) if shots > 0 else 0, seed, f"{dataset}/val"
    )
    return Base2NewTasks(
        train=Task(base_names, [train_all[i] for i in train_idx]),
        val=Task(base_names, [val_all[i] for i in val_idx]),
        test_base=Task(base_names, subsample_classes(split.test, base)),
        test_new=Task(new_names, subsample_classes(split.test, new)),
        fewshot={"train": train_idx, "val": val_idx},
    )
