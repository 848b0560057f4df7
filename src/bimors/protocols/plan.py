"""What a protocol asks of one run: train on this, select on that, evaluate on these."""

from __future__ import annotations

import dataclasses

from bimors.data.base import SceneDataset
from bimors.protocols.base2new import Task


@dataclasses.dataclass
class EvalSpec:
    """One evaluation: ``split`` is ``base``, ``new`` or ``all`` (classes of ``dataset``)."""

    dataset: SceneDataset
    split: str
    task: Task


@dataclasses.dataclass
class Plan:
    protocol: str
    train_dataset: SceneDataset
    train: Task
    val: Task
    evals: list[EvalSpec]
    fewshot: dict[str, list[int]]
