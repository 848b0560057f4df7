"""Where the trainer and evaluator get image features: the image encoder, or the cache.

The trainer and evaluator ask a :class:`FeatureSource` for batches and for the
:class:`~bimors.backbones.base.ImageFeatures` of each batch. The plain source
decodes images and runs the frozen image encoder every step (the reference
behaviour). :class:`CachedFeatures` serves features stored by
:mod:`bimors.engine.feature_cache` instead, so cached batches decode no image
and run no image encoder:

* evaluation (deterministic test transform): on by default where a run asks
  for it; cached features equal freshly computed ones;
* training: only with ``train_views = V > 0``. Each training image then has V
  augmented views drawn with seeds fixed per (image, view), computed once and
  reused by every epoch, method and seed; epoch e shows view
  ``(e + offset(seed, image)) % V``, so a run of V epochs sees every view once.
  This replaces an endless stream of random augmentations by V fixed ones, a
  different augmentation distribution: that is why it is off by default.

A method whose image features depend on trainable state sets
``frozen_image_features = False`` and always gets the plain path.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler
from tqdm.auto import tqdm

from bimors.backbones.base import ImageFeatures
from bimors.data.images import ImageDataset
from bimors.data.split import stable_seed
from bimors.engine.data import TaskData, make_loader
from bimors.engine.feature_cache import FeatureCache, FeatureSpace, space_description
from bimors.engine.precision import autocast, resolve_precision
from bimors.methods.base import Method

logger = logging.getLogger(__name__)


class FeatureSource:
    """Decode images and run the frozen image encoder on every batch."""

    def loader(
        self,
        method: Method,
        data: TaskData,
        batch_size: int,
        train: bool,
        *,
        seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        precision: str = "fp32",
    ) -> Iterable[dict[str, Any]]:
        """Batches of ``data``; for ``train``, shuffled and augmented reproducibly from ``seed``."""
        return make_loader(data, batch_size, train, seed, num_workers, pin_memory)

    def start_epoch(self, epoch: int) -> None:
        """Say which (0-based) epoch starts; sources whose batches depend on it listen."""

    def image_features(
        self, method: Method, batch: dict[str, Any], device: torch.device
    ) -> ImageFeatures:
        """Features of one batch: read from it when cached, else computed from its pixels."""
        if "pooled" in batch:
            pooled = batch["pooled"].to(device, non_blocking=True)
            if "tokens" in batch:
                tokens = batch["tokens"].to(device, non_blocking=True)
            else:  # the method declared it never reads token states
                tokens = pooled.new_empty(len(pooled), 0, 0)
            return ImageFeatures(pooled, tokens)
        return method.image_features(batch["pixels"].to(device, non_blocking=True))


class CachedFeatures(FeatureSource):
    """Serve cached image features where that is exact (eval) or asked for (training views).

    Args:
        cache: where feature spaces live (default: :func:`default_cache_dir`).
        eval: cache features of deterministic (evaluation) loaders.
        train_views: augmented views cached per training image; 0 keeps training on
            fresh random augmentations with the image encoder every step.
        fill_batch_size: images per image-encoder call while filling the cache.
        progress: show a progress bar while filling.
    """

    def __init__(
        self,
        cache: FeatureCache | None = None,
        eval: bool = True,
        train_views: int = 0,
        fill_batch_size: int = 64,
        progress: bool = False,
    ) -> None:
        if train_views < 0:
            raise ValueError("train_views must be >= 0")
        self.cache = cache if cache is not None else FeatureCache()
        self.eval = eval
        self.train_views = train_views
        self.fill_batch_size = fill_batch_size
        self.progress = progress
        self._samplers: list[ViewSampler] = []

    def uses_cache(self, method: Method, train: bool) -> bool:
        if not type(method).frozen_image_features:
            return False
        return self.train_views > 0 if train else self.eval

    def start_epoch(self, epoch: int) -> None:
        for sampler in self._samplers:
            sampler.set_epoch(epoch)

    def loader(
        self,
        method: Method,
        data: TaskData,
        batch_size: int,
        train: bool,
        *,
        seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        precision: str = "fp32",
    ) -> Iterable[dict[str, Any]]:
        if not self.uses_cache(method, train):
            return super().loader(
                method,
                data,
                batch_size,
                train,
                seed=seed,
                num_workers=num_workers,
                pin_memory=pin_memory,
                precision=precision,
            )
        images = data.images
        views = self.train_views if train else 1
        device = method.backbone.device
        space = self.cache.space(
            space_description(
                method.backbone, images.transform, resolve_precision(precision, device), device
            )
        )
        fields = tuple(type(method).image_fields)
        names = [
            [space.entry_name(images.root / s.relpath, v) for v in range(views)]
            for s in images.samples
        ]
        missing = [
            (i, v)
            for i in range(len(names))
            for v in range(views)
            if not space.has(names[i][v], fields)
        ]
        if missing:
            self._fill(method, images, space, names, missing, fields, train, precision, num_workers)
        items = CachedItems(space, names, [s.label for s in images.samples], fields)
        gen = torch.Generator().manual_seed(seed)
        base = RandomSampler(items, generator=gen) if train else SequentialSampler(items)
        sampler = ViewSampler(base, views, seed)
        if train:
            self._samplers.append(sampler)
        return DataLoader(
            items,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=train and len(items) >= batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            generator=gen,
        )

    def _fill(
        self,
        method: Method,
        images: ImageDataset,
        space: FeatureSpace,
        names: list[list[str]],
        missing: list[tuple[int, int]],
        fields: tuple[str, ...],
        train: bool,
        precision: str,
        num_workers: int,
    ) -> None:
        """Compute and store the features of ``missing`` (image, view) pairs."""
        logger.info("caching image features of %d image views in %s", len(missing), space.folder)
        loader = DataLoader(
            ViewPixels(images, seeded=train),
            batch_size=self.fill_batch_size,
            sampler=missing,
            num_workers=num_workers,
        )
        device = method.backbone.device
        with torch.no_grad(), autocast(device, precision):
            for batch in tqdm(loader, desc="caching features", disable=not self.progress):
                feats = method.image_features(batch["pixels"].to(device))
                for k, (i, v) in enumerate(
                    zip(batch["i"].tolist(), batch["v"].tolist(), strict=True)
                ):
                    space.save(names[i][v], {f: getattr(feats, f)[k] for f in fields})


def feature_source(
    cache: bool = True,
    cache_dir: str | None = None,
    train_views: int = 0,
    progress: bool = False,
) -> FeatureSource:
    """The source a run's ``features`` config asks for (the plain one when nothing is cached)."""
    if not cache and train_views == 0:
        return FeatureSource()
    return CachedFeatures(
        FeatureCache(cache_dir), eval=cache, train_views=train_views, progress=progress
    )


