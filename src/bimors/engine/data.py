"""What the trainer and evaluator consume: images, labels and aligned caption vectors."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from bimors.data.images import ImageDataset


@dataclasses.dataclass
class TaskData:
    """One split of one task.

    Attributes:
        images: the image dataset (item: pixels, label, index).
        classnames: prompt names in label order.
        captions: caption vectors aligned with ``images.samples`` (N, Dc), or None.
    """

    images: ImageDataset
    classnames: list[str]
    captions: Tensor | None = None

    def __len__(self) -> int:
        return len(self.images)


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    data: TaskData,
    batch_size: int,
    train: bool,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A loader whose shuffling and augmentation are reproducible from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        data.images,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train and len(data.images) >= batch_size,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_seed_worker,
        generator=gen,
        persistent_workers=False,
    )
