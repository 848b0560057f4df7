"""A deterministic cost estimate per run, so ``--shard K/N`` can balance shards by work.

Dealing cells round-robin over a method-major order puts whole methods on one
shard (on the README's 96-run Table 1 array, shard 1 got four zero-shot runs
and another four ProGrad runs). The estimate is

    epochs x training images x per-method factor + evaluation images

read from the run's resolved config and the dataset's stated facts (class
list and image count), never from disk, so ``--list`` on a login node gives
the same numbers as every shard. It is a relative unit, not seconds: the
factor says how much dearer one training image-epoch of a method is than
CoOp's (CoCoOp's per-image text pass at batch 1, ProGrad's teacher pass,
MaPLe's and BiMoRS's deeper prompts; the cached-feature heads are cheap), and
zero-shot trains nothing. Unknown methods count as CoOp.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from bimors.data import DATASETS

#: Cost of one training image-epoch relative to CoOp's.
METHOD_FACTOR: dict[str, float] = {
    "zeroshot": 0.0,
    "linear_probe": 0.05,
    "clip_adapter": 0.1,
    "coop": 1.0,
    "prograd": 1.6,
    "maple": 1.3,
    "applenet": 1.5,
    "bimors": 1.5,
    "cocoop": 4.0,
    "taskres": 0.05,  # a residual on cached features; the base is encoded once
    "kgcoop": 1.0,  # CoOp plus hand-prompt features encoded once
    "tcp": 1.2,  # class prompts encoded as separate sequences (not packed)
    "ivlp": 1.3,  # prompts in both towers, as MaPLe
    "promptsrc": 1.6,  # IVLP plus frozen image/text passes for its regularisers
    "clip_lora": 2.0,  # the image and text encoders train (no cache)
    "tip_adapter": 0.05,  # closed-form fits on cached features
    "tip_adapter_f": 0.05,
    "lp_pp": 0.05,
    "clap": 0.05,
}
#: Where a dataset states no classes or image count (e.g. folders given by --root).
DEFAULT_CLASSES = 10
DEFAULT_IMAGES_PER_CLASS = 100
#: The share of a dataset's images taken as its train and test parts in the estimate.
TRAIN_FRACTION = 0.5
TEST_FRACTION = 0.3


def dataset_size(name: str) -> tuple[int, int]:
    """(classes, images) a dataset states, with defaults where it states none."""
    try:
        cls = DATASETS.get(name)
    except Exception:  # an unregistered name: the defaults
        cls = None
    classes = len(getattr(cls, "classes", ()) or ()) or DEFAULT_CLASSES
    info = getattr(cls, "info", None)
    images = getattr(info, "images", None) or classes * DEFAULT_IMAGES_PER_CLASS
    return classes, images


def run_cost(
    method: str, epochs: int, shots: int, protocol: str, source: str, targets: Sequence[str] = ()
) -> float:
    """The estimate of one run (see the module docstring)."""
    classes, images = dataset_size(source)
    trained = math.ceil(classes / 2) if protocol == "base2new" else classes
    train_images = shots * trained if shots > 0 else TRAIN_FRACTION * images * trained / classes
    evals = TEST_FRACTION * images
    for target in targets:
        evals += TEST_FRACTION * dataset_size(target)[1]
    factor = METHOD_FACTOR.get(method, 1.0)
    return round(max(epochs, 0) * train_images * factor + evals, 3)


def deal(costs: Sequence[float], n: int) -> list[int]:
    """Shard (0-based) of each cell: longest first to the least-loaded shard.

    Ties go to the earlier cell and the lower shard, so the deal is a pure
    function of the costs: N jobs with the same command split the grid the same way.
    """
    load = [0.0] * n
    out = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        k = min(range(n), key=lambda s: (load[s], s))
        out[i] = k
        load[k] += costs[i]
    return out


def shard_of(cells: Sequence, cost: Callable[[object], float], n: int) -> list[int]:
    """:func:`deal` over ``cost(cell)`` for each cell."""
    return deal([cost(c) for c in cells], n)
