"""The compute floor: matrix FLOPs of a step, and the matrix-multiply rate of this machine.

``floor_ratio = step time / (step FLOPs / matmul rate)``: how far a step is
from the time its matrix products alone would take at the rate a large
square matrix product reaches on the same device, in the same dtype, in the
same run. FLOPs are counted by ``torch.utils.flop_counter`` (matrix products,
attention and convolutions, forward and backward) on the step as executed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from bimors.engine.precision import DTYPES


def count_flops(fn: Callable[[], object]) -> int:
    """Matrix FLOPs that one call of ``fn`` executes (forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def matmul_rate(
    precision: str = "fp32", device: str | torch.device = "cpu", n: int = 2048, repeats: int = 3
) -> float:
    """Best FLOP/s of an ``n`` x ``n`` x ``n`` matrix product in ``precision`` on ``device``."""
    device = torch.device(device)
    dtype = DTYPES[precision]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device, dtype)
    b = torch.randn(n, n, generator=gen).to(device, dtype)
    a @ b  # warm-up: library initialisation and caches
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n**3 / best


def sync(device: torch.device) -> None:
    """Wait for queued device work (CUDA is asynchronous; timings must not miss it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
