"""Frozen image features of training batches, computed once per grid seed and shared exactly.

Every method of a seed sees the same training views
(:mod:`bimors.engine.data`: a view is a pure function of (seed, epoch, image))
and, with the same batch size and world size, the same batches in the same
order. The frozen image encoder therefore computes the same features for
every such method. :class:`SharedViews` computes them in the first run that
meets a batch (in the training step, exactly as the plain path does: the
same call under the same autocast), stores them on disk, and serves them to
every later run with the same key, which then neither decodes images nor
runs the image encoder. Results are bit-equal to runs without sharing: this
is not the ``train_views=V`` approximation of
:class:`~bimors.engine.features.CachedFeatures`.

A batch's features on CPU (and GPU) may depend on the batch's composition
and size, so a *store* (a folder) is keyed by everything that determines
the bits: the feature space (backbone, weights, transform, precision,
device type, library versions), the training samples (paths, labels and the
image files' sizes and modification times), the seed, the batch size, the
rank and world size. Inside a store, batch k of epoch e keeps one
safetensors file per field, written under a temporary name and renamed, so
a killed run leaves no partial file and several processes (grid shards)
may share a folder: a missing batch is simply computed again.

Only the fields in ``fields`` are stored (default: ``pooled`` and ``norm``,
about 2 KB per view for ViT-B/16); a method reading another field
(``tokens``: about 600 KB per view, read by BiMoRS only; ``layer_means``:
about 36 KB, read by APPLeNet only) runs the encoder as without sharing,
and still stores the shared fields for the others. Each file carries a
CRC-32 of its tensor, checked on read: a damaged file is never served, the
batch is computed by the encoder again (the same bits) with a one-line
notice. Deleting a store is always safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from bimors.backbones.base import ImageFeatures
from bimors.core import atomic
from bimors.core.errors import ConfigError, DataError, IntegrityError
from bimors.data.images import ImageDataset
from bimors.engine.data import EpochViews, TaskData, epoch_sampler, seed_epoch
from bimors.engine.feature_cache import (
    FeatureCache,
    damaged_notice,
    load_value,
    save_value,
    space_description,
)
from bimors.engine.features import CachedFeatures, FeatureSource
from bimors.engine.precision import resolve_precision
from bimors.methods.base import Method

if TYPE_CHECKING:
    from bimors.engine.dist import Dist

logger = logging.getLogger(__name__)

#: Bump when the layout of stores or the seeding of training views changes.
FORMAT = "bimors-shared-views/2"  # 2: a CRC-32 per file
SHAREABLE = ("pooled", "norm", "layer_means", "tokens")
DEFAULT_FIELDS = ("pooled", "norm")
SLOT = "shared_slot"  # batch key: "<store folder>|<epoch>|<batch>" of a batch to compute
SERVED = "shared_served"  # batch key of a batch read from a store


def check_fields(fields: Sequence[str]) -> tuple[str, ...]:
    """``fields`` as a tuple, or a ConfigError naming the bad one."""
    bad = [f for f in fields if f not in SHAREABLE]
    if bad or not fields:
        raise ConfigError(
            f"features.share_fields={list(fields)}: each must be one of {list(SHAREABLE)} "
            "(and at least one)"
        )
    return tuple(dict.fromkeys(fields))


class ViewStore:
    """The stored batch features of one key (see the module docstring)."""

    def __init__(self, folder: Path, description: dict[str, Any]) -> None:
        self.folder, self.description = folder, description

    def path(self, epoch: int, batch: int, field: str) -> Path:
        return self.folder / f"e{epoch:04d}" / f"b{batch:05d}.{field}.safetensors"

    def has(self, epoch: int, batch: int, fields: Iterable[str]) -> bool:
        return all(self.path(epoch, batch, f).is_file() for f in fields)

    def save(self, epoch: int, batch: int, tensors: dict[str, torch.Tensor]) -> None:
        """Write each field atomically (a reader sees a whole file or none), with its checksum."""
        key_file = self.folder / "key.json"
        if not key_file.is_file():
            atomic.write_json(key_file, self.description)  # for people inspecting the store
        for field, value in tensors.items():
            save_value(self.path(epoch, batch, field), value)

    def load(self, epoch: int, batch: int, field: str) -> torch.Tensor:
        return load_value(self.path(epoch, batch, field), "shared view file", self.folder)


class SharedBatches(Dataset):
    """Item k: batch k of one epoch, as stored features if present, else augmented pixels."""

    def __init__(
        self,
        store: ViewStore,
        views: EpochViews,
        batches: list[list[int]],
        epoch: int,
        read: tuple[str, ...] | None,
    ) -> None:
        self.store, self.views, self.batches, self.epoch = store, views, batches, epoch
        self.read = read  # fields to read (None: this method always computes)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> dict[str, Any]:
        ids = self.batches[k]
        samples = self.views.images.samples
        if self.read is not None and self.store.has(self.epoch, k, self.read):
            item: dict[str, Any] = {
                "label": torch.tensor([samples[i].label for i in ids]),
                "index": torch.tensor(ids),
            }
            try:
                for f in self.read:
                    item[f] = self.store.load(self.epoch, k, f)
            except IntegrityError as err:  # never used: the encoder computes it again
                damaged_notice(self.store.path(self.epoch, k, f), err)
            else:
                item[SERVED] = True
                return item
        batch = default_collate([self.views[i] for i in ids])
        batch[SLOT] = f"{self.store.folder.name}|{self.epoch}|{k}"
        return batch


class SharedViews(CachedFeatures):
    """Share the frozen features of training batches across the runs of a grid seed (exact).

    Args:
        cache: the feature cache (evaluation features, as :class:`CachedFeatures`);
            stores live in ``<cache root>/views`` unless ``root`` is given.
        eval: cache evaluation features too (exact; the default).
        fields: the fields stored per batch (see the module docstring).
        root: folder of the stores (shared by every run and shard of a grid).
        progress: progress bars while filling the evaluation cache.
    """

    def __init__(
        self,
        cache: FeatureCache | None = None,
        eval: bool = True,
        fields: Sequence[str] = DEFAULT_FIELDS,
        root: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        super().__init__(cache, eval=eval, train_views=0, progress=progress)
        self.fields = check_fields(fields)
        self.root = Path(root) if root is not None else self.cache.root / "views"
        self._stores: dict[tuple, ViewStore] = {}
        self._by_name: dict[str, ViewStore] = {}
        #: training batches of this source served from stores / computed by the encoder
        self.served = 0
        self.computed = 0

    def shares(self, method: Method) -> bool:
        return type(method).frozen_image_features

    def reads(self, method: Method) -> bool:
        """Whether ``method`` may read stored batches (it needs no unstored field)."""
        return self.shares(method) and set(type(method).image_fields) <= set(self.fields)

    def describe(self, method: Method, train: bool) -> str:
        if not train or not self.shares(method):
            return super().describe(method, train)
        if self.served and not self.computed:
            return "shared"
        return "encoder+shared" if self.served else "encoder"

    def store(
        self,
        method: Method,
        data: TaskData,
        batch_size: int,
        seed: int,
        precision: str,
        rank: int,
        world: int,
    ) -> ViewStore:
        """The store of this key (folder named by a digest of the description)."""
        images = data.images
        device = method.backbone.device
        resolved = resolve_precision(precision, device)
        memo = (id(method.backbone), id(images), batch_size, seed, resolved, rank, world)
        if memo in self._stores:
            return self._stores[memo]
        description = {
            "format": FORMAT,
            "space": space_description(method.backbone, images.transform, resolved, device),
            "samples": _samples_digest(images),
            "seed": seed,
            "batch_size": batch_size,
            "rank": rank,
            "world_size": world,
        }
        digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()
        store = ViewStore(self.root / digest[:24], description)
        self._stores[memo] = self._by_name[store.folder.name] = store
        return store

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
        if not self.shares(method):
            return FeatureSource.train_loader(
                self, method, data, batch_size, seed, epoch, dist, num_workers, pin_memory
            )
        rank, world = (dist.rank, dist.world_size) if dist is not None else (0, 1)
        store = self.store(method, data, batch_size, seed, precision, rank, world)
        # exactly the batches of bimors.engine.data.train_loader, global RNGs seeded alike
        epoch_seed = seed_epoch(seed, epoch, rank)
        order = list(epoch_sampler(data.images, seed, epoch, rank, world))
        batches = [order[j : j + batch_size] for j in range(0, len(order), batch_size)]
        if len(order) >= batch_size and len(batches[-1]) < batch_size:
            batches.pop()  # drop_last, as the plain loader
        read = tuple(type(method).image_fields) if self.reads(method) else None
        dataset = SharedBatches(store, EpochViews(data.images, seed, epoch), batches, epoch, read)
        return DataLoader(
            dataset,
            batch_size=None,
            sampler=range(len(batches)),
            num_workers=num_workers,
            pin_memory=pin_memory,
            generator=torch.Generator().manual_seed(epoch_seed),
        )

    def image_features(
        self, method: Method, batch: dict[str, Any], device: torch.device
    ) -> ImageFeatures:
        """Stored features of a shared batch, else the encoder's (then stored for the others)."""
        if SLOT not in batch:
            self.served += SERVED in batch
            return super().image_features(method, batch, device)
        feats = method.image_features(batch["pixels"].to(device, non_blocking=True))
        self.computed += 1
        name, e, b = batch[SLOT].split("|")
        store, epoch, k = self._by_name[name], int(e), int(b)
        todo = {
            f: getattr(feats, f)
            for f in self.fields
            if getattr(feats, f) is not None and not store.path(epoch, k, f).is_file()
        }
        if todo:
            store.save(epoch, k, todo)
        return feats


def _samples_digest(images: ImageDataset) -> str:
    """SHA-256 of the training samples: relpaths, labels and their files' sizes and mtimes."""
    h = hashlib.sha256(str(images.root.resolve()).encode())
    for s in images.samples:
        path = images.root / s.relpath
        try:
            st = path.stat()
        except FileNotFoundError:
            raise DataError(
                f"image {path} does not exist; check the dataset root and split file"
            ) from None
        h.update(f"|{s.relpath}|{s.label}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()