class ViewSampler(Sampler):
    """Yields ``(index, view)``: the indices of ``base`` with the view each shows this epoch.

    Each :meth:`__iter__` is one epoch; :meth:`set_epoch` sets the epoch the next
    one is (for resuming), otherwise epochs count up from 0.
    """

    def __init__(self, base: Sampler, views: int, seed: int) -> None:
        self.base = base
        self.views = views
        n = len(base)  # type: ignore[arg-type]
        self.offsets = (
            [stable_seed("view", seed, i) % views for i in range(n)] if views > 1 else None
        )
        self._next_epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self._next_epoch = epoch

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
        for i in self.base:
            yield i, 0 if self.offsets is None else (epoch + self.offsets[i]) % self.views


class CachedItems(Dataset):
    """Item ``(i, view)``: the cached features of image i in that view, its label and index."""

    def __init__(
        self,
        space: FeatureSpace,
        names: list[list[str]],
        labels: list[int],
        fields: tuple[str, ...],
    ) -> None:
        self.space, self.names, self.labels, self.fields = space, names, labels, fields

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        i, v = key
        item: dict[str, Any] = {"label": self.labels[i], "index": i}
        for f in self.fields:
            item[f] = self.space.load(self.names[i][v], f)
        return item


class ViewPixels(Dataset):
    """Item ``(i, view)``: pixels of image i (augmented under a seed of (image, view) if seeded)."""

    def __init__(self, images: ImageDataset, seeded: bool) -> None:
        self.images, self.seeded = images, seeded

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        i, v = key
        return {"pixels": view_pixels(self.images, i, v, self.seeded), "i": i, "v": v}


def view_pixels(images: ImageDataset, i: int, view: int, seeded: bool = True) -> torch.Tensor:
    """Pixels of image ``i`` in ``view``: its transform run under a seed of (relpath, view)."""
    if not seeded:
        return images[i]["pixels"]
    with _seeded(stable_seed("feature-view", images.samples[i].relpath, view)):
        return images[i]["pixels"]


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
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
