"""The base every method builds on: a frozen backbone, a class set, and its own state.

A method turns image features (and, for BiMoRS, caption vectors) into class
logits. It never loads files and never trains itself: the one trainer in
:mod:`bimors.engine` drives every method the same way. The state a method
saves is every parameter outside the frozen backbone, so a checkpoint holds
exactly what the method learned and nothing of CLIP.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.errors import CheckpointError
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
    """

    name: ClassVar[str] = ""
    config_cls: ClassVar[type[MethodConfig]] = MethodConfig
    uses_captions: ClassVar[bool] = False
    #: The ImageFeatures fields ``forward`` reads; a feature cache stores only these.
    image_fields: ClassVar[tuple[str, ...]] = ("pooled", "tokens")
    #: False for a method whose image features depend on its trainable state (e.g.
    #: deep visual prompts): it is then never served cached image features.
    frozen_image_features: ClassVar[bool] = True
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
        """Frozen image features; they depend on no trainable state, so they may be cached."""
        return self.backbone.encode_image(pixels)

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        """Class logits (B, C)."""
        raise NotImplementedError

    def encode_class_prompts(self, ctx: Tensor | None) -> Tensor:
        """Normalised text features of the class prompts with context ``ctx``.

        (C, E) for no or shared context, (B, C, E) for per-image context.
        """
        if self.reference_recipe:
            return self.prompts.encode_reference(self.backbone, ctx)
        cfg = self.cfg
        return self.prompts.encode(
            self.backbone, ctx, cfg.chunk_size, cfg.pack_prompts, cfg.grad_checkpointing
        )

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Training loss; cross-entropy unless a method needs more."""
        return nn.functional.cross_entropy(logits, labels)

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
