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

from bimors.backbones.base import ImageFeatures
from bimors.core.progress import progress as progress_bar
from bimors.data.images import ImageDataset
from bimors.data.transforms import build_transform
from bimors.engine.config import TrainConfig
from bimors.engine.data import TaskData, eval_loader
from bimors.engine.dist import Dist
from bimors.engine.features import FeatureSource
from bimors.engine.precision import autocast
from bimors.methods.base import Method


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
    """Extract train (and val) features and call ``method.fit_features``; returns its log row."""
    method.set_classnames(train.classnames)
    args = (cfg.eval_batch_size, cfg.precision, num_workers, progress, dist, source)
    x, y = extract_features(method, train, *args)
    xv, yv = extract_features(method, val, *args) if val is not None else (None, None)
    return method.fit_features(x, y, xv, yv)
