"""LP++ (Huang et al., CVPR 2024): a linear probe blended with the text classifier.

Follows FereshteShakeri/FewShot-CLIP-Strong-Baseline ``methods/linear_probe_p2.py``
(``LinearProbe_P2``), ``methods/utils.py`` and ``configs/base.yaml``. On the
L2-normalised image features ``f`` (N, E) of the training images and the
normalised template text features ``T`` (C, E), a test feature scores

    logits = f W^T + b + alpha * (f T^T)          (alpha: one weight per class)

Fitted by full-batch gradient descent on the cross-entropy, ``train_epoch``
(300) iterations, with the official step sizes and initialisation:

- ``W`` starts as the class SUMS of the training features (``compute_centroids``
  has its division by the count commented out); ``b`` starts as ``nn.Linear``'s
  default uniform(-1/sqrt(E), 1/sqrt(E)) draw (seeded by ``method.seed``);
- ``alpha`` starts, for every class, at ``250 * mean_c mean_{i: y_i=c} f_i.t_c``
  (``calculate_init_alpha``: the ``shots`` factors cancel);
- ``W`` and ``b``: SGD with momentum 0.9 at ``lr_w = 4 N / lambda_max(F^T F)``
  (``calculate_lr_w``); ``alpha``: every 10th iteration ``alpha -= lr_alpha *
  alpha.grad`` with ``lr_alpha = N / (4 max_k sum_i (f_i.t_k)^2)``
  (``calculate_lr_alpha``); ``alpha.grad`` is never zeroed in the official loop,
  so each of those steps uses the gradients ACCUMULATED since the start; kept here;
- after each iteration the validation accuracy is measured and the state of the
  last iteration reaching the best so far (``>=``) is the fitted one.

The training features are one augmented view of each image (preset
``augment_views: 1``: the official extracts them once through its random-crop
(area 0.5-1) and flip loader, ``main.py``), seeded per image and read from the
feature cache, so the fit runs in :meth:`fit_features`, called by the one
trainer's closed-form path (:mod:`bimors.methods.fit_views`); validation
features are un-augmented, as there. Deviations, on purpose: the view is drawn
under a seed of the image, not the global random state; ``augment_views: 0``
fits on the un-augmented features; the fit is in float32 (official: CLIP's fp16
on GPU).

Base-to-new: ``W``, ``b`` and ``alpha`` exist only for the fitted classes, and the
official maths gives an unseen class neither a visual prototype nor a blending
weight (its text logit alone is not on the same scale). A class set that is a
subset of the fitted one is scored by the fitted rows; any other is scored by
zero-shot CLIP with ``method.template`` (``fallback = "zeroshot"``, marked in
reports), or refused with ``method.unseen=error``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.methods.fit_views import AugmentedFit, check_views
from bimors.methods.linear_probe import fitted_rows
from bimors.methods.prompting import prompt_logits
from bimors.methods.template import TemplateConfig, TemplateMethod

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class LPppConfig(TemplateConfig):
    """The official ``train_epoch`` (300), alpha-step period (10) and momentum (0.9)."""

    train_epoch: int = 300
    alpha_every: int = 10
    momentum: float = 0.9
    alpha_scale: float = 250.0
    seed: int = 1
    unseen: Literal["zeroshot", "error"] = "zeroshot"
    augment_views: int = 0
    augment_scale: list[float] = dataclasses.field(default_factory=lambda: [0.5, 1.0])

    def __post_init__(self) -> None:
        super().__post_init__()
        check_views(self.augment_views, self.augment_scale)
        if self.train_epoch < 1 or self.alpha_every < 1:
            raise ValueError("train_epoch and alpha_every must be >= 1")


def lp_pp_logits(f: Tensor, weight: Tensor, bias: Tensor, alpha: Tensor, text: Tensor) -> Tensor:
    """``f W^T + b + alpha * (f T^T)``, alpha broadcast over the images."""
    return f @ weight.t() + bias + alpha * (f @ text.t())


def lp_pp_init(f: Tensor, y: Tensor, text: Tensor, n_cls: int, scale: float = 250.0):
    """The official class-sum prototypes, alpha init, ``lr_w`` and ``lr_alpha``."""
    onehot = F.one_hot(y, n_cls).to(f.dtype)
    sums = onehot.t() @ f
    ft = f @ text.t()
    # the mean text logit of each class's own images (``compute_centroids_alpha`` multiplies
    # the one-hot labels with the logits element-wise: the diagonal), averaged over classes
    alpha0 = scale * ((onehot * ft).sum(0) / onehot.sum(0)).mean()
    lam = torch.linalg.eigvalsh((f.t() @ f).double()).max()
    lr_w = float(4 * len(y) / lam)
    lr_alpha = float(len(y) / (4 * ft.pow(2).sum(0).max()))
    return sums, float(alpha0), lr_w, lr_alpha


class LPpp(AugmentedFit, TemplateMethod):
    name = "lp_pp"
    config_cls = LPppConfig
    closed_form = True
    image_fields = ("pooled", "norm")  # the norm: views are averaged as raw features

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: LPppConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        self.fitted_classnames = list(classnames)
        n, dim, device = len(classnames), backbone.embed_dim, backbone.device
        # Learned in fit_features, never by the trainer's SGD: parameters so that they are saved.
        self.weight = nn.Parameter(torch.zeros(n, dim, device=device), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(n, device=device), requires_grad=False)
        self.alpha = nn.Parameter(torch.zeros(n, device=device), requires_grad=False)
        self.fitted = nn.Parameter(torch.zeros((), device=device), requires_grad=False)
        self.set_classnames(classnames)

    def set_classnames(self, classnames: list[str]) -> None:
        super().set_classnames(classnames)
        self._rows = fitted_rows("LP++ probe", self.fitted_classnames, classnames, self.cfg)

    @property
    def fallback(self) -> str | None:
        return "zeroshot" if self._rows is None else None

    def fit_features(
        self,
        train: ImageFeatures,
        train_labels: Tensor,
        val: ImageFeatures | None = None,
        val_labels: Tensor | None = None,
        views: Sequence[ImageFeatures] | None = None,
    ) -> dict[str, Any]:
        if val is None or val_labels is None:
            raise ValueError("LP++ keeps the best iteration on a validation split; pass one")
        cfg, device = self.cfg, self.weight.device
        n_cls = len(self.fitted_classnames)
        if sorted(set(train_labels.tolist())) != list(range(n_cls)):
            raise ValueError(f"LP++ needs training images of all {n_cls} classes")
        self.set_classnames(self.fitted_classnames)
        f = F.normalize(train.pooled.float(), dim=-1).to(device)
        y = train_labels.to(device)
        vf = F.normalize(val.pooled.float(), dim=-1).to(device)
        vy = val_labels.to(device)
        text = self.class_text().float().detach()
        sums, alpha0, lr_w, lr_alpha = lp_pp_init(f, y, text, n_cls, cfg.alpha_scale)
        bound = 1.0 / f.shape[1] ** 0.5
        gen = torch.Generator().manual_seed(cfg.seed)
        b0 = torch.empty(n_cls).uniform_(-bound, bound, generator=gen).to(device)
        weight = sums.clone().requires_grad_(True)
        bias = b0.clone().requires_grad_(True)
        alpha = torch.full((n_cls,), alpha0, device=device, requires_grad=True)
        opt = torch.optim.SGD([weight, bias], lr=lr_w, momentum=cfg.momentum)
        best_acc, best_it, best = -1.0, -1, None
        for it in range(cfg.train_epoch):
            loss = F.cross_entropy(lp_pp_logits(f, weight, bias, alpha, text), y)
            opt.zero_grad()  # weight and bias only: alpha's gradient accumulates, as officially
            loss.backward()
            opt.step()
            if (it + 1) % cfg.alpha_every == 0:
                with torch.no_grad():
                    alpha -= lr_alpha * alpha.grad
            with torch.no_grad():
                out = lp_pp_logits(vf, weight, bias, alpha, text)
                acc = 100.0 * float((out.argmax(-1) == vy).float().mean())
            if acc >= best_acc:
                best_acc, best_it = acc, it
                best = (weight.detach().clone(), bias.detach().clone(), alpha.detach().clone())
        with torch.no_grad():
            self.weight.copy_(best[0])
            self.bias.copy_(best[1])
            self.alpha.copy_(best[2])
            self.fitted.fill_(1.0)
        logger.info("LP++: best val accuracy %.2f%% at iteration %d", best_acc, best_it + 1)
        return {
            "train_images": len(y),
            "best_iteration": best_it + 1,
            "best_val_acc": best_acc,
            "lr_w": lr_w,
            "lr_alpha": lr_alpha,
            "init_alpha": alpha0,
        }

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        if self._rows is None:
            return prompt_logits(self.backbone.logit_scale, feats.pooled.float(), self.class_text())
        if float(self.fitted) <= 0:
            raise RuntimeError("LP++ is not fitted: train it or load a checkpoint")
        rows = self._rows
        f = F.normalize(feats.pooled.float(), dim=-1)
        return lp_pp_logits(
            f, self.weight[rows], self.bias[rows], self.alpha[rows], self.class_text()
        )
