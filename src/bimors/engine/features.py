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

A third source, :class:`~bimors.engine.shared_views.SharedViews` (the
default), keeps fresh augmentations and shares their exact frozen features
across the runs of a grid seed.

Both sources shard exactly like :mod:`bimors.engine.data`: a training epoch
is a pure function of (seed, epoch, rank) with the same per-rank order of
images as :func:`~bimors.engine.data.train_loader` (so resuming and several
processes stay exact), and evaluation reads only this rank's shard of the
images, whose counts the evaluator sums.

A method whose image features depend on trainable state sets
``frozen_image_features = False`` and always gets the plain path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from bimors.backbones.base import ImageFeatures
from bimors.core.progress import progress as progress_bar
from bimors.data.images import ImageDataset
from bimors.data.split import stable_seed
from bimors.engine.data import (
    TaskData,
    epoch_sampler,
    eval_loader,
    seed_epoch,
    seeded_rngs,
    train_loader,
)
from bimors.engine.feature_cache import FeatureCache, FeatureSpace, space_description
from bimors.engine.precision import autocast, resolve_precision
from bimors.methods.base import Method

if TYPE_CHECKING:
    from bimors.engine.dist import Dist

logger = logging.getLogger(__name__)


def _rank(dist: Dist | None) -> tuple[int, int]:
    return (dist.rank, dist.world_size) if dist is not None else (0, 1)


def _shard(dist: Dist | None, n: int) -> list[int] | None:
    """This rank's image indices for evaluation (None: all of them, in order)."""
    return dist.shard(n) if dist is not None and dist.world_size > 1 else None


