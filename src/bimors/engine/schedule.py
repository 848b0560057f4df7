"""The learning-rate schedule of the reference recipe (Dassl): constant warm-up, then cosine.

Dassl wraps ``CosineAnnealingLR(T_max=epochs)`` in a constant warm-up and
steps it once per epoch, so epoch ``e`` (0-based) trains at ``warmup_lr``
while ``e < warmup_epochs`` and afterwards at
``0.5 * lr * (1 + cos(pi * (e - warmup_epochs) / epochs))``: the cosine starts
at the full rate right after warm-up and never quite reaches zero.
"""

from __future__ import annotations

import math


def lr_at_epoch(
    epoch: int, lr: float, epochs: int, warmup_epochs: int = 0, warmup_lr: float = 0.0
) -> float:
    """Learning rate used throughout 0-based ``epoch``."""
    if epoch < warmup_epochs:
        return warmup_lr
    return 0.5 * lr * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / epochs))
