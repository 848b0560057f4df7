"""KgCoOp (Yao et al., CVPR 2023): CoOp kept close to the hand-crafted prompts' knowledge.

Follows htyao89/KgCoOp ``KgCoOp/trainers/kgcoop.py`` (model and loss),
``configs/trainers/KgCoOp/vit_b16_ep100_ctxv1.yaml`` (schedule) and
``scripts/base2new_train.sh`` (4 context tokens, class token at the end, W 8.0):

* a CoOp prompt "<ctx> <class name>." whose context starts from the
  embeddings of "a photo of a" (``CTX_INIT: True``);
* the hand-crafted prompt ``template`` (the official ``CUSTOM_TEMPLATES``:
  "a photo of a {}." by default, "a centered satellite photo of {}." on
  EuroSAT) is encoded once by frozen CLIP and normalised;
* ``L = CE(logits, y) + W * (1 - mean_c cos(t_c, t^hand_c))``, where ``t_c``
  are the learned prompts' normalised text features; the official
  ``CosineSimilarity`` eps (1e-7) never binds on normalised features.

Only the context trains (the official trainer freezes everything whose name
lacks ``ctx``; its unused ``meta_net``, ``bias_vectors`` and adapter are not
built here, as they change nothing). Image features are frozen, so the feature
cache and shared views apply.

Deviations: ``ctx_init`` counts BPE tokens (the official code counts words;
the same for "a photo of a"); the knowledge term is computed in float32 under
mixed precision; ``template`` on RS datasets other than EuroSAT is "a photo
of a {}." (the official templates cover no other RS dataset).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.methods.context import ContextConfig, ContextMethod
from bimors.methods.prompting import ClassPrompts, prompt_logits
from bimors.methods.template import TemplateText, check_template, template_prompts


@dataclasses.dataclass
class KgCoOpConfig(ContextConfig):
    """``weight`` is the official ``TRAINER.COOP.W``; ``template`` the hand-crafted prompt."""

    n_ctx: int = 4
    ctx_init: str = "a photo of a"
    template: str = "a photo of a {}."
    weight: float = 8.0

    def __post_init__(self) -> None:
        check_template(self.template)
        if self.weight < 0:
            raise ValueError(f"weight={self.weight}: must be >= 0 (the official W is 8.0)")


def knowledge_distance(text: Tensor, hand: Tensor) -> Tensor:
    """KgCoOp's ``1 - mean_c cos(t_c, t^hand_c)`` between two (C, E) feature sets."""
    return 1.0 - F.cosine_similarity(text.float(), hand.float(), dim=1, eps=1e-7).mean()


class KgCoOp(ContextMethod):
    name = "kgcoop"
    config_cls = KgCoOpConfig
    image_fields = ("pooled",)

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: KgCoOpConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        self.hand_text = TemplateText()
        self.hand_prompts: ClassPrompts | None = None
        # The knowledge term of the current step, handed from forward() to loss().
        self._distance: Tensor | None = None
        self.finish_init(classnames)

    def set_classnames(self, classnames: list[str]) -> None:
        super().set_classnames(classnames)
        hand = template_prompts(self.backbone, self.cfg.template, self.classnames)
        self.hand_prompts = hand.to(self.backbone.device)

    def hand_features(self) -> Tensor:
        """Frozen CLIP's normalised text features (C, E) of the hand-crafted prompts."""
        return self.hand_text.features(self, self.hand_prompts)

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        text = self.encode_class_prompts(self.ctx)
        if self.training and torch.is_grad_enabled():
            self._distance = knowledge_distance(text, self.hand_features())
        return prompt_logits(self.backbone.logit_scale, feats.pooled, text)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """``CE + W * distance`` in training; plain CE when forward ran without the term."""
        distance, self._distance = self._distance, None
        ce = F.cross_entropy(logits, labels)
        if distance is None:
            return ce
        return ce + self.cfg.weight * distance
