"""Mixed precision that never touches the trainable weights' dtype.

Autocast runs matrix products in bf16/fp16 while parameters and optimiser
state stay float32 (the official code casts weights to fp16, which loses small
updates); fp16 also gets a gradient scaler.
"""

from __future__ import annotations

import contextlib

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, precision: str):
    """Autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A scaler that is active only for fp16."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
