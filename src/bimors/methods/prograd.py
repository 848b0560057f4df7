"""ProGrad (Zhu et al., ICCV 2023): CoOp whose gradient never fights zero-shot CLIP.

Follows BeierZhu/Prompt-align: ``ProGrad.public/trainers/prograd.py`` (model
and losses) and ``Dassl.ProGrad.pytorch/dassl/engine/trainer.py``
(``prograd_backward_and_update``):

* a CoOp prompt (16 shared context vectors, class name at the end); with
  ``ctx_init`` the phrase's vectors initialise the *last* context slots and
  the others start at zero (the official ``CTX_INIT: True``);
* the teacher is zero-shot CLIP with ``template`` on the same image features;
* ``L_ce = CE(student, y)`` and ``L_kd = -sum softmax(z_zs / T) log_softmax(z / T) T^2``
  (mean over the batch), T = 1;
* per parameter tensor, with ``g = grad L_ce`` and ``k = grad L_kd``: when
  ``g . k < 0`` the step uses ``g - lambda (g . k^) k^`` (``k^ = k / |k|``,
  lambda = 1), otherwise ``g``. Only ``L_ce`` is reported as the loss.

The projection runs in :meth:`ProGrad.backward`, the trainer's generic hook;
with several processes the teacher gradient is averaged over them like DDP
averages the CE gradient, so every rank projects the same global gradients.

The preset follows the official 16-shot schedule (``configs/trainers/ProGrad/rn50.yaml``,
200 epochs) and, on EuroSAT, the official template "a centered satellite photo
of {}." for the context and the teacher with lambda 0.8 (``bimors list
--preset prograd --dataset eurosat``).

Deviations: the preset runs on ViT-B/16 (the RS tables' backbone; the
official configs are RN50); the default template is "a photo of a {}." (the
official per-dataset templates cover no RS dataset); ``ctx_init`` counts BPE
tokens, not words (the same for the default phrase); a zero teacher gradient
leaves the CE gradient as it is (the official code divides by its zero norm).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.methods.collective import average_across_processes
from bimors.methods.context import ContextConfig, ContextMethod
from bimors.methods.prompting import ClassPrompts, init_context, prompt_logits
from bimors.methods.template import TemplateText, check_template, template_prompts


@dataclasses.dataclass
class ProGradConfig(ContextConfig):
    """``n_ctx`` context slots; ``ctx_init`` fills the last ones (the rest start at zero)."""

    n_ctx: int = 16
    ctx_init: str = "a photo of a"
    template: str = "a photo of a {}."  # the zero-shot teacher's prompt
    temperature: float = 1.0
    grad_lambda: float = 1.0

    def __post_init__(self) -> None:
        check_template(self.template)
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")
        if self.n_ctx < 1:
            raise ValueError("n_ctx must be >= 1")


def distillation_loss(logits: Tensor, teacher: Tensor, temperature: float = 1.0) -> Tensor:
    """ProGrad's ``L_kd``: cross-entropy to the teacher's softened prediction, times T^2."""
    target = F.softmax(teacher.float() / temperature, dim=-1)
    log_p = F.log_softmax(logits.float() / temperature, dim=-1)
    return -(target * log_p).sum(dim=1).mean() * temperature**2


def project_conflicting(grad: Tensor, reference: Tensor, lam: float = 1.0) -> Tensor:
    """``grad`` minus ``lam`` times its component along ``reference`` when they conflict.

    ``g - lam * min(g . r^, 0) * r^``: unchanged when ``g . r >= 0`` or ``r = 0``;
    with ``lam = 1`` a conflicting gradient becomes orthogonal to ``reference``.
    """
    unit = reference / reference.norm().clamp_min(torch.finfo(reference.dtype).tiny)
    dot = (grad * unit).sum()
    return grad - lam * dot.clamp(max=0.0) * unit


class ProGrad(ContextMethod):
    name = "prograd"
    config_cls = ProGradConfig
    image_fields = ("pooled",)

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: ProGradConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        self.teacher_text = TemplateText()
        self.teacher_prompts: ClassPrompts | None = None
        # Terms handed from forward() to loss() to backward() within one training step.
        self._teacher_logits: Tensor | None = None
        self._kd_loss: Tensor | None = None
        self.finish_init(classnames)

    def initial_context(self, backbone: FrozenCLIP) -> Tensor:
        n_ctx, phrase = self.cfg.n_ctx, self.cfg.ctx_init
        if not phrase:
            return init_context(backbone, "", n_ctx)
        words = init_context(backbone, phrase, n_ctx)
        if words.shape[0] > n_ctx:
            raise ValueError(
                f"ctx_init {phrase!r} has {words.shape[0]} tokens, more than n_ctx={n_ctx}"
            )
        ctx = torch.zeros(n_ctx, words.shape[1])
        ctx[n_ctx - words.shape[0] :] = words
        return ctx

    def set_classnames(self, classnames: list[str]) -> None:
        super().set_classnames(classnames)
        teacher = template_prompts(self.backbone, self.cfg.template, self.classnames)
        self.teacher_prompts = teacher.to(self.backbone.device)

    def teacher_logits(self, feats: ImageFeatures) -> Tensor:
        """Zero-shot CLIP's logits on the same image features (no gradient)."""
        text = self.teacher_text.features(self, self.teacher_prompts)
        return prompt_logits(self.backbone.logit_scale, feats.pooled.float(), text).detach()

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        text = self.encode_class_prompts(self.ctx)
        logits = prompt_logits(self.backbone.logit_scale, feats.pooled, text)
        if self.training and torch.is_grad_enabled():
            self._teacher_logits = self.teacher_logits(feats)
        return logits

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """``L_ce``; ``L_kd`` is kept for :meth:`backward` when a teacher prediction exists."""
        teacher, self._teacher_logits = self._teacher_logits, None
        if teacher is not None:
            self._kd_loss = distillation_loss(logits, teacher, self.cfg.temperature)
        return F.cross_entropy(logits, labels)

    def backward(self, loss: Tensor, scaler: torch.amp.GradScaler) -> None:
        kd, self._kd_loss = self._kd_loss, None
        if kd is None:  # no teacher term this step: plain CoOp
            return super().backward(loss, scaler)
        params = self.trainable_parameters()
        kd_grads = list(
            torch.autograd.grad(scaler.scale(kd), params, retain_graph=True, allow_unused=True)
        )
        average_across_processes(kd_grads)  # DDP averages only the CE gradients below
        scaler.scale(loss).backward()
        with torch.no_grad():
            for p, k in zip(params, kd_grads, strict=True):
                if k is not None and p.grad is not None:
                    p.grad.copy_(project_conflicting(p.grad, k, self.cfg.grad_lambda))
        return None
