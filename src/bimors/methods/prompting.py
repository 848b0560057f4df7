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
* Where the backbone supports it, the tokens every class prompt shares (SOS
  and the context) are encoded once per image, not once per (image, class),
  and nothing after an EOS is computed (:mod:`bimors.methods.packing`).

Optionally each chunk is gradient-checkpointed: its activations are dropped
after the forward pass and recomputed in the backward pass, so training
memory is bounded by one chunk's activations (``torch.utils.checkpoint``,
hence the same for every backbone adapter).

:meth:`ClassPrompts.encode_reference` is the reference recipe (a Python loop
over images, 77 tokens each); tests and the benchmark compare against it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from bimors.backbones.base import FrozenCLIP
from bimors.methods.packing import DEFAULT_PACK_TOKENS, PackedLayout, common_prefix_length

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
        max_pack_tokens: packed-length budget of one class group (see
            :mod:`bimors.methods.packing`).
    """

    def __init__(
        self,
        backbone: FrozenCLIP,
        texts: list[str],
        n_ctx: int,
        truncate: bool = True,
        max_pack_tokens: int = DEFAULT_PACK_TOKENS,
    ):
        super().__init__()
        ids = backbone.tokenize(texts)
        eos = backbone.eos_positions(ids)
        if n_ctx and bool((eos <= n_ctx).any()):
            raise ValueError("a prompt is shorter than its context slots")
        with torch.no_grad():
            embeds = backbone.embed_tokens(ids).detach()
        self.n_ctx = n_ctx
        self.full_length = ids.shape[1]
        exact_cut = truncate and backbone.causal_text
        self.length = int(eos.max()) + 1 if exact_cut else ids.shape[1]
        self.register_buffer("token_ids", ids, persistent=False)
        self.register_buffer("eos", eos, persistent=False)
        self.register_buffer("embeds", embeds, persistent=False)
        self.packed: PackedLayout | None = None
        prefix = common_prefix_length(ids, eos)
        if exact_cut and backbone.supports_packing and prefix >= 1 + n_ctx:
            self.packed = PackedLayout(embeds, eos, prefix, max_pack_tokens)
            self.register_buffer("prefix_embeds", embeds[0, :prefix].clone(), persistent=False)

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
        pack: bool = True,
        checkpoint: bool = False,
        deeper: Sequence[Tensor] = (),
        normalize: bool = True,
    ) -> Tensor:
        """L2-normalised text features: (C, E), or (B, C, E) for per-image context.

        Args:
            backbone: the frozen CLIP that built these prompts.
            ctx: None, (n_ctx, D) shared or (B, n_ctx, D) per-image context.
            chunk_size: prompts per text-encoder call (None: all at once).
            pack: share the common prefix when the backbone supports it; else
                encode padded prompts cut at the longest EOS.
            checkpoint: recompute each chunk's activations in the backward pass.
            deeper: deep context (n_ctx, D) per block after the first, replacing
                the context slots inside the encoder (MaPLe); such prompts take the
                padded path, since the packed prefix is encoded without them.
            normalize: False gives the raw projected embeddings (CLAP's prototypes
                start from them and its penalty measures distances between them).
        """
        if pack and self.packed is not None and not deeper:
            feats = self._encode_packed(backbone, ctx, chunk_size, checkpoint)
        else:
            feats = self._encode_padded(backbone, ctx, chunk_size, checkpoint, deeper)
        return F.normalize(feats, dim=-1) if normalize else feats

    def _encode_padded(
        self,
        backbone: FrozenCLIP,
        ctx: Tensor | None,
        chunk_size: int | None,
        ckpt: bool,
        deeper: Sequence[Tensor] = (),
    ) -> Tensor:
        prompts = self.assemble(ctx)
        lead = prompts.shape[:-2]
        flat = prompts.reshape(-1, *prompts.shape[-2:])
        eos = self.eos.repeat(flat.shape[0] // self.num_classes)
        step = chunk_size if chunk_size else flat.shape[0]
        feats = torch.cat(
            [
                _maybe_checkpoint(
                    _encoder(backbone, deeper), ckpt, flat[i : i + step], eos[i : i + step]
                )
                for i in range(0, flat.shape[0], step)
            ]
        )
        return feats.reshape(*lead, -1)

    def _encode_packed(
        self, backbone: FrozenCLIP, ctx: Tensor | None, chunk_size: int | None, ckpt: bool
    ) -> Tensor:
        layout = self.packed
        per_image = ctx is not None and ctx.dim() == 3
        dtype = ctx.dtype if ctx is not None else self.prefix_embeds.dtype
        prefix = self.prefix_embeds.to(dtype).unsqueeze(0)  # (1, P, D)
        if ctx is not None and self.n_ctx:
            ctx = ctx if per_image else ctx.unsqueeze(0)
            n = ctx.shape[0]
            prefix = torch.cat(
                [
                    prefix[:, :1].expand(n, -1, -1),
                    ctx,
                    prefix[:, 1 + self.n_ctx :].expand(n, -1, -1),
                ],
                dim=1,
            )
        n_seq = prefix.shape[0]
        groups = []
        for g, group in enumerate(layout.groups):
            positions, allowed, gather, suffix = layout.group(g)
            seq = torch.cat([prefix, suffix.to(dtype).unsqueeze(0).expand(n_seq, -1, -1)], dim=1)
            step = max(1, chunk_size // (group.stop - group.start)) if chunk_size else n_seq
            groups.append(
                torch.cat(
                    [
                        _maybe_checkpoint(
                            backbone.encode_prompts_packed,
                            ckpt,
                            seq[i : i + step],
                            positions,
                            allowed,
                            gather,
                        )
                        for i in range(0, n_seq, step)
                    ]
                )
            )
        feats = torch.cat(groups, dim=1)  # (n_seq, C, E)
        return feats if per_image else feats[0]

    def encode_reference(
        self, backbone: FrozenCLIP, ctx: Tensor | None, deeper: Sequence[Tensor] = ()
    ) -> Tensor:
        """The reference recipe: one text-encoder call per image over all 77 positions."""
        if ctx is None or ctx.dim() == 2:
            prompts = self.assemble(ctx, self.full_length)
            return F.normalize(_encoder(backbone, deeper)(prompts, self.eos), dim=-1)
        out = []
        for ctx_i in ctx:
            prompts = self.assemble(ctx_i, self.full_length)
            out.append(F.normalize(_encoder(backbone, deeper)(prompts, self.eos), dim=-1))
        return torch.stack(out)


def _maybe_checkpoint(fn: Callable[..., Tensor], enabled: bool, x: Tensor, *args: Tensor) -> Tensor:
    """``fn(x, *args)``, checkpointed when asked and a gradient will flow through ``x``."""
    if enabled and torch.is_grad_enabled() and x.requires_grad:
        return _checkpoint(fn, x, *args, use_reentrant=False)
    return fn(x, *args)


def _encoder(backbone: FrozenCLIP, deeper: Sequence[Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """The backbone's plain prompt encoder, or its layer-wise one when there are deep prompts."""
    if deeper:
        return lambda embeds, eos: backbone.encode_prompts_deep(embeds, eos, deeper)
    return backbone.encode_prompts


def prompt_logits(logit_scale: Tensor, image: Tensor, text: Tensor) -> Tensor:
    """``logit_scale * cos(image_i, text_c)`` for shared (C, E) or per-image (B, C, E) text."""
    if text.dim() == 2:
        return logit_scale * image @ text.t()
    return logit_scale * torch.einsum("be,bce->bc", image, text.to(image.dtype))
