"""The one evaluator: accuracy of any method on any split, on one or many processes."""

from __future__ import annotations

import dataclasses
import logging

import torch

from bimors.core.errors import DataError
from bimors.core.progress import progress as progress_bar
from bimors.engine.data import TaskData
from bimors.engine.dist import Dist
from bimors.engine.features import FeatureSource
from bimors.engine.precision import autocast
from bimors.methods.base import Method

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class EvalResult:
    accuracy: float  # percent
    correct: int
    total: int
    per_class: list[float]  # percent, label order
    confusion: list[list[int]] = dataclasses.field(default_factory=list)  # [true][predicted]

    @property
    def macro_accuracy(self) -> float:
        return sum(self.per_class) / max(len(self.per_class), 1)


@torch.no_grad()
def evaluate(
    method: Method,
    data: TaskData,
    batch_size: int = 100,
    precision: str = "fp32",
    num_workers: int = 0,
    progress: bool = False,
    dist: Dist | None = None,
    features: FeatureSource | None = None,
) -> EvalResult:
    """Top-1 accuracy of ``method`` on ``data`` (the method's class set is switched to it).

    The confusion matrix (rows: true class, columns: predicted, label order) is
    kept because in RS the telling question is which scene classes get confused.
    With several processes each evaluates a disjoint shard and the confusion
    counts are summed, so the result equals a single-process evaluation.
    ``features`` says where image features come from (default: the image encoder
    on every batch; a :class:`~bimors.engine.features.CachedFeatures` reuses them).
    """
    features = features if features is not None else FeatureSource()
    if len(data.images) == 0:
        raise DataError(
            "no images to evaluate on (every image of the split is excluded or the split is "
            "empty): an accuracy of 0 images is no result; exclude fewer images"
        )
    if method.classnames != data.classnames:
        method.set_classnames(data.classnames)
    method.eval()
    device = method.backbone.device
    n_cls = len(data.classnames)
    confusion = torch.zeros(n_cls * n_cls, dtype=torch.long)  # true * n_cls + predicted
    loader = features.eval_loader(
        method, data, batch_size, dist, num_workers, device.type == "cuda", precision
    )
    for batch in progress_bar(loader, desc="eval", enabled=progress):
        labels = batch["label"]
        caps = data.captions[batch["index"]].to(device) if data.captions is not None else None
        with autocast(device, precision):
            logits = method(features.image_features(method, batch, device), caps)
        pred = logits.argmax(dim=-1).cpu()
        confusion += torch.bincount(labels * n_cls + pred, minlength=n_cls * n_cls)
    if dist is not None:
        confusion = dist.sum(confusion)
    confusion = confusion.view(n_cls, n_cls)
    correct, total = confusion.diagonal(), confusion.sum(dim=1)
    n, c = int(total.sum()), int(correct.sum())
    per_class = [
        100.0 * float(a) / float(b) if b else float("nan")
        for a, b in zip(correct, total, strict=True)
    ]
    return EvalResult(100.0 * c / max(n, 1), c, n, per_class, confusion.tolist())
