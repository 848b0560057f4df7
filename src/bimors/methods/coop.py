"""CoOp (Zhou et al., IJCV 2022): one learned context shared by all classes and images.

Follows KaiyangZhou/CoOp ``trainers/coop.py`` with the unified context and the
class token at the end (the configuration of every RS table).
"""

from __future__ import annotations

import dataclasses

from torch import Tensor

from bimors.backbones.base import ImageFeatures
from bimors.methods.context import ContextConfig, ContextMethod
from bimors.methods.prompting import prompt_logits


@dataclasses.dataclass
class CoOpConfig(ContextConfig):
    """CoOp's defaults: 16 random context vectors (empty ``ctx_init``)."""

    n_ctx: int = 16
    ctx_init: str = ""


class CoOp(ContextMethod):
    name = "coop"
    image_fields = ("pooled",)
    config_cls = CoOpConfig

    def __init__(self, backbone, classnames, cfg=None, caption_dim=None) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        self.finish_init(classnames)

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        text = self.encode_class_prompts(self.ctx)
        return prompt_logits(self.backbone.logit_scale, feats.pooled, text)
