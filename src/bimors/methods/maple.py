"""MaPLe (Khattak et al., CVPR 2023): coupled deep prompts in both CLIP encoders.

Follows muzairkhattak/multimodal-prompt-learning ``trainers/maple.py`` and
``clip/model.py`` (``VisionTransformer_MaPLe``, ``ResidualAttentionBlock_MaPLe``),
config ``configs/trainers/MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml``:

* text: ``n_ctx = 2`` context vectors initialised from the first two tokens of
  "a photo of a"; the prompt is ``[SOS] ctx "of a" <class> . [EOS]`` (the rest of
  the phrase stays as words). Blocks 1 .. depth-1 overwrite the context slots
  with their own learned tokens (``prompt_depth = 9``: 8 deep prompts, N(0, 0.02));
* vision: a linear projection (D -> W) of the text context gives ``n_ctx`` visual
  prompts appended after the patch tokens, before the pre-LayerNorm, without
  position embeddings; block i overwrites them with the projection of text
  deep prompt i (one projection per depth, all initialised identically, as the
  official ``_get_clones`` deep copies one layer);
* logits are CLIP's scaled cosine similarities; the loss is cross-entropy.

The image features depend on the learned prompts, so :meth:`image_features`
runs with gradients and ``frozen_image_features`` is False: they must not be
cached. Deviations: widths come from the backbone (the official code
hard-codes 512 and 768); ``ctx_init`` is used whenever it has at least
``n_ctx`` tokens (the official test is ``n_ctx <= 4``, the same for the
default phrase); trainable weights stay float32 (the official casts the
projection and prompts to fp16).
"""

from __future__ import annotations

import copy
import dataclasses

from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.methods.context import ContextConfig
from bimors.methods.deep_prompts import DeepPromptMethod, check_depth, normal_prompts
from bimors.methods.prompting import prompt_logits


@dataclasses.dataclass
class MaPLeConfig(ContextConfig):
    """``prompt_depth`` blocks of each encoder get prompts (1 = the inputs only)."""

    n_ctx: int = 2
    ctx_init: str = "a photo of a"
    prompt_depth: int = 9

    def __post_init__(self) -> None:
        if self.n_ctx < 1 or self.prompt_depth < 1:
            raise ValueError("n_ctx and prompt_depth must be >= 1")


class MaPLe(DeepPromptMethod):
    name = "maple"
    config_cls = MaPLeConfig

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: MaPLeConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        depth = self.cfg.prompt_depth
        has = (
            f"{backbone.model_id} has {backbone.text_depth} text and "
            f"{backbone.vision_depth} layer-wise vision blocks"
        )
        check_depth("prompt_depth", depth, min(backbone.text_depth, backbone.vision_depth), has)
        device, d_text = backbone.device, backbone.text_width
        self.proj = nn.Linear(d_text, backbone.vision_width).to(device)
        self.compound_prompts_text = normal_prompts(depth - 1, self.n_ctx, d_text, device)
        single = nn.Linear(d_text, backbone.vision_width).to(device)
        deep = self.compound_prompts_text
        self.compound_projections = nn.ModuleList(copy.deepcopy(single) for _ in deep)
        self.finish_init(classnames)

    def visual_prompts(self) -> tuple[Tensor, list[Tensor]]:
        """First-layer visual prompts and the deep ones, projected from the text side."""
        pairs = zip(self.compound_projections, self.compound_prompts_text, strict=True)
        return self.proj(self.ctx), [proj(p) for proj, p in pairs]

    def image_features(self, pixels: Tensor) -> ImageFeatures:
        """Image features through the prompted image encoder (with gradients)."""
        first, deeper = self.visual_prompts()
        return self.backbone.encode_image_deep(pixels, first, deeper)

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        text = self.encode_class_prompts(self.ctx, list(self.compound_prompts_text))
        return prompt_logits(self.backbone.logit_scale, feats.pooled, text)
