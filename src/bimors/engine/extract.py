"""Frozen image features of a whole split, for methods fitted in closed form (linear probe).

CoOp's linear-probe protocol (``lpclip/feat_extractor.py``) extracts features
once, with the test-time transform (no augmentation), and fits on them; this
module does the same through the method's own :meth:`~Method.image_features`,
so any backbone and precision work.

Given a feature source that caches evaluation features (the run default), the
split's features are read from (and on first use written to) the feature
cache, keyed exactly as evaluation keys them (file, test transform, backbone,
precision): every closed-form method, seed and shot count of a grid then
encodes each training image once, which makes these the cheapest rows of a
grid. Cached features equal freshly encoded ones to the cache's float
tolerance (an image encoded in another batch rounds differently, ~1e-6).

With several processes each rank extracts a strided shard (as the evaluator
does) and the shards are assembled on every rank by summing zero-filled
full-size tensors (exact: each row is written by one rank only), so every rank
fits the same deterministic solver on the same features and ends with the same
weights, without broadcasting them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from bimors.backbones.base import ImageFeatures
from bimors.core.progress import progress as progress_bar
from bimors.data.images import ImageDataset
from bimors.data.transforms import build_transform
from bimors.engine.config import TrainConfig
from bimors.engine.data import TaskData, eval_loader
from bimors.engine.dist import Dist
from bimors.engine.features import CachedFeatures, FeatureSource, ViewPixels
from bimors.engine.precision import autocast
from bimors.methods.base import Method
from bimors.methods.fit_views import mean_of_views


@torch.no_grad()
def extract_features(
    method: Method,
    data: TaskData,
    batch_size: int = 100,
    precision: str = "fp32",
    num_workers: int = 0,
    progress: bool = False,
    dist: Dist | None = None,
    source: FeatureSource | None = None,
) -> tuple[ImageFeatures, Tensor]:
    """Features (float32, on CPU) and labels of every image of ``data``, in sample order.

    Images go through the evaluation transform whatever ``data`` was built with;
    token states are dropped (``tokens`` has zero rows) so that full-data
    probes fit in memory. With ``dist`` over several processes, every rank
    returns the features of the whole split. ``source`` (default: the image
    encoder) may serve cached features instead.
    """
    if len(data) == 0:
        raise ValueError("cannot fit on an empty split")
    method.eval()
    device = method.backbone.device
    images = ImageDataset(
        data.images.root, data.images.samples, build_transform(method.backbone.preprocess, False)
    )
    sharded = dist is not None and 1 < dist.world_size <= len(data)
    indices = dist.shard(len(data)) if sharded else None
    task = TaskData(images, data.classnames)
    pin = device.type == "cuda"
    if source is not None and source.uses_cache(method, train=False):
        shard = dist if sharded else None
        loader = source.eval_loader(method, task, batch_size, shard, num_workers, pin, precision)
    else:
        source = FeatureSource()
        loader = eval_loader(task, batch_size, indices, num_workers, pin)
    parts, labels = [], []
    for batch in progress_bar(loader, desc="features", enabled=progress):
        with autocast(device, precision):
            f = source.image_features(method, batch, device)
        f = f.to("cpu", torch.float32)
        f.tokens = f.tokens.new_empty((len(f), 0, f.tokens.shape[-1]))
        parts.append(f)
        labels.append(batch["label"])
    feats, y = ImageFeatures.cat(parts), torch.cat(labels)
    if sharded:
        feats, y = _assemble(feats, y, indices, len(data), dist)
    return feats, y


def _assemble(
    feats: ImageFeatures, labels: Tensor, indices: list[int], n: int, dist: Dist
) -> tuple[ImageFeatures, Tensor]:
    """Every rank's rows of ``n``, in sample order, on every rank."""
    rows = torch.as_tensor(indices, dtype=torch.long)

    def full(t: Tensor | None) -> Tensor | None:
        if t is None:
            return None
        out = t.new_zeros((n, *t.shape[1:]))
        out[rows] = t
        return dist.sum(out)

    tokens = feats.tokens.new_empty((n, 0, feats.tokens.shape[-1]))
    gathered = ImageFeatures(full(feats.pooled), tokens, full(feats.norm), full(feats.layer_means))
    return gathered, full(labels)


