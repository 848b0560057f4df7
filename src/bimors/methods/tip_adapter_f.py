"""Tip-Adapter-F (Zhang et al., ECCV 2022): Tip-Adapter with fine-tuned cache keys.

Follows gaopengcuhk/Tip-Adapter ``main.py`` (``run_tip_adapter_F``): the keys
start as the training features and are trained as a bias-free linear layer
with cross-entropy on ``100 f W^T + alpha exp(-beta (1 - f K^T)) V`` (AdamW,
``lr``, ``eps=1e-4``, cosine over ``train_epoch`` epochs, batch 256, alpha and
beta at their initial values); the epoch with the best held-out accuracy is
kept, then alpha and beta are searched with the official grid.

The initial keys are Tip-Adapter's: the mean of ``augment_views`` augmented
views (preset 10, as the official ``augment_epoch``). Epoch e trains on view
``e % augment_views`` of every image, so the whole fit runs on the feature cache
inside :meth:`fit_features`, called by the one trainer's closed-form path.

Deviations, on purpose: the held-out split is VALIDATION, not test (best epoch
and alpha/beta alike); the official code draws a fresh random crop/flip every
epoch, here the epochs cycle over the cached views (20 epochs over 10 views:
each view twice); with ``augment_views: 0`` every epoch trains on the
un-augmented features.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from bimors.backbones.base import ImageFeatures
from bimors.methods.prompting import prompt_logits
from bimors.methods.tip_adapter import TipAdapter, TipAdapterConfig, cache_logits


@dataclasses.dataclass
class TipAdapterFConfig(TipAdapterConfig):
    """The official ``lr``, ``train_epoch`` and batch size (256)."""

    lr: float = 0.001
    train_epoch: int = 20
    batch_size: int = 256
    seed: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lr <= 0 or self.train_epoch < 0 or self.batch_size < 1:
            raise ValueError("lr must be > 0, train_epoch >= 0 and batch_size >= 1")


def tip_f_logits(
    f: Tensor, keys: Tensor, values: Tensor, text: Tensor, scale: Tensor, alpha: float, beta: float
) -> Tensor:
    """The official training logits: CLIP's plus ``alpha`` times the cache's."""
    return prompt_logits(scale, f, text).float() + alpha * cache_logits(f, keys, values, beta)


class TipAdapterF(TipAdapter):
    name = "tip_adapter_f"
    config_cls = TipAdapterFConfig

    def fit_features(
        self,
        train: ImageFeatures,
        train_labels: Tensor,
        val: ImageFeatures | None = None,
        val_labels: Tensor | None = None,
        views: Sequence[ImageFeatures] | None = None,
    ) -> dict[str, Any]:
        if val is None or val_labels is None:
            raise ValueError("tip_adapter_f keeps the best epoch on a validation split; pass one")
        cfg, device = self.cfg, self.keys.device
        f = F.normalize(train.pooled.float(), dim=-1).to(device)
        # what each epoch trains on: the augmented views in turn, else the keys' features
        epoch_feats = [F.normalize(v.pooled.float(), dim=-1).to(device) for v in views or ()]
        epoch_feats = epoch_feats or [f]
        y = train_labels.to(device)
        vf = F.normalize(val.pooled.float(), dim=-1).to(device)
        vy = val_labels.to(device)
        self.keys.data = f.clone()
        self.labels.data = y.float()
        values = self.cache_values()
        text = self.class_text().float().detach()
        scale = self.backbone.logit_scale.detach()
        keys = torch.nn.Parameter(f.clone())
        opt = torch.optim.AdamW([keys], lr=cfg.lr, eps=1e-4)
        steps = cfg.train_epoch * math.ceil(len(y) / cfg.batch_size)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
        gen = torch.Generator().manual_seed(cfg.seed)
        a0, b0 = cfg.init_alpha, cfg.init_beta

        def val_acc(k: Tensor) -> float:
            with torch.no_grad():
                out = tip_f_logits(vf, k, values, text, scale, a0, b0)
            return 100.0 * float((out.argmax(-1) == vy).float().mean())

        best_acc, best_keys, best_epoch = val_acc(keys), keys.detach().clone(), 0
        for epoch in range(cfg.train_epoch):
            fe = epoch_feats[epoch % len(epoch_feats)]
            for idx in torch.randperm(len(y), generator=gen).split(cfg.batch_size):
                loss = F.cross_entropy(
                    tip_f_logits(fe[idx], keys, values, text, scale, a0, b0), y[idx]
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            acc = val_acc(keys)
            if acc > best_acc:
                best_acc, best_keys, best_epoch = acc, keys.detach().clone(), epoch + 1
        self.keys.data = best_keys
        info = super()._search(vf, vy) if cfg.search else {"hp_split": "none"}
        return {
            "train_images": len(y),
            "best_epoch": best_epoch,
            "best_val_acc": best_acc,
            **info,
            "alpha": float(self.alpha),
            "beta": float(self.beta),
        }