class FeatureSource:
    """Decode images and run the frozen image encoder on every batch."""

    def uses_cache(self, method: Method, train: bool) -> bool:
        """Whether batches of ``method`` for training (or evaluation) carry cached features."""
        return False

    def describe(self, method: Method, train: bool) -> str:
        """Where the image features of ``method`` come from: ``cache`` or ``encoder``."""
        return "cache" if self.uses_cache(method, train) else "encoder"

    def train_loader(
        self,
        method: Method,
        data: TaskData,
        batch_size: int,
        seed: int,
        epoch: int,
        dist: Dist | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        precision: str = "fp32",
    ) -> Iterable[dict[str, Any]]:
        """Shuffled batches of one epoch for this rank: :func:`bimors.engine.data.train_loader`."""
        rank, world = _rank(dist)
        return train_loader(data, batch_size, seed, epoch, rank, world, num_workers, pin_memory)

    def eval_loader(
        self,
        method: Method,
        data: TaskData,
        batch_size: int,
        dist: Dist | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        precision: str = "fp32",
    ) -> Iterable[dict[str, Any]]:
        """This rank's shard of ``data`` in order: :func:`~bimors.engine.data.eval_loader`."""
        indices = _shard(dist, len(data))
        return eval_loader(data, batch_size, indices, num_workers, pin_memory)

    def image_features(
        self, method: Method, batch: dict[str, Any], device: torch.device
    ) -> ImageFeatures:
        """Features of one batch: read from it when cached, else computed from its pixels."""
        if "pooled" in batch:

            def field(name: str) -> Tensor | None:
                return batch[name].to(device, non_blocking=True) if name in batch else None

            pooled = field("pooled")
            tokens = field("tokens")
            if tokens is None:  # the method declared it never reads token states
                tokens = pooled.new_empty(len(pooled), 0, 0)
            return ImageFeatures(pooled, tokens, field("norm"), field("layer_means"))
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
        # (images, views, precision, fields) -> filled training items of this run
        self._ready: dict[tuple, tuple[ImageDataset, CachedItems]] = {}

    def uses_cache(self, method: Method, train: bool) -> bool:
        if not type(method).frozen_image_features:
            return False
        return self.train_views > 0 if train else self.eval

    def train_loader(
        self,
        method: Method,
        data: TaskData,
        batch_size: int,
        seed: int,
        epoch: int,
        dist: Dist | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        precision: str = "fp32",
    ) -> Iterable[dict[str, Any]]:
        if not self.uses_cache(method, True):
            return super().train_loader(
                method, data, batch_size, seed, epoch, dist, num_workers, pin_memory, precision
            )
        rank, world = _rank(dist)
        items = self._items(method, data, True, precision, None, dist, num_workers)
        epoch_seed = seed_epoch(seed, epoch, rank)  # as the plain loader: methods may draw
        sampler = ViewSampler(
            epoch_sampler(items, seed, epoch, rank, world), self.train_views, seed, epoch
        )
        return DataLoader(
            items,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=len(sampler) >= batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            generator=torch.Generator().manual_seed(epoch_seed),
        )

    def eval_loader(
        self,
        method: Method,
        data: TaskData,
        batch_size: int,
        dist: Dist | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        precision: str = "fp32",
    ) -> Iterable[dict[str, Any]]:
        if not self.uses_cache(method, False):
            return super().eval_loader(
                method, data, batch_size, dist, num_workers, pin_memory, precision
            )
        indices = _shard(dist, len(data))
        items = self._items(method, data, False, precision, indices, None, num_workers)
        order = range(len(items)) if indices is None else indices
        return DataLoader(
            items,
            batch_size=batch_size,
            sampler=[(i, 0) for i in order],
            num_workers=num_workers,
            pin_memory=pin_memory,
        )

    def view_items(
        self,
        method: Method,
        data: TaskData,
        views: int,
        precision: str = "fp32",
        dist: Dist | None = None,
        num_workers: int = 0,
    ) -> CachedItems:
        """``views`` seeded augmented views of every image of ``data``, cached and checked.

        The views are those of training (``data``'s own transform under a seed of
        (image, view), :func:`view_pixels`), whatever ``train_views`` is: closed-form
        fits that average augmented passes (Tip-Adapter's cache) read them here, so
        every method, seed and shot count of a grid encodes each view once.
        """
        if views < 1:
            raise ValueError("views must be >= 1")
        return self._items(method, data, True, precision, None, dist, num_workers, views)

    def _items(
        self,
        method: Method,
        data: TaskData,
        train: bool,
        precision: str,
        needed: Sequence[int] | None,
        dist: Dist | None,
        num_workers: int,
        views: int | None = None,
    ) -> CachedItems:
        """The cached items of ``data`` after filling what is missing.

        ``needed``: the images this rank reads (None: all). With several ``dist``
        processes in training (every rank reads every image over the epochs) each
        rank fills its strided share, waits for the others, then fills anything
        still missing itself (a cache folder not shared between machines).
        Training items are checked once per run, not every epoch.
        """
        images = data.images
        device = method.backbone.device
        resolved = resolve_precision(precision, device)
        fields = tuple(type(method).image_fields)
        if views is None:
            views = self.train_views if train else 1
        key = (id(images), views, resolved, fields)
        if train and key in self._ready and self._ready[key][0] is images:
            return self._ready[key][1]
        space = self.cache.space(
            space_description(method.backbone, images.transform, resolved, device)
        )
        names = [
            [space.entry_name(images.root / s.relpath, v) for v in range(views)]
            for s in images.samples
        ]
        wanted = range(len(names)) if needed is None else needed
        rank, world = _rank(dist)

        def missing(shared: bool) -> list[tuple[int, int]]:
            return [
                (i, v)
                for i in wanted
                if not shared or i % world == rank
                for v in range(views)
                if not space.intact(names[i][v], fields)
            ]

        todo = missing(shared=world > 1)
        if todo:
            self._fill(method, images, space, names, todo, fields, train, precision, num_workers)
        if dist is not None and world > 1:
            dist.barrier()
            todo = missing(shared=False)
            if todo:
                self._fill(method, images, space, names, todo, fields, train, precision, 0)
        items = CachedItems(space, names, [s.label for s in images.samples], fields)
        if train:
            self._ready[key] = (images, items)
        return items

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
            for batch in progress_bar(loader, desc="caching features", enabled=self.progress):
                feats = method.image_features(batch["pixels"].to(device))
                for k, (i, v) in enumerate(
                    zip(batch["i"].tolist(), batch["v"].tolist(), strict=True)
                ):
                    space.save(names[i][v], {f: getattr(feats, f)[k] for f in fields})


class ViewSampler:
    """Yields ``(index, view)`` for one epoch: the indices of ``base`` with the view each shows.

    Image i shows view ``(epoch + offset(seed, i)) % views`` in ``epoch``, so any V
    consecutive epochs show each view of each image once.
    """

    def __init__(self, base: Iterable[int], views: int, seed: int, epoch: int) -> None:
        self.base, self.views, self.seed, self.epoch = base, views, seed, epoch

    def view(self, i: int) -> int:
        if self.views <= 1:
            return 0
        return (self.epoch + stable_seed("view", self.seed, i)) % self.views

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self.base:
            yield i, self.view(i)


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
    with seeded_rngs(stable_seed("feature-view", images.samples[i].relpath, view)):
        return images[i]["pixels"]
