"""CLAP (Silva-Rodriguez et al., CVPR 2024): a zero-shot-initialised linear probe held near CLIP.

Follows jusiro/CLAP ``trainers/adapters.py`` (``AdapterMethod``, ``CustomCLIP.forward_lp``,
``ADAPTER.train``/``forward_backward``, ``TrainerXCostume.run_epoch``),
``configs/trainers/SGD_lr1e-1_B256_ep300.yaml`` and ``scripts/adapt.sh``
(``INIT=ZS``, ``CONSTRAINT=l2``):

- class prototypes ``P`` (C, E) start as the RAW (unnormalised) text embeddings
  ``T`` of the class prompts (``_get_base_text_features``; one template);
- ``logits = logit_scale * norm(f) @ norm(P)^T`` (``forward_lp``);
- loss ``CE + mean_c lambda_c ||P_c - T_c||^2`` (``zero_shot_constraint``, l2);
- ``lambda_c`` (``init_lagrangian_multipliers``): the mean zero-shot softmax
  probability of class c over the support images of class c;
- SGD (momentum 0.9, no weight decay), lr 0.1, 300 epochs, batch 256, a
  constant 1e-5 warm-up epoch, then cosine over 300 epochs stepped per epoch
  (Dassl's ``ConstantWarmupScheduler`` around ``CosineAnnealingLR``); each epoch
  shuffles the features and takes ``len(train_loader)`` batches of 256 (Dassl
  drops the last partial batch when there are at least 256 images);
- ``method.adaptive=true`` adds the official outer step after every epoch
  (``outer_step``: ``lambda <- max(0, lambda + rho h)``, ``rho <- h`` with
  ``h_c = ||P_c - T_c||^2``); off by default, as ``CONSTRAINT=l2`` in the scripts.
  ``method.constraint=false`` is the plain ZS-LP (``CONSTRAINT=none``).
  The final prototypes are those of the last epoch (no model selection).

The official code extracts ``epochs_aumentation`` (20) augmented views of every
training image (Dassl's random-resized crop, area 0.08-1, and flip) into one
bank of 20N features; the multipliers come from the zero-shot predictions on the
whole bank, and each epoch shuffles the bank and takes the first
``len(train_loader)`` batches (those of N images). Here the preset asks for
``augment_views: 20`` seeded views per image from the feature cache
(:mod:`bimors.methods.fit_views`) and the fit follows the same bank, inside
:meth:`fit_features` (the one trainer's closed-form path).

Deviations, on purpose: the views are seeded per (image, view) and the shuffle
uses torch's generator seeded by ``method.seed`` (official: the global random
states); ``augment_views: 0`` fits on the un-augmented features (one per image).
No hyper-parameter is chosen: the validation split is unused.

Base-to-new: a class never fitted keeps its initial prototype, its zero-shot
text embedding (the point CLAP's penalty anchors every prototype to), so the
fitted prototypes score base classes and zero-shot prototypes score new ones in
the same cosine logits; a "new" split alone is thus scored as zero-shot CLIP
with ``method.template`` (as Tip-Adapter's new classes, no fallback is named).
"""

from __future__ import annotations

import dataclasses
import logging
import math
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
class CLAPConfig(TemplateConfig):
    """The official SGD_lr1e-1_B256_ep300 schedule and the l2 constraint."""

    lr: float = 0.1
    epochs: int = 300
    batch_size: int = 256
    momentum: float = 0.9
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    constraint: bool = True
    adaptive: bool = False
    seed: int = 1
    augment_views: int = 0
    augment_scale: list[float] = dataclasses.field(default_factory=lambda: [0.08, 1.0])

    def __post_init__(self) -> None:
        super().__post_init__()
        check_views(self.augment_views, self.augment_scale)
        if self.lr <= 0 or self.epochs < 0 or self.batch_size < 1 or self.warmup_epochs < 0:
            raise ValueError("lr must be > 0, epochs >= 0, batch_size >= 1, warmup_epochs >= 0")


def clap_lr(cfg: CLAPConfig, epoch: int) -> float:
    """Dassl's constant warm-up then cosine (over ``epochs``) learning rate of ``epoch``."""
    if epoch < cfg.warmup_epochs:
        return cfg.warmup_lr
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / cfg.epochs))


def clap_logits(scale: Tensor, f: Tensor, prototypes: Tensor) -> Tensor:
    """``scale * norm(f) @ norm(P)^T`` (``forward_lp``)."""
    return prompt_logits(scale, F.normalize(f, dim=-1), F.normalize(prototypes, dim=-1))


