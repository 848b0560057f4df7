"""Mixed precision that never touches the trainable weights' dtype.

Autocast runs matrix products in bf16/fp16 while parameters and optimiser
state stay float32 (the official code casts weights to fp16, which loses small
updates); fp16 also gets a gradient scaler.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.cache
def _cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AVX-512 BF16 or AMX), read on Linux."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = set(info.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is likely to pay off on ``device``: native bf16 matrix units."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _cpu_has_native_bf16()
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` becomes ``bf16`` where the hardware has bf16 matrix units, else ``fp32``."""
    if precision == "auto":
        return "bf16" if bf16_supported(device) else "fp32"
    if precision not in DTYPES:
        raise ValueError(f"unknown precision {precision!r}; valid: auto, {', '.join(DTYPES)}")
    return precision


def autocast(device: torch.device, precision: str):
    """Autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A scaler that is active only for fp16."""
    enabled = resolve_precision(precision, device) == "fp16"
    return torch.amp.GradScaler(device.type, enabled=enabled)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
