"""A record's identity: everything that produced its number except the seed.

``bimors report`` merges runs into one cell only when their identities are
equal (the seed aside), so two runs on different weights, shots or samplers
never become one "1 seed per cell" row. See :mod:`bimors.report.identity`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bimors import __version__
from bimors.backbones.weights_hash import weights_identity
from bimors.run.config import RunConfig


def run_identity(cfg: RunConfig, activation: str, uses_captions: bool) -> dict[str, Any]:
    """The identity dict of a run's records (``activation``: as the backbone was built;
    ``captions`` is null for a method that reads none)."""
    b = cfg.backbone
    captions = cfg.captions if uses_captions else None
    return {
        "adapter": b.adapter,
        "architecture": b.model,
        "activation": activation,
        "weights": weights_identity(b.adapter, b.model, b.pretrained, b.preset),
        "captions": _captions(captions),
        "shots": cfg.data.shots,
        "sampler": cfg.data.fewshot_sampler,
        "epochs": cfg.train.epochs,
        "preset_layers": list(cfg.preset.layers),
        "version": __version__,
    }


def _captions(captions: Any) -> dict[str, Any] | None:
    if captions is None or not dataclasses.is_dataclass(captions):
        return None
    keep = ("captioner", "encoder", "num_beams", "max_new_tokens", "max_length", "preprocess")
    out = {k: getattr(captions, k) for k in keep if hasattr(captions, k)}
    if getattr(captions, "store", None):
        out["store"] = str(captions.store)
    return out