@torch.no_grad()
def extract_views(
    method: Method,
    data: TaskData,
    views: int,
    scale: tuple[float, float],
    batch_size: int = 100,
    precision: str = "fp32",
    num_workers: int = 0,
    progress: bool = False,
    dist: Dist | None = None,
    source: FeatureSource | None = None,
) -> tuple[list[ImageFeatures], Tensor]:
    """``views`` augmented views of every image of ``data`` (float32, CPU, sample order).

    The views are a random-resized crop of area ``scale`` and a flip, drawn under
    a seed of (image, view) (:func:`~bimors.engine.features.view_pixels`), so the
    image encoder and the feature cache give the same views; a ``source`` with a
    feature cache serves them from it (filling it on first use), otherwise the
    encoder computes them. Token states are dropped, as in :func:`extract_features`.
    """
    if len(data) == 0:
        raise ValueError("cannot fit on an empty split")
    method.eval()
    device = method.backbone.device
    images = ImageDataset(
        data.images.root,
        data.images.samples,
        build_transform(method.backbone.preprocess, True, scale),
    )
    task = TaskData(images, data.classnames)
    order = [(i, v) for v in range(views) for i in range(len(images))]
    if isinstance(source, CachedFeatures) and type(method).frozen_image_features:
        items = source.view_items(method, task, views, precision, dist, num_workers)
        loader = DataLoader(items, batch_size=batch_size, sampler=order, num_workers=num_workers)
        encode = None
    else:
        loader = DataLoader(
            ViewPixels(images, seeded=True),
            batch_size=batch_size,
            sampler=order,
            num_workers=num_workers,
        )
        encode = method.image_features
    fields = ("pooled", "norm")
    rows: dict[str, list[Tensor]] = {f: [] for f in fields}
    for batch in progress_bar(loader, desc="augmented views", enabled=progress):
        if encode is None:
            got = {f: batch[f] for f in fields}
        else:
            with autocast(device, precision):
                feats = encode(batch["pixels"].to(device))
            got = {f: getattr(feats, f) for f in fields}
        for f in fields:
            rows[f].append(got[f].to("cpu", torch.float32))
    pooled, norm = (torch.cat(rows[f]).view(views, len(images), -1) for f in fields)
    labels = torch.as_tensor([s.label for s in images.samples])
    empty = pooled.new_empty((len(images), 0, pooled.shape[-1]))  # no token states
    return [ImageFeatures(pooled[v], empty, norm[v], None) for v in range(views)], labels


def closed_form_inputs(
    method: Method,
    train: TaskData,
    val: TaskData | None,
    batch_size: int = 100,
    precision: str = "fp32",
    num_workers: int = 0,
    progress: bool = False,
    dist: Dist | None = None,
    source: FeatureSource | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``method.fit_features`` for ``train`` and ``val``.

    A method asking for ``augment_views`` V > 0 (Tip-Adapter, LP++, CLAP) gets the mean
    of V augmented views of each training image as ``train`` and the views
    themselves as ``views`` (Tip-Adapter-F trains on them); validation features
    stay un-augmented, as in the official codes. Others get the un-augmented
    features.
    """
    args = (batch_size, precision, num_workers, progress, dist, source)
    n_views = getattr(method, "augment_views", 0)
    out: dict[str, Any] = {}
    if n_views:
        scale = method.augment_scale  # type: ignore[attr-defined]
        views, y = extract_views(method, train, n_views, scale, *args)
        out.update(train=mean_of_views(views), views=views)
    else:
        x, y = extract_features(method, train, *args)
        out["train"] = x
    out["train_labels"] = y
    if val is train and not n_views:  # the same un-augmented images (bench): extract once
        out["val"], out["val_labels"] = x, y
    elif val is not None:
        out["val"], out["val_labels"] = extract_features(method, val, *args)
    return out


def fit_closed_form(
    method: Method,
    train: TaskData,
    val: TaskData | None,
    cfg: TrainConfig,
    num_workers: int = 0,
    progress: bool = False,
    dist: Dist | None = None,
    source: FeatureSource | None = None,
) -> dict[str, Any]:
    """Extract train (and val) features and call ``method.fit_features``; returns its log row
    (with ``augment_views`` when the fit averaged augmented views)."""
    method.set_classnames(train.classnames)
    inputs = closed_form_inputs(
        method, train, val, cfg.eval_batch_size, cfg.precision, num_workers, progress, dist, source
    )
    out = method.fit_features(**inputs)
    return {**out, "augment_views": len(inputs["views"])} if "views" in inputs else out
