"""TCP (Yao et al., CVPR 2024): textual-based class-aware prompt tuning.

Follows htyao89/Textual-based_Class-aware_prompt_tuning ``trainers/tcp.py``
(prompt learner, model, loss), ``trainers/clip_text/model.py``
(``ResidualAttentionBlock_MaPLe``: where the class-aware tokens enter) and
``configs/trainers/TCP/vit_b16_ep100_ctxv1.yaml`` with
``scripts/base2new_train.sh`` (4 context tokens, class token at the end):

* a CoOp prompt "<ctx> <class name>." with 4 random context vectors
  (``CTX_INIT: False``, N(0, 0.02));
* the textual knowledge embedding (TKE): frozen CLIP's normalised text
  features of the hand-crafted prompt ``template`` ("a photo of a {}.", on
  EuroSAT "a centered satellite photo of {}.", the official
  ``CUSTOM_TEMPLATES_ori``) go through ``Linear(E, E/4) -> QuickGELU ->
  Linear(E/4, n_ctx * D)`` and become ``n_ctx`` class-aware tokens per class;
* at the input of text block ``layer`` (official: 8 of ViT-B/16's 12, counted
  from 0) the context positions are replaced by the class-aware tokens (the
  official mixing weight there is hard-coded to 1.0: a full replacement);
* ``L = CE(logits, y) + weight * (1 - mean_c cos(t_c, t^hand_c))`` with the
  official (hard-coded) weight 8.0, as in KgCoOp.

The context and the TKE train (the official trainer trains all of its prompt
learner); image features are frozen, so the feature cache and shared views
apply. The class-aware tokens differ per class inside the encoder, so the
class prompts are encoded as C separate sequences (truncated after the
longest EOS, exact because CLIP's text encoder is causal), never packed.

Deviations: the TKE's width follows the backbone (the official code reshapes to
512, ViT-B/16's width) and its token count follows ``n_ctx`` (official: 4,
the same at the official ``n_ctx``); ``template`` on RS datasets other than
EuroSAT is "a photo of a {}.". The preset trains with the official optimiser,
Dassl's Adam (lr 0.002, its default L2 weight decay 5e-4, betas 0.9/0.999),
through ``train.optimizer: adam``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.core.errors import ConfigError
from bimors.methods.context import ContextConfig, ContextMethod
from bimors.methods.kgcoop import knowledge_distance
from bimors.methods.prompting import ClassPrompts, prompt_logits
from bimors.methods.template import TemplateText, check_template, template_prompts


@dataclasses.dataclass
class TCPConfig(ContextConfig):
    """``layer``: the text block whose input gets the class-aware tokens (official 8)."""

    n_ctx: int = 4
    ctx_init: str = ""
    template: str = "a photo of a {}."
    weight: float = 8.0
    layer: int = 8

    def __post_init__(self) -> None:
        check_template(self.template)
        if self.weight < 0:
            raise ValueError(f"weight={self.weight}: must be >= 0 (the official weight is 8.0)")


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, the activation of the official TKE."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class KnowledgeEmbedding(nn.Sequential):
    """TCP's TKE: class text features (C, E) -> class-aware tokens (C, n_ctx, D)."""

    def __init__(self, embed_dim: int, width: int, n_ctx: int) -> None:
        super().__init__()
        self.n_ctx, self.width = n_ctx, width
        self.add_module("linear1", nn.Linear(embed_dim, embed_dim // 4))
        self.add_module("gelu", QuickGELU())
        self.add_module("linear2", nn.Linear(embed_dim // 4, n_ctx * width))

    def forward(self, text: Tensor) -> Tensor:
        return super().forward(text).reshape(text.shape[0], self.n_ctx, self.width)


class TCP(ContextMethod):
    name = "tcp"
    config_cls = TCPConfig
    image_fields = ("pooled",)

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: TCPConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        depth = backbone.text_depth
        if not 0 <= self.cfg.layer < depth:
            raise ConfigError(
                f"method.layer={self.cfg.layer}: the text encoder of {backbone.model_id} has "
                f"blocks 0..{depth - 1}; set method.layer in that range (official: 8 of 12)"
            )
        self.meta_net = KnowledgeEmbedding(backbone.embed_dim, backbone.text_width, self.n_ctx).to(
            backbone.device
        )
        self.hand_text = TemplateText()
        self.hand_prompts: ClassPrompts | None = None
        self._distance: Tensor | None = None  # handed from forward() to loss()
        self.finish_init(classnames)

    def set_classnames(self, classnames: list[str]) -> None:
        super().set_classnames(classnames)
        hand = template_prompts(self.backbone, self.cfg.template, self.classnames)
        self.hand_prompts = hand.to(self.backbone.device)

    def hand_features(self) -> Tensor:
        """Frozen CLIP's normalised text features (C, E) of the hand-crafted prompts."""
        return self.hand_text.features(self, self.hand_prompts)

    def class_tokens(self) -> Tensor:
        """The class-aware tokens (C, n_ctx, D) the TKE makes of the hand-crafted features."""
        hand = self.hand_features()
        return self.meta_net(hand.to(self.meta_net.linear1.weight.dtype))

    def class_text(self) -> Tensor:
        """Normalised text features (C, E) of the prompts with the tokens injected."""
        prompts = self.prompts
        length = prompts.full_length if self.reference_recipe else prompts.length
        embeds = prompts.assemble(self.ctx, length)
        text = self.backbone.encode_prompts_injected(
            embeds, prompts.eos, self.cfg.layer, self.class_tokens(), start=1
        )
        return nn.functional.normalize(text, dim=-1)

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        text = self.class_text()
        if self.training and torch.is_grad_enabled():
            self._distance = knowledge_distance(text, self.hand_features())
        return prompt_logits(self.backbone.logit_scale, feats.pooled, text)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """``CE + weight * distance`` in training; plain CE when forward ran without the term."""
        distance, self._distance = self._distance, None
        ce = nn.functional.cross_entropy(logits, labels)
        if distance is None:
            return ce
        return ce + self.cfg.weight * distance
