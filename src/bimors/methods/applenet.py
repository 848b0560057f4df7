"""APPLeNet (Singha, Jha et al., CVPRW 2023): multi-scale visual content injected into prompts.

Follows mainaksingha01/APPLeNet ``models/applenet.py`` (and its ``clip/model.py``
for the per-block features), config ``yaml/trainers/AppleNet/vit_b16_c4.yaml``:

* multi-scale content: the mean over tokens (CLS + patches) of every vision
  block's output, each mapped by its own Linear(W -> E), plus the normalised
  image feature: L + 1 vectors of width E, averaged (the official
  ``AdaptiveAvgPool2d((1, 512))`` over the stacked scales);
* attention-driven injection: with a shared gate ``a(x) = sigmoid(W2 relu(W1 x))``
  (no biases, width E/16), ``h = Linear(2E -> E)([a(v) * v, v])`` and
  ``b = Linear(2E -> D)([a(h) * v, v])``;
* a meta-net (Linear D -> D/16, ReLU, Linear -> D) maps ``b`` to one shift added
  to each of the 4 context vectors (initialised from "a photo of a");
* loss: cross-entropy plus the context-redundancy penalty (the paper's
  anti-correlation regulariser) ``0.05 * log10(-mean_b det(S_b S_b^T / T^3 - I / T))``
  over the shifted contexts S_b (4 x D), T = 1.

The paper also names batch-statistics "style" features (AdaIN's mean and
standard deviation); the official code only ever uses the token means above
(its ``sigma`` is never called, and its ``projector`` is the identity on the
image feature), and so do we.

Deviations: ``log10(|mean det|)`` instead of ``log10(-mean det)``: equal where
the official value is defined, finite where it would be NaN (mean det > 0);
the penalty is computed in float32 outside autocast. Widths come from the
backbone: the meta-net works at the text width D (the official code uses the
image embedding width, equal to D on CLIP ViTs), the scales are averaged
rather than pooled to 512 columns, and any number of blocks, context
tokens and batch size works (the official hard-codes 12 blocks, 4 tokens and
a batch of 4 in the penalty). Trainable weights stay float32 (the official
casts them to fp16). Needs a ViT image tower (per-block token states).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.methods.context import ContextConfig, ContextMethod
from bimors.methods.modules import MetaNet
from bimors.methods.prompting import prompt_logits


@dataclasses.dataclass
class APPLeNetConfig(ContextConfig):
    n_ctx: int = 4
    ctx_init: str = "a photo of a"
    reduction: int = 16  # width divisor of the injection gate and of the meta-net
    crp_weight: float = 0.05  # weight of the context-redundancy penalty
    crp_temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.reduction < 1 or self.crp_temperature <= 0:
            raise ValueError("reduction must be >= 1 and crp_temperature > 0")


class InjectionBlock(nn.Module):
    """Two rounds of a shared sigmoid gate, each concatenated with the input: E -> D."""

    def __init__(self, dim: int, out_dim: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, dim // reduction)
        self.attention = nn.Sequential(
            nn.Linear(dim, hidden, bias=False),
            nn.ReLU(),
            nn.Linear(hidden, dim, bias=False),
            nn.Sigmoid(),
        )
        self.linear1 = nn.Linear(2 * dim, dim)
        self.linear2 = nn.Linear(2 * dim, out_dim)

    def forward(self, v: Tensor) -> Tensor:
        h = self.linear1(torch.cat([self.attention(v) * v, v], dim=-1))
        return self.linear2(torch.cat([self.attention(h) * v, v], dim=-1))


def context_redundancy(ctx: Tensor, temperature: float = 1.0) -> Tensor:
    """``log10 |mean_b det(S_b S_b^T / T^3 - I / T)|`` for contexts (B, n, D), in float32."""
    with torch.autocast(device_type=ctx.device.type, enabled=False):
        s = ctx.float() / temperature
        eye = torch.eye(s.shape[1], device=s.device, dtype=s.dtype)
        det = torch.linalg.det((s @ s.transpose(1, 2) - eye) / temperature).mean()
        return torch.log10(det.abs().clamp_min(torch.finfo(det.dtype).tiny))


class APPLeNet(ContextMethod):
    name = "applenet"
    config_cls = APPLeNetConfig
    image_fields = ("pooled", "layer_means")

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: APPLeNetConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        if not backbone.vision_depth:
            raise ValueError(
                f"APPLeNet needs the token states of every vision block; {backbone.model_id} "
                "has no ViT image tower with layer-wise access"
            )
        device, width = backbone.device, backbone.text_width
        self.scale_proj = nn.ModuleList(
            nn.Linear(backbone.vision_width, backbone.embed_dim)
            for _ in range(backbone.vision_depth)
        ).to(device)
        self.injection = InjectionBlock(backbone.embed_dim, width, self.cfg.reduction).to(device)
        self.meta_net = MetaNet(width, width, self.cfg.reduction).to(device)
        self._shifted_ctx: Tensor | None = None  # handed from forward() to loss()
        self.finish_init(classnames)

    def conditioned_context(self, feats: ImageFeatures) -> Tensor:
        """Per-image context (B, n_ctx, D): ctx plus one shift from the multi-scale content."""
        if feats.layer_means is None or feats.layer_means.shape[1] != len(self.scale_proj):
            raise ValueError(
                f"APPLeNet needs the mean token state of each of the {len(self.scale_proj)} "
                "vision blocks (ImageFeatures.layer_means, set by FrozenCLIP.encode_image)"
            )
        dtype = self.ctx.dtype
        means = feats.layer_means.to(dtype)
        scales = [proj(means[:, i]) for i, proj in enumerate(self.scale_proj)]
        content = torch.stack([*scales, feats.pooled.to(dtype)], dim=1).mean(dim=1)
        shift = self.meta_net(self.injection(content))  # (B, D)
        return self.ctx.unsqueeze(0) + shift.unsqueeze(1)

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        ctx = self.conditioned_context(feats)
        if self.training and torch.is_grad_enabled():
            self._shifted_ctx = ctx
        text = self.encode_class_prompts(ctx)
        return prompt_logits(self.backbone.logit_scale, feats.pooled, text)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        ce = F.cross_entropy(logits, labels)
        ctx, self._shifted_ctx = self._shifted_ctx, None
        if ctx is None or not self.cfg.crp_weight:
            return ce
        return ce + self.cfg.crp_weight * context_redundancy(ctx, self.cfg.crp_temperature)
