"""What the trainer and evaluator consume: images, labels and aligned caption vectors.

Every epoch's order is a pure function of (seed, epoch, rank): the sampler is
re-seeded per epoch. Every training view is a pure function of (seed, epoch,
image): each item's transform runs under its own RNGs seeded by
``stable_seed("view", seed, epoch, relpath)`` (:class:`EpochViews`), whose
states are restored afterwards. So a view depends neither on the loader's
workers, nor on the rank, nor on what the method draws from the global RNGs
between batches (dropout, CoCoOp's or BiMoRS's random ops); every method of a
seed sees the same views, which is what lets a grid compute their frozen
features once (:mod:`bimors.engine.shared_views`). Before, transforms drew
from the global RNGs (in the main process, interleaved with the method's
draws, or in workers), so views depended on the method and on
``num_workers``; this change moved training results once, on purpose.

The global RNGs are still re-seeded per (seed, epoch, rank) for the method's
own random draws, so a run resumed at an epoch boundary sees exactly the
batches and random numbers an uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

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


@contextlib.contextmanager
def seeded_rngs(seed: int) -> Iterator[None]:
    """Seed torch, NumPy and ``random`` inside the block and restore their states after."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed % 2**63)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def view_seed(seed: int, epoch: int, relpath: str) -> int:
    """The seed of the augmented view of image ``relpath`` in ``epoch`` of run ``seed``."""
    return stable_seed("view", seed, epoch, relpath)


class EpochViews(Dataset):
    """Item i of ``images`` augmented under :func:`view_seed` of (seed, epoch, its relpath)."""

    def __init__(self, images: ImageDataset, seed: int, epoch: int) -> None:
        self.images, self.seed, self.epoch = images, seed, epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        with seeded_rngs(view_seed(self.seed, self.epoch, self.images.samples[i].relpath)):
            return self.images[i]


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
        EpochViews(data.images, seed, epoch),
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
