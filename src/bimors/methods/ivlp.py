"""IVLP (Khattak et al., ICCV 2023 baseline): independent deep prompts in both towers.

Follows muzairkhattak/PromptSRC ``trainers/independentVL.py`` and its
``clip/model.py`` (``ResidualAttentionBlock_IVLP``). The class defaults are
``extend_cfg``'s in its ``train.py`` (2 + 2 tokens, depth 9); the preset
(``configs/ivlp.yaml``) follows ``configs/trainers/IVLP/vit_b16_c2_ep20_batch4_4+4ctx.yaml``
(4 + 4 tokens):

* text: ``n_ctx_text`` context vectors initialised from the first tokens of
  ``ctx_init``; the prompt is ``[SOS] ctx <rest of phrase> <class> . [EOS]`` (as
  MaPLe). Blocks 1 .. ``prompt_depth_text``-1 overwrite the context slots with
  their own learned tokens, N(0, 0.02);
* vision: ``n_ctx_vision`` learned tokens, N(0, 0.02), appended after the patch
  tokens before the pre-LayerNorm (the official ``VPT``); blocks 1 ..
  ``prompt_depth_vision``-1 replace them with their own learned tokens. Unlike
  MaPLe nothing couples the two towers.

The text context, its phrase and the N(0, 0.02) draws come from the deep-prompt
base shared with MaPLe (:mod:`bimors.methods.deep_prompts`).

The image features depend on the prompts, so ``frozen_image_features`` is False
and the feature cache refuses the method. Deviations: trainable weights stay
float32 (the official runs fp16); depths must not exceed the blocks of the
backbone.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.methods.context import ContextConfig
from bimors.methods.deep_prompts import DeepPromptMethod, check_depth, normal_prompts
from bimors.methods.prompting import prompt_logits


@dataclasses.dataclass
class IVLPConfig(ContextConfig):
    """Text and vision prompts of their own lengths and depths (1 = the inputs only)."""

    n_ctx: int = 2
    n_ctx_vision: int = 2
    ctx_init: str = "a photo of a"
    prompt_depth_text: int = 9
    prompt_depth_vision: int = 9

    def __post_init__(self) -> None:
        if min(self.n_ctx, self.n_ctx_vision, self.prompt_depth_text) < 1:
            raise ValueError("n_ctx, n_ctx_vision and prompt_depth_text must be >= 1")
        if self.prompt_depth_vision < 1:
            raise ValueError("prompt_depth_vision must be >= 1")


class IVLP(DeepPromptMethod):
    name = "ivlp"
    config_cls = IVLPConfig

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: IVLPConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        c = self.cfg
        for field, depth, blocks, kind in (
            ("prompt_depth_text", c.prompt_depth_text, backbone.text_depth, "text"),
            ("prompt_depth_vision", c.prompt_depth_vision, backbone.vision_depth, "vision"),
        ):
            check_depth(field, depth, blocks, f"{backbone.model_id} has {blocks} {kind} blocks")
        device = backbone.device
        self.deep_text = normal_prompts(
            c.prompt_depth_text - 1, self.n_ctx, backbone.text_width, device
        )
        vpt = torch.empty(c.n_ctx_vision, backbone.vision_width, device=device)
        nn.init.normal_(vpt, std=0.02)
        self.vpt = nn.Parameter(vpt)
        self.deep_vision = normal_prompts(
            c.prompt_depth_vision - 1, c.n_ctx_vision, backbone.vision_width, device
        )
        self.finish_init(classnames)

    def image_features(self, pixels: Tensor) -> ImageFeatures:
        """Image features through the prompted image encoder (with gradients)."""
        return self.backbone.encode_image_deep(pixels, self.vpt, list(self.deep_vision))

    def text_features(self) -> Tensor:
        """Prompted class text features, normalised (C, E)."""
        return self.encode_class_prompts(self.ctx, list(self.deep_text))

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        return prompt_logits(self.backbone.logit_scale, feats.pooled, self.text_features())
