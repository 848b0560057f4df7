"""CLIP-Adapter (Gao et al., IJCV 2024): a residual bottleneck adapter on the image feature.

Follows gaopengcuhk/CLIP-Adapter ``clip_adapter.py``: the adapter is
Linear(E -> E/4, no bias), ReLU, Linear(E/4 -> E, no bias), ReLU; the image
feature becomes ``ratio * adapter(f) + (1 - ratio) * f`` with ``ratio = 0.2``
and is compared with the frozen text features of a hand-written template.
Only the adapter trains.

Deviations, each harmless or forced:

* the adapter acts on the L2-normalised feature, the official one on CLIP's
  raw embedding. Without biases and with ReLUs the adapter is positively
  homogeneous (``A(c f) = c A(f)`` for ``c > 0``), so the blended feature is
  the official one divided by ``|f|``: the loss as a function of the adapter
  weights is the same, hence identical logits and gradients (tested);
* widths come from the backbone (the official code hard-codes 1024, RN50's);
* the template is ``method.template`` ("a photo of a {}." by default): the
  official per-dataset templates cover no remote-sensing dataset but
  EuroSAT, whose official template the preset uses there;
* the official repository ships no training config ("follow CoOp's command");
  the preset uses CoOp's ViT-B/16 schedule (``vit_b16_ep50``).
"""

from __future__ import annotations

import dataclasses

import torch.nn.functional as F
from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.methods.prompting import prompt_logits
from bimors.methods.template import TemplateConfig, TemplateMethod


@dataclasses.dataclass
class CLIPAdapterConfig(TemplateConfig):
    reduction: int = 4  # bottleneck width E / reduction
    ratio: float = 0.2  # weight of the adapted feature in the residual blend

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reduction < 1:
            raise ValueError("reduction must be >= 1")
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError("ratio must be between 0 and 1")


class BottleneckAdapter(nn.Sequential):
    """Linear(dim -> dim/r) -> ReLU -> Linear(-> dim) -> ReLU, all without bias."""

    def __init__(self, dim: int, reduction: int = 4) -> None:
        hidden = max(1, dim // reduction)
        super().__init__(
            nn.Linear(dim, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, dim, bias=False),
            nn.ReLU(inplace=True),
        )


class CLIPAdapter(TemplateMethod):
    name = "clip_adapter"
    config_cls = CLIPAdapterConfig

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: CLIPAdapterConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        self.adapter = BottleneckAdapter(backbone.embed_dim, self.cfg.reduction).to(backbone.device)
        self.set_classnames(classnames)

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        image = feats.pooled.float()
        ratio = self.cfg.ratio
        blended = F.normalize(ratio * self.adapter(image) + (1.0 - ratio) * image, dim=-1)
        return prompt_logits(self.backbone.logit_scale, blended, self.class_text())
