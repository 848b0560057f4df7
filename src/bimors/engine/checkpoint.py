"""Checkpoints: the method's own state, the resolved config and the training position.

Loading is strict: a checkpoint from another method, or whose keys or shapes
differ from the model, is refused with the list of differences. Files are
written under a temporary name and renamed, so a crash never leaves half a
checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bimors import __version__
from bimors.core import atomic
from bimors.core.errors import CheckpointError
from bimors.methods.base import Method

FORMAT = "bimors-checkpoint/1"


def save_checkpoint(path: str | Path, method: Method, config: dict[str, Any], **extra: Any) -> Path:
    """Write ``method``'s own state with ``config`` and any ``extra`` training state."""
    payload = {
        "format": FORMAT,
        "bimors_version": __version__,
        "method": method.name,
        "classnames": list(method.classnames),
        "state": method.method_state_dict(),
        "config": config,
        **extra,
    }
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read and sanity-check a checkpoint file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt files
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({err}); it may be truncated"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a bimors checkpoint (expected format {FORMAT})")
    return payload


def load_into(method: Method, payload: dict[str, Any], source: str = "checkpoint") -> None:
    """Load a checkpoint's state into ``method`` strictly."""
    if payload["method"] != method.name:
        raise CheckpointError(
            f"{source} holds method {payload['method']!r}, not {method.name!r}; "
            f"build a {payload['method']!r} model to load it"
        )
    method.load_method_state_dict(payload["state"], source)
