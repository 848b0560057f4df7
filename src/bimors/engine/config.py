"""The ``train`` and ``features`` sections of a run config (the trainer and the feature cache)."""

from __future__ import annotations

import dataclasses
import re
from typing import Literal


@dataclasses.dataclass
class TrainConfig:
    """SGD with a constant warm-up then cosine decay, stepped once per epoch (as Dassl does)."""

    epochs: int = 10
    batch_size: int = 4
    lr: float = 0.009
    momentum: float = 0.9
    #: adamw: CLIP-LoRA's AdamW; adam: Dassl's Adam (L2 weight decay; TaskRes); momentum unused
    optimizer: Literal["sgd", "adamw", "adam"] = "sgd"
    betas: list[float] = dataclasses.field(default_factory=lambda: [0.9, 0.999])  # Adam(W)'s
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"  # auto: bf16 if native
    eval_batch_size: int = 100
    seed: int = 1
    deterministic: bool = False
    selection: Literal["last", "val"] = "last"
    nonfinite: Literal["stop", "skip"] = "stop"
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1")
        if self.lr <= 0:
            raise ValueError("train.lr must be > 0")
        if not 0 <= self.warmup_epochs < max(self.epochs, 1) + 1:
            raise ValueError("train.warmup_epochs must be between 0 and train.epochs")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError("train.betas must be two numbers in [0, 1), e.g. [0.9, 0.999]")
        self.betas = [float(b) for b in self.betas]
        if not DEVICE.match(self.device):
            raise ValueError(
                f"train.device={self.device!r} is not a device; use auto, cpu, cuda, cuda:N or mps"
            )


#: The device names a run accepts (whether the device exists is checked at run time).
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclasses.dataclass
class FeatureConfig:
    """The frozen image-feature cache (see :mod:`bimors.engine.features`).

    Cached test-transform features equal recomputed ones, so that cache is on.
    Cached training views replace fresh random augmentations by ``train_views``
    fixed ones per image (a different augmentation distribution), so it is off.
    Shared training views (``share_views``) are exact and cost about 2 KB per
    view and field set ``pooled, norm`` (ViT-B/16), so they are on.
    """

    cache: bool = True  # reuse evaluation features across epochs, methods and seeds
    dir: str | None = None  # default: $BIMORS_CACHE_DIR or ~/.cache/bimors/features
    train_views: int = 0  # > 0: cache this many augmented views per training image
    #: share training batches' frozen features across the runs of a grid seed (exact;
    #: stored under <dir>/views; see bimors.engine.shared_views)
    share_views: bool = True
    share_fields: list[str] = dataclasses.field(default_factory=lambda: ["pooled", "norm"])

    def __post_init__(self) -> None:
        if self.train_views < 0:
            raise ValueError("features.train_views must be >= 0")
        from bimors.engine.shared_views import check_fields

        check_fields(self.share_fields)
