"""Augmented training views for closed-form fits (Tip-Adapter's cache, LP++'s features).

The official Tip-Adapter builds its cache keys from ``augment_epoch`` (10)
passes of the training images through a random-resized crop (area 0.5-1) and
flip, averages the raw features over the passes and normalises the mean
(``utils.build_cache_model``); Tip-Adapter-F starts from those keys and trains on
a fresh augmented pass every epoch; LP++ extracts one such augmented pass
(``main.py``'s ``train_tranform``, ``linear_probe_p2.py``); CLAP trains on a bank
of ``epochs_aumentation`` (20) views under Dassl's crop (area 0.08-1). A method mixing in
:class:`AugmentedFit` asks the trainer's closed-form path for
``method.augment_views`` such views per training image; they are seeded per
(image, view) and, with the feature cache on, cached once and shared by every
method, seed and shot count of a grid that asks for the same views. With
``augment_views: 0`` the fit reads the un-augmented (test-transform) features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bimors.backbones.base import ImageFeatures


def check_views(views: int, scale: Sequence[float]) -> None:
    """Refuse a negative view count or a crop scale that is not ``0 < lo <= hi <= 1``."""
    if views < 0:
        raise ValueError(f"augment_views={views}: must be >= 0 (0: un-augmented features)")
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"augment_scale={list(scale)}: give [lo, hi] with 0 < lo <= hi <= 1")


def mean_of_views(views: Sequence[ImageFeatures]) -> ImageFeatures:
    """The official cache key of each image: the mean raw feature over its views, normalised.

    Raw features are ``pooled * norm`` (the encoder's output before the
    normalisation); the result carries the mean's own norm.
    """
    if not views:
        raise ValueError("no views to average")
    if any(v.norm is None for v in views):
        raise ValueError("averaging views needs their norms (image_fields must hold 'norm')")
    raw = torch.stack([v.pooled.float() * v.norm.float() for v in views]).mean(dim=0)
    norm = raw.norm(dim=-1, keepdim=True)
    tokens = views[0].tokens.new_empty((len(raw), 0, views[0].tokens.shape[-1]))
    return ImageFeatures(raw / norm, tokens, norm, None)


class AugmentedFit:
    """Mixin for closed-form methods whose config has ``augment_views`` and ``augment_scale``."""

    @property
    def augment_views(self) -> int:
        return int(self.cfg.augment_views)  # type: ignore[attr-defined]

    @property
    def augment_scale(self) -> tuple[float, float]:
        lo, hi = self.cfg.augment_scale  # type: ignore[attr-defined]
        return float(lo), float(hi)


__all__ = ["AugmentedFit", "check_views", "mean_of_views"]
