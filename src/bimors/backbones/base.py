"""The one interface every frozen CLIP sits behind.

Methods never reach into a library's model internals: they ask the backbone
for image features, token embeddings and the encoding of prompt embeddings.
Each adapter reads every width from the loaded model, so ViT-B/32, B/16 and
L/14 (or any other size) build without a hard-coded number.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bimors.backbones.towers import TextTower, VisionTower, gather_eos

#: OpenAI CLIP's image normalisation, shared by every CLIP-family checkpoint we know.
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ImageFeatures:
    """What the frozen image encoder gives a method.

    Attributes:
        pooled: projected, L2-normalised image features, shape (B, E).
        tokens: last block's token states (CLS first, then patches) before the
            final LayerNorm, shape (B, T, W_vision).
        norm: L2 norm of the projected feature before normalisation, shape (B, 1);
            ``pooled * norm`` is CLIP's raw image embedding (the linear probe's input).
        layer_means: mean over tokens of every transformer block's output, shape
            (B, depth, W_vision) (APPLeNet's multi-scale content); None for image
            towers without layer-wise access (ResNets).

    Every field is a pure function of the pixels while the image encoder holds no
    learned prompts, so a cache may store all of them (they are small next to
    ``tokens``).
    """

    pooled: Tensor
    tokens: Tensor
    norm: Tensor | None = None
    layer_means: Tensor | None = None

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ImageFeatures:
        """A copy on ``device`` (and, if given, in ``dtype``)."""

        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device=device, dtype=dtype)

        return ImageFeatures(
            move(self.pooled), move(self.tokens), move(self.norm), move(self.layer_means)
        )

    @property
    def projected(self) -> Tensor:
        """CLIP's raw (unnormalised) projected image embedding, (B, E)."""
        if self.norm is None:
            raise ValueError(
                "these image features carry no norm, so the raw CLIP embedding cannot be "
                "recovered; compute them with FrozenCLIP.encode_image (which sets it)"
            )
        return self.pooled * self.norm.to(self.pooled.dtype)

    def __len__(self) -> int:
        return self.pooled.shape[0]

    @classmethod
    def cat(cls, parts: Sequence[ImageFeatures]) -> ImageFeatures:
        """Concatenate along the batch; optional fields stay None unless every part has them."""

        def join(name: str) -> Tensor | None:
            values = [getattr(p, name) for p in parts]
            return None if any(v is None for v in values) else torch.cat(values)

        return cls(join("pooled"), join("tokens"), join("norm"), join("layer_means"))


@dataclass(frozen=True)
class Preprocess:
    """How images must be prepared for this backbone (read from the model's own config)."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"


class FrozenCLIP(nn.Module, ABC):
    """A CLIP whose weights never change.

    Adapters load a library's model, hand its parts over as a
    :class:`~bimors.backbones.towers.TextTower` (and, for ViT image towers, a
    :class:`~bimors.backbones.towers.VisionTower`), and set ``vision_width``,
    ``text_width``, ``embed_dim``, ``context_length``, ``sot_id``, ``eot_id``
    and ``preprocess`` from the loaded model. Every encoding is then computed
    here from those parts, identically for both libraries and every release.
    All parameters are frozen at construction and the module stays in eval
    mode whatever ``train()`` is called with, so dropout or batch-norm
    statistics of a backbone can never drift during training.
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
    text_tower: TextTower
    #: The ViT image tower as parts; None for towers without layer-wise access (ResNets).
    vision_tower: VisionTower | None = None
    #: True when the text transformer is causal, which makes EOS truncation exact.
    causal_text: bool = True
    #: Blocks of the text transformer (prompts may be injected before any of them).
    text_depth: int = 0
    #: Blocks of a ViT image tower with layer-wise access; 0 for towers without it (ResNets).
    vision_depth: int = 0

    def freeze(self) -> None:
        """Turn off gradients of every parameter, switch to eval mode, read tower depths."""
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)
        self.causal_text = self.text_tower.causal
        self.text_depth = len(self.text_tower.blocks)
        self.vision_depth = 0 if self.vision_tower is None else self.vision_tower.depth

    def train(self, mode: bool = True) -> FrozenCLIP:
        """Ignore ``mode``: a frozen backbone is always in eval mode."""
        return super().train(False)

    @property
    def activation(self) -> str:
        """The text blocks' activation as built (``quick_gelu`` or ``gelu``), for the record.

        A checkpoint trained with QuickGELU runs silently with GELU if built with
        the wrong architecture; run records carry this so the mistake is visible.
        """
        from bimors.backbones.blocks import QuickGELU

        act = self.text_tower.blocks[0].act if self.text_tower.blocks else None
        if isinstance(act, QuickGELU):
            return "quick_gelu"
        return type(act).__name__.lower().replace("activation", "") or "none"

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

    def embed_tokens(self, ids: Tensor) -> Tensor:
        """Token embeddings (N, L, text_width) of ids (N, L), without positions."""
        return self.text_tower.token_embedding(ids.to(self.device))

    def encode_prompts(self, embeds: Tensor, eos_positions: Tensor) -> Tensor:
        """Projected text features (N, E) of prompt embeddings (N, L, D), L <= context_length.

        The text transformer is causal, so the output at ``eos_positions``
        depends only on positions up to it: callers may truncate ``embeds`` to
        any length past the largest EOS position and get identical features.
        """
        return self.text_tower.encode(embeds, eos_positions)

    def eos_positions(self, ids: Tensor) -> Tensor:
        """Index of the first EOT token in each row of ``ids``."""
        is_eot = ids == self.eot_id
        if not bool(is_eot.any(dim=-1).all()):
            raise ValueError("every tokenized prompt must contain an end-of-text token")
        return is_eot.int().argmax(dim=-1)

    @property
    def supports_packing(self) -> bool:
        """Packing shares the prefix of several prompts, which is exact only when causal."""
        return self.causal_text

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
        if not self.supports_packing:
            raise NotImplementedError(f"{self.model_id}: packed prompts need a causal text tower")
        return self.text_tower.encode_packed(embeds, position_ids, allowed, gather)

    def encode_text(self, ids: Tensor) -> Tensor:
        """Projected text features (N, E) of token ids; the plain CLIP text path."""
        return self.encode_prompts(self.embed_tokens(ids), self.eos_positions(ids))

    def encode_prompts_deep(
        self,
        embeds: Tensor,
        eos_positions: Tensor,
        deeper: Sequence[Tensor] = (),
        start: int = 1,
    ) -> Tensor:
        """Projected text features (N, E), with learned tokens replaced inside the encoder.

        ``deeper[i]`` (n, D) overwrites positions ``start .. start + n`` at the input
        of block ``i + 1`` (MaPLe's deep text prompts; the first block sees the
        context already placed in ``embeds``). With no ``deeper`` this is
        :meth:`encode_prompts`. Causal, so truncation after EOS stays exact.
        """
        return self.text_tower.encode(embeds, eos_positions, deeper, start)

    def encode_prompts_injected(
        self, embeds: Tensor, eos_positions: Tensor, layer: int, values: Tensor, start: int = 1
    ) -> Tensor:
        """Projected text features (N, E), with positions ``start .. start + n`` replaced
        by ``values`` ((n, D) or one set per prompt, (N, n, D)) at the input of block
        ``layer`` only (TCP's class-aware tokens). Both adapters share the text tower,
        so both support it; causal, so truncation after EOS stays exact.
        """
        return self.text_tower.encode(embeds, eos_positions, (), start, (layer, values))

    # -- image side ---------------------------------------------------------------
    def encode_image(self, pixels: Tensor) -> ImageFeatures:
        """Image features of normalised pixels (B, 3, H, W)."""
        return self.encode_image_deep(pixels)

    def encode_image_deep(
        self, pixels: Tensor, prompts: Tensor | None = None, deeper: Sequence[Tensor] = ()
    ) -> ImageFeatures:
        """Image features computed block by block, optionally with learned prompt tokens.

        ``prompts`` (n, W) are appended after the patch tokens before the
        pre-LayerNorm, without position embeddings; ``deeper[i]`` replaces them at
        the input of block ``i + 1`` (MaPLe's visual prompts). The returned token
        states and block means exclude the prompt tokens. With no prompts this
        equals the library's own forward (tested), plus the per-block means.
        """
        if self.vision_tower is None or not self.vision_depth:
            raise ValueError(
                f"{self.model_id}: layer-wise image encoding needs a ViT image tower "
                "(this backbone's image tower has no accessible transformer blocks)"
            )
        raw, tokens, means = self.vision_tower.encode(pixels, prompts, deeper)
        norm = raw.norm(dim=-1, keepdim=True)
        return ImageFeatures(raw / norm, tokens, norm, means)

    @property
    @abstractmethod
    def logit_scale(self) -> Tensor:
        """exp of CLIP's learned temperature, as a 0-d tensor."""


__all__ = ["FrozenCLIP", "ImageFeatures", "Preprocess", "gather_eos"]
