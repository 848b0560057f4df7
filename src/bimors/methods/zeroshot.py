"""Zero-shot CLIP with a hand-written template: the lower bound every table starts from."""

from __future__ import annotations

import dataclasses

from torch import Tensor

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.methods.prompting import prompt_logits
from bimors.methods.template import TemplateConfig, TemplateMethod


@dataclasses.dataclass
class ZeroShotConfig(TemplateConfig):
    """``template`` must contain ``{}`` where the class name goes."""


class ZeroShotCLIP(TemplateMethod):
    """Logits of CLIP's image feature against the encoded ``template`` of each class."""

    name = "zeroshot"
    image_fields = ("pooled",)
    config_cls = ZeroShotConfig

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: ZeroShotConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        self.set_classnames(classnames)

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        # Encoded on every call (not cached) so that the reference-recipe test and
        # benchmark compare the two prompt paths themselves.
        text = self.encode_class_prompts(None)
        return prompt_logits(self.backbone.logit_scale, feats.pooled, text)