def zero_shot_multipliers(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean zero-shot softmax probability of class c over the images of class c."""
    onehot = F.one_hot(labels, logits.shape[-1]).float()
    return torch.diag(logits.softmax(-1).t() @ onehot) / onehot.sum(0)


class CLAP(AugmentedFit, TemplateMethod):
    name = "clap"
    config_cls = CLAPConfig
    closed_form = True
    image_fields = ("pooled", "norm")  # the norm: augmented views carry it

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: CLAPConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        self.fitted_classnames = list(classnames)
        n, dim, device = len(classnames), backbone.embed_dim, backbone.device
        # Learned in fit_features, never by the trainer's SGD: parameters so that they are saved.
        self.prototypes = nn.Parameter(torch.zeros(n, dim, device=device), requires_grad=False)
        self.multipliers = nn.Parameter(torch.zeros(n, device=device), requires_grad=False)
        self.fitted = nn.Parameter(torch.zeros((), device=device), requires_grad=False)
        self.set_classnames(classnames)

    def set_classnames(self, classnames: list[str]) -> None:
        super().set_classnames(classnames)
        known = {name: i for i, name in enumerate(self.fitted_classnames)}
        self._rows = [known.get(n, -1) for n in classnames]

    def raw_text(self) -> Tensor:
        """Unnormalised text embeddings (C, E) of the current class prompts (``T``)."""
        with torch.no_grad():
            return self.prompts.encode(self.backbone, None, self.cfg.chunk_size, normalize=False)

    def fit_features(
        self,
        train: ImageFeatures,
        train_labels: Tensor,
        val: ImageFeatures | None = None,
        val_labels: Tensor | None = None,
        views: Sequence[ImageFeatures] | None = None,
    ) -> dict[str, Any]:
        cfg, device = self.cfg, self.prototypes.device
        n_cls = len(self.fitted_classnames)
        if sorted(set(train_labels.tolist())) != list(range(n_cls)):
            raise ValueError(f"CLAP needs training images of all {n_cls} classes")
        self.set_classnames(self.fitted_classnames)
        images = len(train_labels)
        # the official bank: every view of every image (or the images themselves)
        bank = [v.pooled for v in views] if views else [train.pooled]
        f = torch.cat(bank).float().to(device)
        y = train_labels.repeat(len(bank)).to(device)
        base = self.raw_text().float()
        scale = self.backbone.logit_scale.detach().float()
        with torch.no_grad():
            lam = zero_shot_multipliers(clap_logits(scale, f, base), y)
        if not cfg.constraint:
            lam = torch.zeros_like(lam)
        rho = torch.zeros_like(lam)
        lam0 = lam.clone()
        protos = nn.Parameter(base.clone())
        opt = torch.optim.SGD([protos], lr=clap_lr(cfg, 0), momentum=cfg.momentum)
        n = len(y)
        # len(train_loader): the batches of the N images, drawn from the shuffled bank
        n_batches = images // cfg.batch_size if images >= cfg.batch_size else 1
        gen = torch.Generator().manual_seed(cfg.seed)
        loss = torch.zeros(())
        for epoch in range(cfg.epochs):
            for group in opt.param_groups:
                group["lr"] = clap_lr(cfg, epoch)
            order = torch.randperm(n, generator=gen).to(device)
            for b in range(n_batches):
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                loss = F.cross_entropy(clap_logits(scale, f[idx], protos), y[idx])
                if cfg.constraint:
                    loss = loss + (lam * (protos - base).pow(2).sum(-1)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            if cfg.constraint and cfg.adaptive:
                with torch.no_grad():
                    h = (protos - base).pow(2).sum(-1)
                    x = lam + rho * h
                    lam, rho = torch.where(x >= 0, x, torch.zeros_like(x)), h.clone()
        with torch.no_grad():
            self.prototypes.copy_(protos.detach())
            self.multipliers.copy_(lam)
            self.fitted.fill_(1.0)
        drift = float((protos.detach() - base).pow(2).sum(-1).mean())
        logger.info("CLAP: %d epochs, mean squared drift from zero-shot %.4g", cfg.epochs, drift)
        return {
            "train_images": images,
            "bank": n,
            "final_loss": float(loss.detach()),
            "mean_init_multiplier": float(lam0.mean()),
            "mean_sq_drift": drift,
        }

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        text = self.class_text()
        if any(r >= 0 for r in self._rows):
            if float(self.fitted) <= 0:
                raise RuntimeError("CLAP is not fitted: train it or load a checkpoint")
            seen = torch.tensor([r >= 0 for r in self._rows], device=text.device)
            rows = torch.tensor([max(r, 0) for r in self._rows], device=text.device)
            fitted = F.normalize(self.prototypes[rows].float(), dim=-1)
            text = torch.where(seen.unsqueeze(1), fitted, text)
        return prompt_logits(
            self.backbone.logit_scale, F.normalize(feats.pooled.float(), dim=-1), text
        )
