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


# -- packed prompts (shared prefix once, nothing after EOS) ----------------------------------
def _ctx_variants(bb, n_ctx, batch=3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {
        "per_image": torch.randn(batch, n_ctx, bb.text_width, generator=gen),
        "shared": torch.randn(n_ctx, bb.text_width, generator=gen),
    }


@pytest.mark.parametrize("max_tokens", [12, 256])
def test_packed_prompts_equal_reference(backbone, max_tokens):
    prompts = ClassPrompts(
        backbone, [f"X X {n}." for n in CLASSNAMES], 2, max_pack_tokens=max_tokens
    )
    layout = prompts.packed
    assert layout is not None and layout.prefix == 3  # SOS + 2 context slots
    assert (len(layout.groups) > 1) == (max_tokens == 12)  # a small budget splits the classes
    # every class is encoded once per sequence and no token after an EOS is computed
    assert layout.tokens < prompts.num_classes * prompts.length
    for kind, ctx in _ctx_variants(backbone, 2).items():
        with torch.no_grad():
            fast = prompts.encode(backbone, ctx)
            ref = prompts.encode_reference(backbone, ctx)
        torch.testing.assert_close(fast, ref, **TOL, msg=kind)


def test_template_words_shared_by_all_classes_join_the_prefix(backbone):
    prompts = ClassPrompts(backbone, [f"a photo of a {n}." for n in CLASSNAMES], 0)
    assert prompts.packed.prefix == 5  # SOS a photo of a
    with torch.no_grad():
        torch.testing.assert_close(
            prompts.encode(backbone, None), prompts.encode_reference(backbone, None), **TOL
        )


def test_padded_path_still_equals_reference(backbone):
    prompts = ClassPrompts(backbone, [f"X X {n}." for n in CLASSNAMES], 2)
    ctx = _ctx_variants(backbone, 2)["per_image"]
    with torch.no_grad():
        padded = prompts.encode(backbone, ctx, pack=False)
        torch.testing.assert_close(padded, prompts.encode_reference(backbone, ctx), **TOL)


@pytest.mark.parametrize("chunk", [1, 5, 6, None])
def test_packed_chunking_does_not_change_features(backbone, chunk):
    prompts = ClassPrompts(backbone, [f"X X {n}." for n in CLASSNAMES], 2, max_pack_tokens=12)
    ctx = torch.randn(4, 2, backbone.text_width)
    with torch.no_grad():
        whole = prompts.encode(backbone, ctx, chunk_size=None)
        chunked = prompts.encode(backbone, ctx, chunk_size=chunk)
    torch.testing.assert_close(chunked, whole, **TOL)


@pytest.mark.parametrize("pack", [True, False])
def test_gradient_checkpointing_recomputes_and_keeps_gradients(backbone, monkeypatch, pack):
    prompts = ClassPrompts(backbone, [f"X X {n}." for n in CLASSNAMES], 2)
    name = "encode_prompts_packed" if pack else "encode_prompts"
    calls = []
    original = getattr(backbone, name)

    def counting(*args):
        calls.append(torch.is_grad_enabled())
        return original(*args)

    monkeypatch.setattr(backbone, name, counting)
    base = torch.randn(3, 2, backbone.text_width)
    grads = {}
    for ckpt in (False, True):
        calls.clear()
        ctx = base.clone().requires_grad_(True)
        feats = prompts.encode(backbone, ctx, chunk_size=4, pack=pack, checkpoint=ckpt)
        n_forward = len(calls)
        (feats * torch.linspace(-1, 1, feats.shape[-1])).sum().backward()
        # checkpointing runs every chunk a second time in the backward pass
        assert len(calls) == (2 * n_forward if ckpt else n_forward)
        grads[ckpt] = ctx.grad
    torch.testing.assert_close(grads[True], grads[False], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", ["cocoop", "bimors"])
def test_bf16_autocast_stays_close_to_float32(backbone, name):
    torch.manual_seed(0)
    method = build_method(name, backbone, CLASSNAMES, caption_dim=24)
    feats, caps = _inputs(backbone)
    with torch.no_grad():
        ref = method(feats, caps)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = method(feats, caps).float()
    assert not torch.equal(low, ref)  # bf16 really ran
    assert (low - ref).abs().max() < 0.05 * ref.abs().max() + 0.05


def test_blocks_of_another_structure_are_refused_at_load(hf_backbone):
    """No silent fallback: a tower that is not CLIP's plain block stack fails with the reason."""
    import copy

    from bimors.backbones.hf_clip import HFCLIP
    from bimors.backbones.loading import ModelLoadError

    model = copy.deepcopy(hf_backbone.model)
    del model.text_model.encoder.layers[1].mlp.fc2
    with pytest.raises(ModelLoadError, match=r"layer 1 \(CLIPEncoderLayer\) lacks fc2"):
        HFCLIP(model, hf_backbone.tokenizer, hf_backbone.preprocess, "edited")


def test_cached_low_precision_weights_follow_weight_changes(hf_backbone):
    import copy

    bb = copy.deepcopy(hf_backbone)
    prompts = ClassPrompts(bb, [f"X X {n}." for n in CLASSNAMES], 2)
    ctx = _ctx_variants(bb, 2)["per_image"]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        before = prompts.encode(bb, ctx).float()
        assert bb.text_tower.blocks[0].weights(torch.bfloat16)[0][0].dtype == torch.bfloat16
        bb.model.text_model.encoder.layers[0].mlp.fc1.weight.mul_(3.0)  # e.g. a reloaded model
        after = prompts.encode(bb, ctx).float()
        ref = prompts.encode_reference(bb, ctx).float()
    assert not torch.allclose(before, after, atol=1e-2)
    torch.testing.assert_close(after, ref, atol=3e-2, rtol=0)  # bf16 vs bf16 library path
