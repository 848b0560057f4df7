"""BiMoRS (arXiv 2601.20675, ICASSP 2026): context conditioned on image and caption.

Per image, a meta-net (Linear W -> W/16, ReLU, Linear W/16 -> D) is applied to
every last-block token of the frozen image encoder and averaged over tokens
(the visual key); the caption vector is projected to D (the textual key). The
context tokens, initialised from "a photo of a", are the queries of one
pre-norm cross-attention over the two keys, with a residual. Maths follows
ipankhi/BiMoRS ``trainers/bimors.py``; unlike it, the caption projection is a
trainable, saved part of the model (``caption_proj: frozen`` gives the
official random frozen projection, seeded so that it is reproducible, and
saves it too), and every width is read from the backbone.

``keys`` is the ablation of what conditions the context: ``both`` (the
paper's two keys), ``visual`` (only the meta-net key) or ``caption`` (only the
caption key). The module of the dropped key is still built (same parameters,
same random stream, so the runs differ only in the keys) but frozen, as it
gets no gradient.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor, nn

from bimors.backbones.base import ImageFeatures
from bimors.core.errors import ConfigError
from bimors.methods.context import ContextConfig, ContextMethod
from bimors.methods.modules import MetaNet, PreNormCrossAttention
from bimors.methods.prompting import prompt_logits


@dataclasses.dataclass
class BiMoRSConfig(ContextConfig):
    heads: int = 4
    meta_reduction: int = 16
    caption_proj: Literal["trainable", "frozen"] = "trainable"
    caption_proj_seed: int = 0  # init seed of the frozen projection
    keys: Literal["both", "visual", "caption"] = "both"  # what the context attends to


class BiMoRS(ContextMethod):
    name = "bimors"
    config_cls = BiMoRSConfig
    uses_captions = True

    def __init__(self, backbone, classnames, cfg=None, caption_dim=None) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        width = backbone.text_width
        device = backbone.device
        heads = self.cfg.heads
        if heads < 1 or width % heads:
            divisors = [h for h in (1, 2, 4, 8, 16) if width % h == 0]
            raise ConfigError(
                f"method.heads={heads}: the cross-attention width {width} (the backbone's text "
                f"width) must be divisible by it; choose one of {divisors}"
            )
        self.meta_net = MetaNet(backbone.vision_width, width, self.cfg.meta_reduction).to(device)
        self.caption_proj = nn.Linear(caption_dim, width).to(device)
        if self.cfg.caption_proj == "frozen":
            gen = torch.Generator().manual_seed(self.cfg.caption_proj_seed)
            with torch.no_grad():
                bound = 1.0 / caption_dim**0.5  # nn.Linear's default init range
                self.caption_proj.weight.copy_(
                    torch.empty(width, caption_dim).uniform_(-bound, bound, generator=gen)
                )
                self.caption_proj.bias.copy_(
                    torch.empty(width).uniform_(-bound, bound, generator=gen)
                )
            self.caption_proj.requires_grad_(False)
        self.cross_attn = PreNormCrossAttention(width, width, self.cfg.heads).to(device)
        unused = {"visual": self.caption_proj, "caption": self.meta_net}.get(self.cfg.keys)
        if unused is not None:
            unused.requires_grad_(False)
        self.finish_init(classnames)

    def conditioned_context(self, feats: ImageFeatures, captions: Tensor) -> Tensor:
        """Per-image context (B, n_ctx, D)."""
        dtype = self.ctx.dtype
        parts = []
        if self.cfg.keys in ("both", "visual"):
            parts.append(self.meta_net(feats.tokens.to(dtype)).mean(dim=1, keepdim=True))
        if self.cfg.keys in ("both", "caption"):
            parts.append(self.caption_proj(captions.to(dtype)).unsqueeze(1))  # (B, 1, D)
        keys = torch.cat(parts, dim=1)  # (B, 2 or 1, D): visual first, then the caption
        queries = self.ctx.unsqueeze(0).expand(keys.shape[0], -1, -1)
        return self.cross_attn(queries, keys)

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        if captions is None:
            raise ValueError("BiMoRS needs caption vectors for every image")
        ctx = self.conditioned_context(feats, captions)
        text = self.encode_class_prompts(ctx)
        return prompt_logits(self.backbone.logit_scale, feats.pooled, text)
