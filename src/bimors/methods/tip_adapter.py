"""Tip-Adapter (Zhang et al., ECCV 2022): a training-free key-value cache over CLIP.

Follows gaopengcuhk/Tip-Adapter ``main.py`` / ``utils.py``: the cache keys are
the L2-normalised image features of the few-shot training images, the values
their one-hot labels; a test feature ``f`` scores

    logits = 100 f W_text^T + alpha * exp(-beta (1 - f K^T)) V

with ``alpha`` and ``beta`` chosen by the official grid of ``search_hp``
(``search_step`` evenly spaced values from 0.1 towards ``search_scale``, the
first strictly better pair wins). Deviations, on purpose:

- alpha and beta are searched on the VALIDATION split's features, not on the
  test split as the official code does (Tip-Adapter issue #11); the chosen
  values are returned by :meth:`fit_features` and land in the run's records.
- The keys average ``augment_views`` augmented views of each training image
  (preset: the official ``augment_epoch`` 10, crop area 0.5-1 and flip; the mean
  raw feature, normalised), seeded per (image, view) and read from the feature
  cache, so the method is fitted in closed form by the one trainer and a grid
  encodes each view once (:mod:`bimors.methods.fit_views`). Official: 10 passes
  under the global random state. ``augment_views: 0`` keys on the un-augmented
  features instead.
- On classes without cache entries (base-to-new "new") the cache adds nothing
  to their columns: those are scored by zero-shot CLIP alone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.methods.fit_views import AugmentedFit, check_views
from bimors.methods.prompting import prompt_logits
from bimors.methods.template import TemplateConfig, TemplateMethod

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TipAdapterConfig(TemplateConfig):
    """The official ``init_alpha``/``init_beta`` and ``search_scale``/``search_step``."""

    init_alpha: float = 1.17
    init_beta: float = 1.0
    search_scale: list[float] = dataclasses.field(default_factory=lambda: [7.0, 3.0])
    search_step: list[int] = dataclasses.field(default_factory=lambda: [200, 20])
    search: bool = True
    augment_views: int = 0
    augment_scale: list[float] = dataclasses.field(default_factory=lambda: [0.5, 1.0])

    def __post_init__(self) -> None:
        super().__post_init__()
        check_views(self.augment_views, self.augment_scale)
        if len(self.search_scale) != 2 or len(self.search_step) != 2:
            raise ValueError("search_scale and search_step take two values: [beta, alpha]")
        if any(s < 1 for s in self.search_step):
            raise ValueError("search_step values must be >= 1")


def hp_grid(scale: float, steps: int) -> list[float]:
    """The official list: ``i * (scale - 0.1) / steps + 0.1`` for ``i < steps``."""
    return [i * (scale - 0.1) / steps + 0.1 for i in range(steps)]


def cache_logits(feats: Tensor, keys: Tensor, values: Tensor, beta: float) -> Tensor:
    """``exp(-beta (1 - f K^T)) V``: the cache's class scores."""
    affinity = feats @ keys.t()
    return ((-1.0) * (beta - beta * affinity)).exp() @ values


def search_hp(
    clip_logits: Tensor,
    feats: Tensor,
    labels: Tensor,
    keys: Tensor,
    values: Tensor,
    scale: list[float],
    steps: list[int],
) -> tuple[float, float, float]:
    """The official grid search; returns ``(alpha, beta, accuracy %)``."""
    best = (0.0, 0.0, 0.0)
    for beta in hp_grid(scale[0], steps[0]):
        cache = cache_logits(feats, keys, values, beta)
        for alpha in hp_grid(scale[1], steps[1]):
            acc = 100.0 * float(((clip_logits + cache * alpha).argmax(-1) == labels).float().mean())
            if acc > best[2]:
                best = (alpha, beta, acc)
    return best


class TipAdapter(AugmentedFit, TemplateMethod):
    name = "tip_adapter"
    config_cls = TipAdapterConfig
    closed_form = True
    image_fields = ("pooled", "norm")  # the norm: views average raw features

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: TipAdapterConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        self.fitted_classnames = list(classnames)
        dim, device = backbone.embed_dim, backbone.device
        # Filled by fit_features, never by SGD; parameters so that they are saved.
        self.keys = nn.Parameter(torch.zeros(0, dim, device=device), requires_grad=False)
        self.labels = nn.Parameter(torch.zeros(0, device=device), requires_grad=False)
        self.alpha = nn.Parameter(torch.tensor(self.cfg.init_alpha), requires_grad=False)
        self.beta = nn.Parameter(torch.tensor(self.cfg.init_beta), requires_grad=False)
        self.set_classnames(classnames)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[override]
        # The cache's size is the number of training images: take it from the checkpoint.
        for name in ("keys", "labels"):
            if prefix + name in state_dict:
                getattr(self, name).data = torch.empty_like(state_dict[prefix + name])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def cache_values(self) -> Tensor:
        """One-hot labels over the current class set (zero for classes not cached)."""
        known = {n: i for i, n in enumerate(self.fitted_classnames)}
        onehot = F.one_hot(self.labels.long(), len(self.fitted_classnames)).float()
        cols = [
            onehot[:, known[n]] if n in known else torch.zeros_like(onehot[:, 0])
            for n in self.classnames
        ]
        return torch.stack(cols, dim=1)

    def fit_features(
        self,
        train: ImageFeatures,
        train_labels: Tensor,
        val: ImageFeatures | None = None,
        val_labels: Tensor | None = None,
        views: Sequence[ImageFeatures] | None = None,
    ) -> dict[str, Any]:
        device = self.keys.device
        with torch.no_grad():
            self.keys.data = F.normalize(train.pooled.float(), dim=-1).to(device)
            self.labels.data = train_labels.float().to(device)
        out: dict[str, Any] = {"train_images": len(train_labels), "hp_split": "none"}
        if self.cfg.search:
            if val is None or val_labels is None:
                raise ValueError(
                    "tip_adapter searches alpha/beta on a validation split; pass one "
                    "(or set method.search=false to keep init_alpha/init_beta)"
                )
            out.update(self._search(F.normalize(val.pooled.float(), dim=-1), val_labels))
        out.update(alpha=float(self.alpha), beta=float(self.beta))
        return out

    def _search(self, vf: Tensor, val_labels: Tensor) -> dict[str, Any]:
        """The official alpha/beta grid on validation features; sets and returns them."""
        device = self.keys.device
        with torch.no_grad():
            vf = vf.to(device)
            clip = prompt_logits(self.backbone.logit_scale, vf, self.class_text()).float()
            alpha, beta, acc = search_hp(
                clip,
                vf,
                val_labels.to(device),
                self.keys,
                self.cache_values(),
                self.cfg.search_scale,
                self.cfg.search_step,
            )
            self.alpha.fill_(alpha)
            self.beta.fill_(beta)
        logger.info("%s: alpha=%.4g beta=%.4g (val accuracy %.2f%%)", self.name, alpha, beta, acc)
        return {"hp_split": "val", "val_acc": acc}

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        if self.keys.shape[0] == 0:
            raise RuntimeError("tip_adapter has an empty cache: train it or load a checkpoint")
        f = F.normalize(feats.pooled.float(), dim=-1)
        clip = prompt_logits(self.backbone.logit_scale, f, self.class_text()).float()
        cache = cache_logits(f, self.keys, self.cache_values(), float(self.beta))
        return clip + float(self.alpha) * cache
