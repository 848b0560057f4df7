"""CoOp's few-shot protocol: all classes, k shots per class, the full test split.

The RS few-shot benchmarks (elkhouryk/fewshot_RSVLMs, Dimitrovski et al.)
report this beside APPLeNet's three protocols: train on k images of every
class (k in 1, 2, 4, 8, 16), select on min(k, 4) validation images per class,
and test on the whole test split with every class name. The draw is the one
the config's ``data.fewshot_sampler`` names; the method presets use ``dassl``,
so the same seed gives the images the official Dassl-based codes train on.
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.fewshot import draw_fewshot
from bimors.protocols.base2new import Task, val_shots
from bimors.protocols.plan import EvalSpec, Plan

NAME = "fewshot"


def all_class_tasks(
    dataset: SceneDataset, shots: int, seed: int, sampler: str
) -> tuple[Task, Task, Task, dict[str, list[int]]]:
    """Few-shot train and val over every class, the full test split, and the draw's positions."""
    split = dataset.split()
    idx = draw_fewshot(
        {"train": (split.train, shots), "val": (split.val, val_shots(shots))},
        seed,
        dataset.name,
        sampler,
    )
    names = list(split.classnames)
    return (
        Task(names, [split.train[i] for i in idx["train"]]),
        Task(names, [split.val[i] for i in idx["val"]]),
        Task(names, list(split.test)),
        idx,
    )


def plan_fewshot(
    dataset: SceneDataset, shots: int, seed: int, targets=(), sampler: str = "hash"
) -> Plan:
    """The few-shot plan of one dataset: one evaluation, ``all`` classes of its test split."""
    if targets:
        raise ValueError("fewshot evaluates on its own dataset; it takes no targets")
    train, val, test, idx = all_class_tasks(dataset, shots, seed, sampler)
    return Plan(NAME, dataset, train, val, [EvalSpec(dataset, "all", test)], idx)
