"""What checking the checksums of cached features costs beside the cached training step.

Every read of a feature-cache entry or shared-view file recomputes its CRC-32
(:mod:`bimors.core.checksum`). A cached training step reads one entry per
image and field, so the op timed here checks exactly those: each image's
fields of one training batch, one call per file as the readers make. The
ratio to the cached step (``fast_train_step``) is measured in the same
interleaved rounds, so machine load affects both alike; the target is < 2%.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from bimors.core import checksum
from bimors.engine.precision import autocast
from bimors.perf.default_path import shared_fields
from bimors.perf.workload import Workload

TARGET = 0.02  # of the cached training step


def checksum_op(wl: Workload) -> Callable[[], None]:
    """Check the CRC-32 of each image's fields of one training batch (what a cached step reads)."""
    with torch.no_grad(), autocast(wl.device, wl.precision):
        feats = wl.method.image_features(wl.pixels[: wl.opts.batch])
    items = [
        getattr(feats, f)[k].detach().cpu().contiguous().clone()
        for f in shared_fields(wl)
        if getattr(feats, f) is not None
        for k in range(getattr(feats, f).shape[0])
    ]

    def check() -> None:
        for t in items:
            checksum.of_tensor(t)

    return check


def report(best: dict[str, float]) -> dict[str, Any]:
    """The ``checksum`` section of ``bimors bench --json``."""
    ratio = best["checksum_batch"] / best["fast_train_step"]
    return {
        "checksum": {
            "algorithm": checksum.ALGORITHM,
            "batch_s": best["checksum_batch"],
            "ratio_to_cached_train_step": ratio,
            "target_ratio": TARGET,
            "meets_target": ratio < TARGET,
            "note": (
                "CRC-32 of each image's cached fields of one training batch (one call per file, "
                "as the readers check them) over the fastest fast_train_step of the same rounds"
            ),
        }
    }
