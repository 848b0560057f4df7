"""The one interface every frozen CLIP sits behind.

Methods never reach into a library's model internals: they ask the backbone
for image features, token embeddings and the encoding of prompt embeddings.
Each adapter reads every width from the loaded model, so ViT-B/32, B/16 and
L/14 (or any other size) build without a hard-coded number.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class ImageFeatures:
    """What the frozen image encoder gives a method.

    Attributes:
        pooled: projected, L2-normalised image features, shape (B, E).
        tokens: last block's token states (CLS first, then patches) before the
            final LayerNorm, shape (B, T, W_vision).
    """

    pooled: Tensor
    tokens: Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ImageFeatures:
        """A copy on ``device`` (and, if given, in ``dtype``)."""
        return ImageFeatures(
            self.pooled.to(device=device, dtype=dtype), self.tokens.to(device=device, dtype=dtype)
        )

    def __len__(self) -> int:
        return self.pooled.shape[0]


@dataclass(frozen=True)
class Preprocess:
    """How images must be prepared for this backbone (read from the model's own config)."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"


class FrozenCLIP(nn.Module, ABC):
    """A CLIP whose weights never change.

    Subclasses set ``vision_width``, ``text_width``, ``embed_dim``,
    ``context_length``, ``sot_id``, ``eot_id`` and ``preprocess`` from the
    loaded model. All parameters are frozen at construction and the module
    stays in eval mode whatever ``train()`` is called with, so dropout or
    batch-norm statistics of a backbone can never drift during training.
    """

    adapter: str = ""
    vision_width: int
    text_width: int
    embed_dim: int
    context_length: int
    sot_id: int
    eot_id: int
    preprocess: Preprocess
    model_id: str
    #: True when the text transformer is causal, which makes EOS truncation exact.
    causal_text: bool = True

    def freeze(self) -> None:
        """Turn off gradients of every parameter and switch to eval mode."""
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenCLIP:
        """Ignore ``mode``: a frozen backbone is always in eval mode."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- text side ----------------------------------------------------------------
    @abstractmethod
    def tokenize(self, texts: list[str]) -> Tensor:
        """Token ids (N, context_length) with SOT first and EOT after the text."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Number of BPE tokens of ``text`` without SOT/EOT."""

    @abstractmethod
    def embed_tokens(self, ids: Tensor) -> Tensor:
        """Token embeddings (N, L, text_width) of ids (N, L), without positions."""

    @abstractmethod
    def encode_prompts(self, embeds: Tensor, eos_positions: Tensor) -> Tensor:
        """Projected text features (N, E) of prompt embeddings (N, L, D), L <= context_length.

        The text transformer is causal, so the output at ``eos_positions``
        depends only on positions up to it: callers may truncate ``embeds`` to
        any length past the largest EOS position and get identical features.
        """

    def eos_positions(self, ids: Tensor) -> Tensor:
        """Index of the first EOT token in each row of ``ids``."""
        is_eot = ids == self.eot_id
        if not bool(is_eot.any(dim=-1).all()):
            raise ValueError("every tokenized prompt must contain an end-of-text token")
        return is_eot.int().argmax(dim=-1)

    #: True when :meth:`encode_prompts_packed` is implemented for this model.
    supports_packing: bool = False

    def encode_prompts_packed(
        self, embeds: Tensor, position_ids: Tensor, allowed: Tensor, gather: Tensor
    ) -> Tensor:
        """Projected text features of several prompts packed into one sequence.

        Per-image prompts of different classes share their first tokens (SOS
        and the context); a causal encoder computes those once when the prompts
        are laid out as ``[shared prefix, suffix of class 1, suffix of class 2,
        ...]`` with positions restarting after the prefix and a mask that lets
        each suffix see only the prefix and itself. The outputs at ``gather``
        then equal those of the separately encoded prompts.

        Args:
            embeds: token embeddings (N, T, D) without positions.
            position_ids: position of each packed token in its own prompt, (T,).
            allowed: (T, T) bool, ``allowed[i, j]`` when token i may attend to token j.
            gather: packed positions (K,) whose outputs are returned (each prompt's EOS).

        Returns:
            Projected features (N, K, E).
        """
        raise NotImplementedError(f"{type(self).__name__} does not support packed prompts")

    def encode_text(self, ids: Tensor) -> Tensor:
        """Projected text features (N, E) of token ids; the plain CLIP text path."""
        return self.encode_prompts(self.embed_tokens(ids), self.eos_positions(ids))

    # -- image side ---------------------------------------------------------------
    @abstractmethod
    def encode_image(self, pixels: Tensor) -> ImageFeatures:
        """Image features of normalised pixels (B, 3, H, W)."""

    @property
    @abstractmethod
    def logit_scale(self) -> Tensor:
        """exp of CLIP's learned temperature, as a 0-d tensor."""


def additive_mask(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean attention pattern as an additive mask (0 where allowed, -inf elsewhere)."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill_(~allowed, float("-inf"))


def gather_eos(hidden: Tensor, eos_positions: Tensor) -> Tensor:
    """Rows of ``hidden`` (N, L, D) at the EOS position of each sequence -> (N, D)."""
    index = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[index, eos_positions.to(hidden.device)]
