"""Linear probe (Radford et al. 2021; CoOp's protocol): logistic regression on CLIP features.

Follows KaiyangZhou/CoOp ``lpclip/linear_probe.py`` and ``lpclip/feat_extractor.py``:
features of the few-shot train and val images are extracted once without
augmentation from CLIP's raw (unnormalised) image embedding; scikit-learn's
``LogisticRegression(solver="lbfgs", penalty="l2", max_iter=1000)`` is fitted
for each C in {1e6, 1e4, 1e2, 1, 1e-2, 1e-4, 1e-6}; around the C with the best
val accuracy, 8 steps of the official bisection in log10(C) between C/10 and
10C keep the better end each time; the classifier of the last step is used.
Fitted in closed form by the one trainer through :meth:`Method.fit_features`.

A linear probe has no weights for classes it never saw. On a class set that
is not a subset of the fitted one (base-to-new's "new" split) it falls back,
by default, to zero-shot CLIP with ``method.template`` (logged as a
warning), so its "new" accuracy is zero-shot CLIP's; ``method.unseen=error``
refuses instead. The official code only evaluates the fitted classes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.methods.prompting import prompt_logits
from bimors.methods.template import TemplateConfig, TemplateMethod

logger = logging.getLogger(__name__)

C_GRID = [1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6]


@dataclasses.dataclass
class LinearProbeConfig(TemplateConfig):
    """``template`` serves only the zero-shot fallback on unseen classes."""

    c_grid: list[float] = dataclasses.field(default_factory=lambda: list(C_GRID))
    search_steps: int = 8
    max_iter: int = 1000
    unseen: Literal["zeroshot", "error"] = "zeroshot"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.c_grid or any(c <= 0 for c in self.c_grid):
            raise ValueError("c_grid must be a non-empty list of positive numbers")
        if self.search_steps < 0 or self.max_iter < 1:
            raise ValueError("search_steps must be >= 0 and max_iter >= 1")


def search_c(fit_score, grid: list[float], steps: int) -> tuple[float, Any]:
    """The official C search: best of ``grid``, then ``steps`` bisections in log10(C).

    ``fit_score(c) -> (model, val_accuracy)``. The grid's first best wins ties;
    in the bisection the left end wins ties, as in the official code.
    """
    scores = [fit_score(c) for c in grid]
    best = int(np.argmax([acc for _, acc in scores]))
    c_final, model = grid[best], scores[best][0]
    left, right = 0.1 * grid[best], 10.0 * grid[best]
    for _ in range(steps):
        (m_left, a_left), (m_right, a_right) = fit_score(left), fit_score(right)
        mid = 10.0 ** (0.5 * (math.log10(left) + math.log10(right)))
        if a_left < a_right:
            c_final, model, left = right, m_right, mid
        else:
            c_final, model, right = left, m_left, mid
    return c_final, model


def fitted_rows(label: str, fitted: list[str], classnames: list[str], cfg: Any) -> list[int] | None:
    """Rows of ``classnames`` among the ``fitted`` classes, or None when some were never seen.

    A classifier fitted on a class set has no weights for other classes; with
    ``cfg.unseen == "zeroshot"`` the caller then scores the whole class set by
    zero-shot CLIP with ``cfg.template`` (logged here), with ``"error"`` this refuses.
    """
    known = {name: i for i, name in enumerate(fitted)}
    if set(classnames) <= set(known):
        return [known[n] for n in classnames]
    unseen = sorted(set(classnames) - set(known))
    if cfg.unseen == "error":
        raise ValueError(
            f"the {label} was fitted without classes {unseen}; it cannot score "
            "them (set method.unseen=zeroshot to fall back to zero-shot CLIP)"
        )
    logger.warning(
        "%s: %d classes outside the fitted set (%s...); this class set is "
        "scored by zero-shot CLIP with template %r",
        label,
        len(unseen),
        ", ".join(unseen[:3]),
        cfg.template,
    )
    return None


class LinearProbe(TemplateMethod):
    name = "linear_probe"
    config_cls = LinearProbeConfig
    closed_form = True
    image_fields = ("pooled", "norm")  # the probe reads the raw embedding pooled * norm

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: LinearProbeConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        self.fitted_classnames = list(classnames)
        n, dim, device = len(classnames), backbone.embed_dim, backbone.device
        # Learned in closed form, never by SGD: parameters only so that they are saved.
        self.weight = nn.Parameter(torch.zeros(n, dim, device=device), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(n, device=device), requires_grad=False)
        self.c = nn.Parameter(torch.zeros((), device=device), requires_grad=False)
        self.set_classnames(classnames)

    def set_classnames(self, classnames: list[str]) -> None:
        super().set_classnames(classnames)
        self._rows = fitted_rows("linear probe", self.fitted_classnames, classnames, self.cfg)

    @property
    def fallback(self) -> str | None:
        return "zeroshot" if self._rows is None else None

    def fit_features(
        self,
        train: ImageFeatures,
        train_labels: Tensor,
        val: ImageFeatures | None = None,
        val_labels: Tensor | None = None,
    ) -> dict[str, Any]:
        from sklearn.linear_model import LogisticRegression

        if val is None or val_labels is None:
            raise ValueError("the linear probe chooses C on a validation split; pass one")
        n_cls = len(self.fitted_classnames)
        if sorted(set(train_labels.tolist())) != list(range(n_cls)):
            raise ValueError(f"the linear probe needs training images of all {n_cls} classes")
        x, y = train.projected.double().numpy(), train_labels.numpy()
        xv, yv = val.projected.double().numpy(), val_labels.numpy()

        def fit_score(c: float):
            clf = LogisticRegression(solver="lbfgs", max_iter=self.cfg.max_iter, C=c).fit(x, y)
            return clf, float((clf.predict(xv) == yv).mean())

        c, clf = search_c(fit_score, self.cfg.c_grid, self.cfg.search_steps)
        with torch.no_grad():
            self.weight.copy_(torch.as_tensor(clf.coef_, dtype=torch.float32))
            self.bias.copy_(torch.as_tensor(clf.intercept_, dtype=torch.float32))
            self.c.fill_(c)
        val_acc = 100.0 * float((clf.predict(xv) == yv).mean())
        logger.info("linear probe: C=%.4g, val accuracy %.2f%%", c, val_acc)
        return {"C": c, "val_acc": val_acc, "train_images": len(y)}

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        if self._rows is None:
            return prompt_logits(self.backbone.logit_scale, feats.pooled.float(), self.class_text())
        if float(self.c) <= 0:
            raise RuntimeError("the linear probe is not fitted: train it or load a checkpoint")
        rows = self._rows
        return feats.projected.float() @ self.weight[rows].t() + self.bias[rows]
