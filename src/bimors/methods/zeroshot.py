"""Zero-shot CLIP with a hand-written template: the lower bound every table starts from."""

from __future__ import annotations

import dataclasses

from torch import Tensor

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.methods.base import Method, MethodConfig
from bimors.methods.prompting import ClassPrompts, prompt_logits


@dataclasses.dataclass
class ZeroShotConfig(MethodConfig):
    """``template`` must contain ``{}`` where the class name goes."""

    template: str = "a photo of a {}."

    def __post_init__(self) -> None:
        if "{}" not in self.template:
            raise ValueError("template must contain '{}' where the class name goes")


class ZeroShotCLIP(Method):
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

    def build_prompts(self, classnames: list[str]) -> ClassPrompts:
        return ClassPrompts(self.backbone, [self.cfg.template.format(n) for n in classnames], 0)

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        text = self.encode_class_prompts(None)
        return prompt_logits(self.backbone.logit_scale, feats.pooled, text)
