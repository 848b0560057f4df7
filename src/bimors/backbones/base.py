"""The one interface every frozen CLIP sits behind.

Methods never reach into a library's model internals: they ask the backbone
for image features, token embeddings and the encoding of prompt embeddings.
Each adapter reads every width from the loaded model, so ViT-B/32, B/16 and
L/14 (or any other size) build without a hard-coded number.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
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
    #: Blocks of the text transformer (prompts may be injected before any of them).
    text_depth: int = 0
    #: Blocks of a ViT image tower with layer-wise access; 0 for towers without it (ResNets).
    vision_depth: int = 0

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

    # -- layer-wise encoding (deep prompts, per-block states) -----------------------
    # Adapters implement the small primitives below from their library's own
    # modules; the two generic encoders that follow are written once for both.
    def _text_embed(self, embeds: Tensor) -> Tensor:
        """Prompt embeddings (N, L, D) plus position embeddings: the first block's input."""
        raise NotImplementedError(f"{type(self).__name__} has no layer-wise text path")

    def _text_blocks(self, hidden: Tensor) -> list[Callable[[Tensor], Tensor]]:
        """The text blocks as callables on (N, L, D), with the causal mask for length L."""
        raise NotImplementedError(f"{type(self).__name__} has no layer-wise text path")

    def _text_head(self, hidden: Tensor, eos_positions: Tensor) -> Tensor:
        """Final LayerNorm, the EOS rows and the text projection -> (N, E)."""
        raise NotImplementedError(f"{type(self).__name__} has no layer-wise text path")

    def _vision_embed(self, pixels: Tensor) -> Tensor:
        """Patch, class and position embeddings (B, T, W), before the pre-LayerNorm."""
        raise NotImplementedError(f"{type(self).__name__} has no layer-wise image path")

    def _vision_pre_norm(self, hidden: Tensor) -> Tensor:
        """The LayerNorm applied before the first vision block."""
        raise NotImplementedError(f"{type(self).__name__} has no layer-wise image path")

    def _vision_blocks(self) -> list[Callable[[Tensor], Tensor]]:
        """The vision blocks as callables on (B, T, W)."""
        raise NotImplementedError(f"{type(self).__name__} has no layer-wise image path")

    def _vision_head(self, tokens: Tensor) -> Tensor:
        """Pooling, final LayerNorm and projection of the last block's tokens -> raw (B, E)."""
        raise NotImplementedError(f"{type(self).__name__} has no layer-wise image path")

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
        x = self._text_embed(embeds)
        blocks = self._text_blocks(x)
        if len(deeper) >= len(blocks):
            raise ValueError(
                f"{len(deeper)} deep text prompts need more than the {len(blocks)} text blocks"
            )
        for i, block in enumerate(blocks):
            if 0 < i <= len(deeper):
                x = _overwrite(x, deeper[i - 1], start)
            x = block(x)
        return self._text_head(x, eos_positions)

    def encode_image_deep(
        self, pixels: Tensor, prompts: Tensor | None = None, deeper: Sequence[Tensor] = ()
    ) -> ImageFeatures:
        """Image features computed block by block, optionally with learned prompt tokens.

        ``prompts`` (n, W) are appended after the patch tokens before the
        pre-LayerNorm, without position embeddings; ``deeper[i]`` replaces them at
        the input of block ``i + 1`` (MaPLe's visual prompts). The returned token
        states and block means exclude the prompt tokens. With no prompts this is
        the library's own forward (tested), plus the per-block means.
        """
        if not self.vision_depth:
            raise ValueError(
                f"{self.model_id}: layer-wise image encoding needs a ViT image tower "
                "(this backbone's image tower has no accessible transformer blocks)"
            )
        if deeper and prompts is None:
            raise ValueError("deep visual prompts need first-layer prompts too")
        if any(d.shape[0] != prompts.shape[0] for d in deeper):
            raise ValueError("every deep visual prompt must have as many tokens as the first")
        x = self._vision_embed(pixels)
        batch, n_tokens = x.shape[0], x.shape[1]
        if prompts is not None:
            x = torch.cat([x, prompts.to(x.dtype).unsqueeze(0).expand(batch, -1, -1)], dim=1)
        x = self._vision_pre_norm(x)
        blocks = self._vision_blocks()
        if len(deeper) >= len(blocks):
            raise ValueError(
                f"{len(deeper)} deep visual prompts need more than the {len(blocks)} vision blocks"
            )
        means = []
        for i, block in enumerate(blocks):
            if 0 < i <= len(deeper):
                x = _overwrite(x, deeper[i - 1], n_tokens)
            x = block(x)
            means.append(x[:, :n_tokens].mean(dim=1))
        tokens = x[:, :n_tokens]
        raw = self._vision_head(tokens)
        norm = raw.norm(dim=-1, keepdim=True)
        return ImageFeatures(raw / norm, tokens, norm, torch.stack(means, dim=1))


def _overwrite(hidden: Tensor, values: Tensor, start: int) -> Tensor:
    """``hidden`` (N, L, D) with rows ``start .. start + n`` replaced by ``values`` (n, D)."""
    n = values.shape[0]
    fill = values.to(hidden.dtype).unsqueeze(0).expand(hidden.shape[0], -1, -1)
    return torch.cat([hidden[:, :start], fill, hidden[:, start + n :]], dim=1)


def additive_mask(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean attention pattern as an additive mask (0 where allowed, -inf elsewhere)."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill_(~allowed, float("-inf"))


def gather_eos(hidden: Tensor, eos_positions: Tensor) -> Tensor:
    """Rows of ``hidden`` (N, L, D) at the EOS position of each sequence -> (N, D)."""
    index = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[index, eos_positions.to(hidden.device)]
