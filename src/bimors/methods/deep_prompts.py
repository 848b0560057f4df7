"""The deep-prompt base shared by MaPLe, IVLP and PromptSRC.

All three learn a text context that replaces the first ``n_ctx`` tokens of
``ctx_init`` (the rest of the phrase stays words: ``[SOS] ctx "of a" <class> .``),
give blocks ``1 .. depth-1`` of the encoders their own prompt tokens, drawn
N(0, 0.02) as the official blocks draw them, and prompt the image tower, so
their image features carry gradients and must never be cached. What differs is
only where the visual prompts come from: projected from the text side (MaPLe)
or learned on their own (IVLP, PromptSRC).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP
from bimors.core.errors import ConfigError
from bimors.methods.context import ContextMethod
from bimors.methods.prompting import ClassPrompts, init_context


def normal_prompts(count: int, n: int, width: int, device: torch.device) -> nn.ParameterList:
    """``count`` independent (n, width) prompts drawn N(0, 0.02), one after the other.

    The draw order is the official one (block 1 first), so a seeded run starts
    from the same tokens as the official code on the same generator state.
    """
    out = []
    for _ in range(count):
        vec = torch.empty(n, width, device=device)
        nn.init.normal_(vec, std=0.02)
        out.append(nn.Parameter(vec))
    return nn.ParameterList(out)


def check_depth(field: str, depth: int, blocks: int, has: str) -> None:
    """Refuse a prompt depth the backbone's blocks cannot hold, naming the field and the fix.

    ``has`` says what the backbone holds ("ViT-B-16 has 12 text blocks").
    """
    if depth > blocks:
        raise ConfigError(
            f"method.{field}={depth} needs {depth} blocks; {has}: set {field} <= {blocks}"
        )


class DeepPromptMethod(ContextMethod):
    """A context method that also prompts the image tower block by block."""

    frozen_image_features = False

    def _phrase(self, backbone: FrozenCLIP) -> str:
        """``ctx_init`` when it has at least ``n_ctx`` tokens to initialise from, else ""."""
        phrase = self.cfg.ctx_init.replace("_", " ")
        return phrase if phrase and backbone.count_tokens(phrase) >= self.cfg.n_ctx else ""

    def initial_context(self, backbone: FrozenCLIP) -> Tensor:
        """The first ``n_ctx`` token embeddings of the phrase (random without one)."""
        return init_context(backbone, self._phrase(backbone), self.cfg.n_ctx)[: self.cfg.n_ctx]

    def build_prompts(self, classnames: list[str]) -> ClassPrompts:
        # The context replaces the phrase's first n_ctx tokens; the rest stay words.
        prefix = self._phrase(self.backbone) or " ".join(["X"] * self.n_ctx)
        return ClassPrompts(self.backbone, [f"{prefix} {n}." for n in classnames], self.n_ctx)


__all__ = ["DeepPromptMethod", "check_depth", "normal_prompts"]
