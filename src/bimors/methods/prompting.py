"""Prompt assembly and encoding shared by every prompt-learning method.

A class prompt is ``[SOS] <n_ctx slots> <class name tokens> . [EOS] <pad>``.
The slot embeddings come from the method (one shared context, or one per
image); everything else is frozen token embeddings computed once per class
set. Two exact savings make per-image prompting affordable:

* CLIP's text transformer is causal, so the EOS output depends only on the
  tokens up to EOS: prompts are cut after the longest EOS position of the
  class set instead of running all 77 positions.
* All B x C prompts of a batch go through the text encoder as one batch,
  split into chunks of at most ``chunk_size`` prompts to bound memory.

:meth:`ClassPrompts.encode_reference` is the reference recipe (a Python loop
over images, 77 tokens each); tests and the benchmark compare against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP

DEFAULT_CHUNK = 2048


def init_context(backbone: FrozenCLIP, ctx_init: str | None, n_ctx: int) -> Tensor:
    """Initial context vectors: the embeddings of ``ctx_init``, or N(0, 0.02) if it is empty.

    With ``ctx_init`` the number of context tokens is the number of tokens of
    the phrase ("a photo of a" -> 4), as in CoOp/CoCoOp.
    """
    if ctx_init:
        phrase = ctx_init.replace("_", " ")
        n = backbone.count_tokens(phrase)
        with torch.no_grad():
            emb = backbone.embed_tokens(backbone.tokenize([phrase]))
        return emb[0, 1 : 1 + n].detach().clone().float().cpu()
    if n_ctx < 1:
        raise ValueError("n_ctx must be >= 1 when ctx_init is empty")
    vec = torch.empty(n_ctx, backbone.text_width)
    nn.init.normal_(vec, std=0.02)
    return vec


class ClassPrompts(nn.Module):
    """Frozen embeddings of one prompt per class, with ``n_ctx`` learnable slots after SOS.

    Args:
        backbone: the frozen CLIP (its tokenizer and token embedding are used).
        texts: one full prompt text per class; for learnable context the first
            ``n_ctx`` words are placeholders ("X X X X river.").
        n_ctx: number of slot tokens after SOS (0 for a fixed template).
        truncate: cut prompts after the longest EOS (exact only for causal text
            encoders; ignored otherwise).
    """

    def __init__(self, backbone: FrozenCLIP, texts: list[str], n_ctx: int, truncate: bool = True):
        super().__init__()
        ids = backbone.tokenize(texts)
        eos = backbone.eos_positions(ids)
        if n_ctx and bool((eos <= n_ctx).any()):
            raise ValueError("a prompt is shorter than its context slots")
        with torch.no_grad():
            embeds = backbone.embed_tokens(ids).detach()
        self.n_ctx = n_ctx
        self.full_length = ids.shape[1]
        self.length = int(eos.max()) + 1 if (truncate and backbone.causal_text) else ids.shape[1]
        self.register_buffer("token_ids", ids, persistent=False)
        self.register_buffer("eos", eos, persistent=False)
        self.register_buffer("embeds", embeds, persistent=False)

    @property
    def num_classes(self) -> int:
        return self.token_ids.shape[0]

    def assemble(self, ctx: Tensor | None, length: int | None = None) -> Tensor:
        """Prompt embeddings: (C, L, D) for shared or no context, (B, C, L, D) for per-image.

        Args:
            ctx: None, (n_ctx, D) shared or (B, n_ctx, D) per-image context.
            length: number of positions to keep (default: the truncated length).
        """
        length = self.length if length is None else length
        frozen = self.embeds[:, :length].to(ctx.dtype if ctx is not None else self.embeds.dtype)
        if ctx is None or self.n_ctx == 0:
            return frozen
        prefix, suffix = frozen[:, :1], frozen[:, 1 + self.n_ctx :]
        n_cls = self.num_classes
        if ctx.dim() == 2:
            return torch.cat([prefix, ctx.unsqueeze(0).expand(n_cls, -1, -1), suffix], dim=1)
        batch = ctx.shape[0]
        return torch.cat(
            [
                prefix.unsqueeze(0).expand(batch, -1, -1, -1),
                ctx.unsqueeze(1).expand(-1, n_cls, -1, -1),
                suffix.unsqueeze(0).expand(batch, -1, -1, -1),
            ],
            dim=2,
        )

    def encode(
        self,
        backbone: FrozenCLIP,
        ctx: Tensor | None,
        chunk_size: int | None = DEFAULT_CHUNK,
        deeper: Sequence[Tensor] = (),
    ) -> Tensor:
        """L2-normalised text features: (C, E), or (B, C, E) for per-image context.

        All prompts are encoded as one batch in chunks of ``chunk_size`` rows.
        ``deeper`` holds deep context (n_ctx, D) per block after the first, which
        replaces the context slots inside the encoder (MaPLe).
        """
        prompts = self.assemble(ctx)
        lead = prompts.shape[:-2]
        flat = prompts.reshape(-1, *prompts.shape[-2:])
        eos = self.eos.repeat(flat.shape[0] // self.num_classes)
        step = chunk_size if chunk_size else flat.shape[0]
        feats = torch.cat(
            [
                _encode(backbone, flat[i : i + step], eos[i : i + step], deeper)
                for i in range(0, flat.shape[0], step)
            ]
        )
        return F.normalize(feats, dim=-1).reshape(*lead, -1)

    def encode_reference(
        self, backbone: FrozenCLIP, ctx: Tensor | None, deeper: Sequence[Tensor] = ()
    ) -> Tensor:
        """The reference recipe: one text-encoder call per image over all 77 positions."""
        if ctx is None or ctx.dim() == 2:
            prompts = self.assemble(ctx, self.full_length)
            return F.normalize(_encode(backbone, prompts, self.eos, deeper), dim=-1)
        out = []
        for ctx_i in ctx:
            prompts = self.assemble(ctx_i, self.full_length)
            out.append(F.normalize(_encode(backbone, prompts, self.eos, deeper), dim=-1))
        return torch.stack(out)


def _encode(backbone: FrozenCLIP, embeds: Tensor, eos: Tensor, deeper: Sequence[Tensor]) -> Tensor:
    """The backbone's plain prompt encoder, or its layer-wise one when there are deep prompts."""
    if deeper:
        return backbone.encode_prompts_deep(embeds, eos, deeper)
    return backbone.encode_prompts(embeds, eos)


def prompt_logits(logit_scale: Tensor, image: Tensor, text: Tensor) -> Tensor:
    """``logit_scale * cos(image_i, text_c)`` for shared (C, E) or per-image (B, C, E) text."""
    if text.dim() == 2:
        return logit_scale * image @ text.t()
    return logit_scale * torch.einsum("be,bce->bc", image, text.to(image.dtype))
