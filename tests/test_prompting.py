"""The fast prompt path (one chunked batch, truncated at EOS) equals the reference recipe."""

from __future__ import annotations

import pytest
import torch

from bimors.methods import build_method
from bimors.methods.prompting import ClassPrompts

from .conftest import CLASSNAMES

TOL = dict(atol=1e-5, rtol=0)


def _inputs(bb, batch=3, caption_dim=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    size = bb.preprocess.image_size
    with torch.no_grad():
        feats = bb.encode_image(torch.randn(batch, 3, size, size, generator=gen))
    return feats, torch.randn(batch, caption_dim, generator=gen)


@pytest.mark.parametrize("name", ["zeroshot", "coop", "cocoop", "bimors"])
def test_fast_logits_equal_reference_recipe(backbone, name):
    torch.manual_seed(0)
    method = build_method(name, backbone, CLASSNAMES, caption_dim=24)
    with torch.no_grad():  # move the learned state away from its init, so every path matters
        for _, p in method.own_parameters():
            p.add_(0.05 * torch.randn_like(p))
    feats, caps = _inputs(backbone)
    with torch.no_grad():
        fast = method(feats, caps)
        method.reference_recipe = True
        ref = method(feats, caps)
    assert fast.shape == (3, len(CLASSNAMES))
    assert method.prompts.length < 77  # the fast path really did truncate
    torch.testing.assert_close(fast, ref, **TOL)


def test_truncated_length_is_longest_eos_plus_one(backbone):
    texts = [f"X X X X {n}." for n in CLASSNAMES]
    prompts = ClassPrompts(backbone, texts, 4)
    eos = backbone.eos_positions(backbone.tokenize(texts))
    assert prompts.length == int(eos.max()) + 1
    assert torch.equal(prompts.eos, eos)


@pytest.mark.parametrize("chunk", [1, 2, 7, None])
def test_chunking_does_not_change_features(backbone, chunk):
    prompts = ClassPrompts(backbone, [f"X X {n}." for n in CLASSNAMES], 2)
    ctx = torch.randn(4, 2, backbone.text_width)
    with torch.no_grad():
        whole = prompts.encode(backbone, ctx, chunk_size=None)
        chunked = prompts.encode(backbone, ctx, chunk_size=chunk)
    torch.testing.assert_close(chunked, whole, **TOL)


def test_gradients_flow_through_chunks(backbone):
    prompts = ClassPrompts(backbone, [f"X X {n}." for n in CLASSNAMES], 2)
    ctx = torch.randn(3, 2, backbone.text_width, requires_grad=True)
    prompts.encode(backbone, ctx, chunk_size=4).sum().backward()
    g_chunked = ctx.grad.clone()
    ctx.grad = None
    prompts.encode_reference(backbone, ctx).sum().backward()
    torch.testing.assert_close(g_chunked, ctx.grad, atol=1e-5, rtol=1e-4)


def test_non_causal_text_encoder_is_not_truncated(oc_backbone, monkeypatch):
    monkeypatch.setattr(oc_backbone, "causal_text", False)
    prompts = ClassPrompts(oc_backbone, [f"X {n}." for n in CLASSNAMES], 1)
    assert prompts.length == 77
