"""The base every method builds on: a frozen backbone, a class set, and its own state.

A method turns image features (and, for BiMoRS, caption vectors) into class
logits. It never loads files and never trains itself: the one trainer in
:mod:`bimors.engine` drives every method the same way. The state a method
saves is every parameter outside the frozen backbone, so a checkpoint holds
exactly what the method learned and nothing of CLIP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.core.errors import CheckpointError
from bimors.methods.prompting import DEFAULT_CHUNK, ClassPrompts


@dataclasses.dataclass
class MethodConfig:
    """Options every method has; each method subclasses this with its own fields."""

    chunk_size: int = DEFAULT_CHUNK  # prompts per text-encoder call (bounds memory)
    pack_prompts: bool = True  # encode the prefix all class prompts share once (exact)
    grad_checkpointing: bool = False  # recompute text-encoder activations in backward


class Method(nn.Module):
    """A classifier over a class set on top of a frozen CLIP.

    Subclasses set ``name``, ``config_cls`` and implement :meth:`build_prompts`
    and :meth:`forward`; ``uses_captions`` says whether ``forward`` needs
    caption vectors.

    Two hooks let a method leave the trainer's default path without a special
    case in the trainer: :meth:`backward` (how a step's gradients are made, e.g.
    ProGrad's projection) and, with ``closed_form``, :meth:`fit_features` (a
    method fitted on frozen features instead of by SGD, e.g. the linear probe).
    The epoch hooks :meth:`on_epoch_end` and :meth:`finish_training`, with
    :meth:`resume_state`, let a method end on other weights than its last step's
    (PromptSRC's Gaussian prompt aggregation).
    """

    name: ClassVar[str] = ""
    config_cls: ClassVar[type[MethodConfig]] = MethodConfig
    uses_captions: ClassVar[bool] = False
    #: The ImageFeatures fields ``forward`` reads; a feature cache stores only these.
    image_fields: ClassVar[tuple[str, ...]] = ("pooled", "tokens")
    #: True when :meth:`image_features` depends on no trainable state, so its output
    #: may be cached per image (and augmented view) across epochs, seeds and methods.
    #: False for methods that put learned prompts inside the image encoder (MaPLe):
    #: a cache must then call :meth:`image_features` every step.
    frozen_image_features: ClassVar[bool] = True
    #: True for methods fitted in closed form on frozen features (:meth:`fit_features`)
    #: rather than by the trainer's SGD loop.
    closed_form: ClassVar[bool] = False
    #: When True, prompts are encoded by the reference recipe (per-image loop, 77
    #: tokens) instead of the batched, truncated path; for tests and benchmarks.
    reference_recipe: bool = False

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: MethodConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.cfg = cfg if cfg is not None else self.config_cls()
        self.caption_dim = caption_dim
        if self.uses_captions and not caption_dim:
            raise ValueError(f"method {self.name!r} needs caption vectors: pass caption_dim")
        self.classnames: list[str] = []
        self.prompts: ClassPrompts | None = None

    # -- class set ----------------------------------------------------------------------------
    def set_classnames(self, classnames: list[str]) -> None:
        """Switch the class set (base -> new, or another dataset); learned state is kept."""
        if not classnames:
            raise ValueError("a method needs at least one class name")
        if self.prompts is not None and list(classnames) == self.classnames:
            return  # same class set: keep the prompts instead of tokenising again
        self.classnames = list(classnames)
        device = self.backbone.device
        self.prompts = self.build_prompts(self.classnames).to(device)

    def build_prompts(self, classnames: list[str]) -> ClassPrompts:
        """Frozen class prompts for ``classnames``."""
        raise NotImplementedError

    # -- forward ------------------------------------------------------------------------------
    @torch.no_grad()
    def image_features(self, pixels: Tensor) -> ImageFeatures:
        """Frozen image features; they depend on no trainable state, so they may be cached.

        A method whose image path holds trainable state overrides this (with
        gradients) and sets ``frozen_image_features = False``.
        """
        return self.backbone.encode_image(pixels)

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        """Class logits (B, C)."""
        raise NotImplementedError

    def encode_class_prompts(self, ctx: Tensor | None, deeper: Sequence[Tensor] = ()) -> Tensor:
        """Normalised text features of the class prompts with context ``ctx``.

        (C, E) for no or shared context, (B, C, E) for per-image context.
        ``deeper`` replaces the context inside the text encoder, block by block.
        """
        if self.reference_recipe:
            return self.prompts.encode_reference(self.backbone, ctx, deeper)
        cfg = self.cfg
        return self.prompts.encode(
            self.backbone, ctx, cfg.chunk_size, cfg.pack_prompts, cfg.grad_checkpointing, deeper
        )

    @property
    def fallback(self) -> str | None:
        """What scores the current class set when the method itself cannot, else None.

        A method without weights for some classes (the linear probe on base-to-new's
        "new" split) may answer with another classifier; evaluation records carry
        this name (``fallback``) so reports never pass the substitute off as the method.
        """
        return None

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Training loss; cross-entropy unless a method needs more."""
        return nn.functional.cross_entropy(logits, labels)

    def backward(self, loss: Tensor, scaler: torch.amp.GradScaler) -> None:
        """Fill ``.grad`` of the trainable parameters for one step (the trainer steps after).

        The trainer zeroes gradients before and calls the optimiser through
        ``scaler`` after. Overridden by methods that shape their gradients.
        """
        scaler.scale(loss).backward()

    def on_epoch_end(self, epoch: int, epochs: int) -> None:
        """Called by the trainer after the last step of epoch ``epoch`` (0-based) of ``epochs``.

        A no-op by default; PromptSRC accumulates its Gaussian prompt aggregate here.
        Whatever it keeps must be returned by :meth:`resume_state`, so that a run
        resumed from ``last.pt`` continues exactly.
        """

    def finish_training(self) -> None:
        """Called once after the last epoch, before the final checkpoint (default: no-op).

        A method that ends on other weights than its last step's (PromptSRC's
        Gaussian-weighted average of epochs) swaps them in here.
        """

    def resume_state(self) -> dict[str, Tensor]:
        """Training-only state beyond the parameters, saved in ``last.pt`` (default: none).

        It is never part of :meth:`method_state_dict`, so final checkpoints hold
        exactly the parameters and load back strictly.
        """
        return {}

    def load_resume_state(self, state: dict[str, Tensor]) -> None:
        """Restore what :meth:`resume_state` returned (the trainer calls it on resume)."""

    def fit_features(
        self,
        train: ImageFeatures,
        train_labels: Tensor,
        val: ImageFeatures | None = None,
        val_labels: Tensor | None = None,
        views: Sequence[ImageFeatures] | None = None,
    ) -> dict[str, Any]:
        """Fit a ``closed_form`` method on frozen features; returns what to log.

        The trainer computes the features without augmentation and without token
        states (``tokens`` is empty) to bound memory on full-data runs. A method
        with ``augment_views`` V > 0 (:mod:`bimors.methods.fit_views`) gets instead
        the mean of V augmented views of each training image as ``train`` and the V
        views themselves as ``views``.
        """
        raise NotImplementedError(f"method {self.name!r} is trained by SGD, not in closed form")

    # -- state --------------------------------------------------------------------------------
    def own_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Parameters outside the frozen backbone, by name."""
        return [(n, p) for n, p in self.named_parameters() if not n.startswith("backbone.")]

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.own_parameters() if p.requires_grad]

    def method_state_dict(self) -> dict[str, Tensor]:
        """The method's own learned state (float32, on CPU)."""
        return {n: p.detach().float().cpu().clone() for n, p in self.own_parameters()}

    def load_method_state_dict(self, state: dict[str, Tensor], source: str = "checkpoint") -> None:
        """Load state saved by :meth:`method_state_dict`; refuses any key or shape mismatch."""
        own = dict(self.own_parameters())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        wrong = sorted(
            f"{k}: {tuple(state[k].shape)} in {source}, {tuple(own[k].shape)} in the model"
            for k in set(own) & set(state)
            if tuple(state[k].shape) != tuple(own[k].shape)
        )
        if missing or unexpected or wrong:
            parts = []
            if missing:
                parts.append("missing keys: " + ", ".join(missing))
            if unexpected:
                parts.append("unexpected keys: " + ", ".join(unexpected))
            if wrong:
                parts.append("shape mismatches: " + "; ".join(wrong))
            raise CheckpointError(
                f"{source} does not match method {self.name!r} on this backbone ("
                + " | ".join(parts)
                + "); use a checkpoint trained with the same method, backbone and options"
            )
        with torch.no_grad():
            for k, p in own.items():
                p.copy_(state[k].to(p.device, p.dtype))

    def describe(self) -> dict[str, Any]:
        """Counts of own parameters, for logs and run records."""
        own = self.own_parameters()
        return {
            "method": self.name,
            "trainable_params": sum(p.numel() for _, p in own if p.requires_grad),
            "frozen_own_params": sum(p.numel() for _, p in own if not p.requires_grad),
        }
