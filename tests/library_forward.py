"""The libraries' own CLIP forwards, with the official prompt edits made by hooks.

Reference paths for the deep-prompt methods (IVLP, PromptSRC, TCP): they run
``transformers``' or ``open_clip``'s forward unchanged and make the official
edits through forward hooks, so they share nothing with bimors' layer-wise
towers (``encode_image_deep``, ``encode_prompts_deep``) and fail when those
drift from the official maths.

* Text (``ResidualAttentionBlock_IVLP``/``_MaPLe``, text side): the token
  embedding's output is replaced by the prompt embeddings, and at the input of
  block ``i`` rows ``1 .. 1 + n`` become ``tokens[i]``.
* Image (PromptSRC's ``VisionTransformer`` with ``VPT_shallow`` and
  ``ResidualAttentionBlock_IVLP``, vision side): ``prompts`` are appended after
  the position-embedded tokens, before ``ln_pre``; at the input of block ``i``
  the last ``n`` rows become ``deeper[i - 1]``. Only the class token is pooled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn


def _features(out) -> Tensor:
    """``get_*_features`` returns a tensor, or an output object in transformers 5."""
    return getattr(out, "pooler_output", out)


def _batch_first(backbone, tower: nn.Module) -> bool:
    """transformers' blocks see (B, L, D); open_clip's see (L, B, D) before 2.24 and
    (B, L, D) from then on, when its ``Transformer`` got ``batch_first``."""
    return backbone.adapter == "hf" or bool(getattr(tower, "batch_first", False))


def _hidden_hook(edit: Callable[[Tensor, bool], Tensor], batch_first: bool):
    """A pre-hook that edits a block's hidden states (positional or keyword)."""

    def hook(module: nn.Module, args: tuple, kwargs: dict):
        if args:
            x, args = args[0], args[1:]
        else:
            x = kwargs.pop("hidden_states")
        return (edit(x, batch_first), *args), kwargs

    return hook


def _run(hooks: list, forward: Callable[[], Tensor]) -> Tensor:
    try:
        return forward()
    finally:
        for h in hooks:
            h.remove()


def library_text(backbone, ids: Tensor, embeds: Tensor, tokens: Mapping[int, Tensor]) -> Tensor:
    """Text features of ``embeds`` (the ids' prompt embeddings), block ``i`` fed ``tokens[i]``.

    ``tokens[i]`` is (n, D) for every class or (C, n, D) per class; it replaces
    rows ``1 .. 1 + n`` at the input of block ``i`` (``i >= 1``). The EOS row is
    found from ``ids``, as the library does.
    """
    model = backbone.model
    if backbone.adapter == "hf":
        text = model.text_model
        emb, blocks, tower = text.embeddings.token_embedding, text.encoder.layers, None
    else:
        emb, tower = model.token_embedding, model.transformer
        blocks = tower.resblocks
    batch, batch_first = ids.shape[0], _batch_first(backbone, tower)

    def swap_embeddings(module, args, out):
        return embeds.to(out.dtype)

    def edit_for(t: Tensor):
        t = t if t.dim() == 3 else t.unsqueeze(0).expand(batch, -1, -1)
        n = t.shape[1]

        def edit(x: Tensor, batch_first: bool) -> Tensor:
            if batch_first:
                return torch.cat([x[:, :1], t.to(x.dtype), x[:, 1 + n :]], 1)
            return torch.cat([x[:1], t.transpose(0, 1).to(x.dtype), x[1 + n :]], 0)

        return edit

    hooks = [emb.register_forward_hook(swap_embeddings)]
    for i, t in tokens.items():
        hook = _hidden_hook(edit_for(t), batch_first)
        hooks.append(blocks[i].register_forward_pre_hook(hook, with_kwargs=True))
    if backbone.adapter == "hf":
        return _run(hooks, lambda: _features(model.get_text_features(input_ids=ids)))
    return _run(hooks, lambda: model.encode_text(ids))


def library_image(backbone, pixels: Tensor, prompts: Tensor, deeper: Sequence[Tensor]) -> Tensor:
    """Image features, ``prompts`` appended before ``ln_pre`` and block ``i`` fed ``deeper[i-1]``.

    ``prompts`` is (n, W); each ``deeper`` entry replaces the last ``n`` rows.
    """
    model, batch, n = backbone.model, pixels.shape[0], prompts.shape[0]
    if backbone.adapter == "hf":
        vision = model.vision_model
        entry, blocks, tower = vision.embeddings, vision.encoder.layers, None
    else:
        # open_clip applies patch dropout (an Identity when off) right after the position
        # embedding and before ln_pre: its output is where the official appends VPT.
        entry, tower = model.visual.patch_dropout, model.visual.transformer
        blocks = tower.resblocks
    batch_first = _batch_first(backbone, tower)

    def append(module, args, out):
        return torch.cat([out, prompts.to(out.dtype).unsqueeze(0).expand(batch, -1, -1)], 1)

    def edit_for(t: Tensor):
        def edit(x: Tensor, batch_first: bool) -> Tensor:
            if batch_first:
                return torch.cat([x[:, :-n], t.to(x.dtype).unsqueeze(0).expand(batch, -1, -1)], 1)
            return torch.cat([x[:-n], t.to(x.dtype).unsqueeze(1).expand(-1, batch, -1)], 0)

        return edit

    hooks = [entry.register_forward_hook(append)]
    for i, t in enumerate(deeper, start=1):
        hook = _hidden_hook(edit_for(t), batch_first)
        hooks.append(blocks[i].register_forward_pre_hook(hook, with_kwargs=True))
    if backbone.adapter == "hf":
        return _run(hooks, lambda: _features(model.get_image_features(pixel_values=pixels)))
    return _run(hooks, lambda: model.encode_image(pixels))
