"""What the trainer and evaluator consume: images, labels and aligned caption vectors.

Every epoch's order and augmentation are a pure function of (seed, epoch,
rank): the sampler is re-seeded per epoch and so are the loader's workers and
the global RNG used by transforms. A run resumed at an epoch boundary
therefore sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sized

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler, Subset

from bimors.data.images import ImageDataset
from bimors.data.split import stable_seed


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


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> int:
    """Seed the global RNGs for one epoch of one rank; returns the epoch's seed.

    Transforms in the main process (and anything random in a method) draw from
    the global RNGs, so re-seeding them per epoch makes a resumed epoch equal
    the uninterrupted one.
    """
    epoch_seed = stable_seed("epoch", seed, epoch, rank)
    torch.manual_seed(epoch_seed)
    random.seed(epoch_seed)
    np.random.seed(epoch_seed % 2**32)
    return epoch_seed


def epoch_sampler(
    dataset: Sized, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> DistributedSampler:
    """This rank's shuffled indices of ``dataset`` in ``epoch`` (shards of one permutation)."""
    sampler = DistributedSampler(
        dataset,  # type: ignore[arg-type]
        num_replicas=world_size,
        rank=rank,
        shuffle=True,
        seed=seed,
        drop_last=False,
    )
    sampler.set_epoch(epoch)
    return sampler


def train_loader(
    data: TaskData,
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """The shuffled, augmented batches of one epoch for one rank (batch size per rank)."""
    epoch_seed = seed_epoch(seed, epoch, rank)
    sampler = epoch_sampler(data.images, seed, epoch, rank, world_size)
    n_local = len(sampler)
    return DataLoader(
        data.images,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=n_local >= batch_size,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_seed_worker,
        generator=torch.Generator().manual_seed(epoch_seed),
    )


def eval_loader(
    data: TaskData,
    batch_size: int,
    indices: list[int] | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """Batches of ``data`` in order (optionally only ``indices``: this rank's shard)."""
    dataset = data.images if indices is None else Subset(data.images, indices)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_seed_worker,
    )
