"""CoCoOp (Zhou et al., CVPR 2022): the context is shifted per image by a meta-net.

Follows KaiyangZhou/CoOp ``trainers/cocoop.py``: the meta-net
(Linear E -> E/16, ReLU, Linear E/16 -> D) maps the normalised image feature to
a bias added to every context vector.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor

from bimors.backbones.base import ImageFeatures
from bimors.methods.context import ContextConfig, ContextMethod
from bimors.methods.modules import MetaNet
from bimors.methods.prompting import prompt_logits


@dataclasses.dataclass
class CoCoOpConfig(ContextConfig):
    meta_reduction: int = 16


class CoCoOp(ContextMethod):
    name = "cocoop"
    image_fields = ("pooled",)
    config_cls = CoCoOpConfig

    def __init__(self, backbone, classnames, cfg=None, caption_dim=None) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        self.meta_net = MetaNet(
            backbone.embed_dim, backbone.text_width, self.cfg.meta_reduction
        ).to(backbone.device)
        self.finish_init(classnames)

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        bias = self.meta_net(feats.pooled.to(self.ctx.dtype))  # (B, D)
        ctx = self.ctx.unsqueeze(0) + bias.unsqueeze(1)  # (B, n_ctx, D)
        text = self.encode_class_prompts(ctx)
        return prompt_logits(self.backbone.logit_scale, feats.pooled, text)
