"""CLIP's two towers as plain parts, and every encoding the project needs, written once.

An adapter's only job is to hand over a library's modules and weights (see
:mod:`bimors.backbones.hf_clip` and :mod:`bimors.backbones.openclip`): token
and position embeddings, the blocks (:mod:`bimors.backbones.blocks`), the
norms and the projections. Everything else (prompt embeddings in, truncated
and packed prompts, deep prompts between blocks, per-block image states) is
computed here, so the maths is the same for both libraries and every release
of them, and the tests compare it with each library's own forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bimors.backbones.blocks import (
    PlainBlock,
    causal_allowed,
    compute_dtype,
    run_block,
    run_blocks,
)


def project(x: Tensor, projection: nn.Module | Tensor | None) -> Tensor:
    """Apply a CLIP projection, whichever way the library stores it."""
    if projection is None:
        return x
    if isinstance(projection, nn.Module):
        return projection(x)
    return x @ projection.to(x.dtype)


def gather_eos(hidden: Tensor, eos_positions: Tensor) -> Tensor:
    """Rows of ``hidden`` (N, L, D) at the EOS position of each sequence -> (N, D)."""
    index = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[index, eos_positions.to(hidden.device)]


def overwrite(hidden: Tensor, values: Tensor, start: int) -> Tensor:
    """``hidden`` (N, L, D) with rows ``start .. start + n`` replaced by ``values``.

    ``values`` is (n, D), the same for every sequence, or (N, n, D), one set per
    sequence (TCP's class-aware tokens).
    """
    n = values.shape[-2]
    fill = values.to(hidden.dtype)
    if fill.dim() == 2:
        fill = fill.unsqueeze(0).expand(hidden.shape[0], -1, -1)
    return torch.cat([hidden[:, :start], fill, hidden[:, start + n :]], dim=1)


@dataclass
class TextTower:
    """CLIP's text transformer as parts.

    Attributes:
        token_embedding: the token embedding table.
        positional: position embeddings (context_length, D).
        blocks: the transformer blocks.
        ln_final: the final LayerNorm.
        projection: the text projection (a Linear, a (D, E) matrix, or None).
        causal: whether attention is causal (CLIP's is; it makes EOS truncation exact).
    """

    token_embedding: nn.Embedding
    positional: Tensor
    blocks: list[PlainBlock]
    ln_final: nn.Module
    projection: nn.Module | Tensor | None
    causal: bool = True

    def embed(self, embeds: Tensor, position_ids: Tensor | None = None) -> Tensor:
        """Prompt embeddings plus position embeddings (positions 0..L-1 unless given)."""
        pos = (
            self.positional[: embeds.shape[1]]
            if position_ids is None
            else self.positional[position_ids]
        )
        return embeds + pos.to(embeds.dtype)

    def head(self, hidden: Tensor) -> Tensor:
        """Final LayerNorm (per token, so only on the rows given) and projection."""
        return project(self.ln_final(hidden), self.projection)

    def encode(
        self,
        embeds: Tensor,
        eos_positions: Tensor,
        deeper: Sequence[Tensor] = (),
        start: int = 1,
        inject: tuple[int, Tensor] | None = None,
    ) -> Tensor:
        """Projected features (N, E) of prompt embeddings (N, L, D) at ``eos_positions``.

        ``deeper[i]`` (n, D) overwrites positions ``start .. start + n`` at the
        input of block ``i + 1`` (MaPLe's deep text prompts). ``inject = (k, v)``
        overwrites them with ``v`` ((n, D) or (N, n, D)) at the input of block
        ``k`` only (TCP's class-aware tokens); it cannot be combined with ``deeper``.
        """
        if len(deeper) >= len(self.blocks):
            raise ValueError(
                f"{len(deeper)} deep text prompts need more than the {len(self.blocks)} text blocks"
            )
        if inject is not None:
            if deeper:
                raise ValueError("inject and deeper both overwrite the context: pass one")
            layer, values = inject
            if not 0 <= layer < len(self.blocks):
                raise ValueError(
                    f"inject at block {layer}: the text tower has blocks 0..{len(self.blocks) - 1}"
                )
            x = self.embed(embeds)
            allowed = causal_allowed(x.shape[1], x.device) if self.causal else None
            dtype = compute_dtype(x)
            for i, block in enumerate(self.blocks):
                if i == layer:
                    x = overwrite(x, values, start)
                x = run_block(block, x, allowed, dtype)
            return self.head(gather_eos(x, eos_positions))
        x = self.embed(embeds)
        allowed = causal_allowed(x.shape[1], x.device) if self.causal else None
        dtype = compute_dtype(x)
        for i, block in enumerate(self.blocks):
            if 0 < i <= len(deeper):
                x = overwrite(x, deeper[i - 1], start)
            x = run_block(block, x, allowed, dtype)
        return self.head(gather_eos(x, eos_positions))

    def encode_packed(
        self, embeds: Tensor, position_ids: Tensor, allowed: Tensor, gather: Tensor
    ) -> Tensor:
        """Projected features (N, K, E) of packed prompts (see FrozenCLIP.encode_prompts_packed)."""
        x = run_blocks(self.blocks, self.embed(embeds, position_ids), allowed)
        return self.head(x[:, gather])


@dataclass
class VisionTower:
    """A CLIP ViT image tower as parts.

    Attributes:
        patch: the patch embedding convolution.
        class_embedding: the class token (W,).
        positional: position embeddings (1 + patches, W).
        ln_pre: the LayerNorm before the first block.
        blocks: the transformer blocks.
        ln_post: the final LayerNorm.
        projection: the image projection (a Linear, a (W, E) matrix, or None).
        pool: ``"tok"`` (class token) or ``"avg"`` (mean of the patch tokens).
        norm_after_pool: True when ``ln_post`` is applied to the pooled vector
            rather than to every token (the same for ``"tok"``).
    """

    patch: nn.Conv2d
    class_embedding: Tensor
    positional: Tensor
    ln_pre: nn.Module
    blocks: list[PlainBlock]
    ln_post: nn.Module
    projection: nn.Module | Tensor | None
    pool: str = "tok"
    norm_after_pool: bool = True

    def __post_init__(self) -> None:
        if self.pool not in ("tok", "avg"):
            raise ValueError(f"image pool type {self.pool!r} is not supported (tok, avg)")

    @property
    def depth(self) -> int:
        return len(self.blocks)

    def embed(self, pixels: Tensor) -> Tensor:
        """Patch, class and position embeddings (B, T, W), before ``ln_pre``."""
        x = self.patch(pixels.to(self.patch.weight.dtype))
        x = x.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        return torch.cat([cls, x], dim=1) + self.positional.to(x.dtype)

    def head(self, tokens: Tensor) -> Tensor:
        """Pooling, final LayerNorm and projection of the last block's tokens -> raw (B, E)."""
        if self.pool == "tok":
            pooled = self.ln_post(tokens[:, 0])
        elif self.norm_after_pool:
            pooled = self.ln_post(tokens[:, 1:].mean(dim=1))
        else:
            pooled = self.ln_post(tokens)[:, 1:].mean(dim=1)
        return project(pooled, self.projection)

    def encode(
        self, pixels: Tensor, prompts: Tensor | None = None, deeper: Sequence[Tensor] = ()
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(raw projected feature (B, E), last block's tokens, per-block token means).

        ``prompts`` (n, W) are appended after the patch tokens before ``ln_pre``,
        without position embeddings; ``deeper[i]`` replaces them at the input of
        block ``i + 1`` (MaPLe's visual prompts). Token states and means exclude
        the prompt tokens.
        """
        if deeper and prompts is None:
            raise ValueError("deep visual prompts need first-layer prompts too")
        if any(d.shape[0] != prompts.shape[0] for d in deeper):
            raise ValueError("every deep visual prompt must have as many tokens as the first")
        if len(deeper) >= len(self.blocks):
            raise ValueError(
                f"{len(deeper)} deep visual prompts need more than the "
                f"{len(self.blocks)} vision blocks"
            )
        x = self.embed(pixels)
        batch, n_tokens = x.shape[0], x.shape[1]
        if prompts is not None:
            x = torch.cat([x, prompts.to(x.dtype).unsqueeze(0).expand(batch, -1, -1)], dim=1)
        x = self.ln_pre(x)
        dtype = compute_dtype(x)
        means = []
        for i, block in enumerate(self.blocks):
            if 0 < i <= len(deeper):
                x = overwrite(x, deeper[i - 1], n_tokens)
            x = run_block(block, x, None, dtype)
            means.append(x[:, :n_tokens].mean(dim=1))
        tokens = x[:, :n_tokens]
        return self.head(tokens), tokens, torch.stack(means, dim=1)
