"""Frozen image features of a whole split, for methods fitted in closed form (linear probe).

CoOp's linear-probe protocol (``lpclip/feat_extractor.py``) extracts features
once, with the test-time transform (no augmentation), and fits on them; this
module does the same through the method's own :meth:`~Method.image_features`,
so any backbone and precision work.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from bimors.backbones.base import ImageFeatures
from bimors.data.images import ImageDataset
from bimors.data.transforms import build_transform
from bimors.engine.data import TaskData, make_loader
from bimors.engine.precision import autocast
from bimors.methods.base import Method
from bimors.run_config import TrainConfig


@torch.no_grad()
def extract_features(
    method: Method,
    data: TaskData,
    batch_size: int = 100,
    precision: str = "fp32",
    num_workers: int = 0,
    progress: bool = False,
) -> tuple[ImageFeatures, Tensor]:
    """Features (float32, on CPU) and labels of every image of ``data``, in sample order.

    Images go through the evaluation transform whatever ``data`` was built with;
    token states are dropped (``tokens`` has zero rows) so that full-data
    probes fit in memory.
    """
    method.eval()
    device = method.backbone.device
    images = ImageDataset(
        data.images.root, data.images.samples, build_transform(method.backbone.preprocess, False)
    )
    loader = make_loader(TaskData(images, data.classnames), batch_size, False, 0, num_workers)
    parts, labels = [], []
    for batch in tqdm(loader, desc="features", disable=not progress, leave=False):
        with autocast(device, precision):
            f = method.image_features(batch["pixels"].to(device))
        f = f.to("cpu", torch.float32)
        f.tokens = f.tokens.new_empty((len(f), 0, f.tokens.shape[-1]))
        parts.append(f)
        labels.append(batch["label"])
    if not parts:
        raise ValueError("cannot fit on an empty split")
    return ImageFeatures.cat(parts), torch.cat(labels)


def fit_closed_form(
    method: Method,
    train: TaskData,
    val: TaskData | None,
    cfg: TrainConfig,
    num_workers: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Extract train (and val) features and call ``method.fit_features``; returns its log row."""
    method.set_classnames(train.classnames)
    args = (cfg.eval_batch_size, cfg.precision, num_workers, progress)
    x, y = extract_features(method, train, *args)
    xv, yv = extract_features(method, val, *args) if val is not None else (None, None)
    return method.fit_features(x, y, xv, yv)
