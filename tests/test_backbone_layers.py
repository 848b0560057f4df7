"""The layer-wise encoders (deep prompts, per-block states) agree with each library's forward."""

from __future__ import annotations

import pytest
import torch

from bimors.backbones.base import ImageFeatures
from bimors.backbones.hf_clip import HFCLIP

TOL = dict(atol=1e-5, rtol=1e-5)


def _library_vision(bb, pixels):
    """(raw projected feature, last block tokens, per-block outputs) from the library itself.

    Uses only what every supported release has: transformers' ``output_hidden_states``
    and open_clip's public ``visual`` forward with hooks on its blocks.
    """
    if isinstance(bb, HFCLIP):
        out = bb.model.vision_model(pixel_values=pixels, output_hidden_states=True)
        raw = bb.model.visual_projection(out.pooler_output)
        return raw, out.last_hidden_state, list(out.hidden_states[1:])
    visual, blocks = bb.model.visual, []
    handles = [
        r.register_forward_hook(lambda _m, _i, out: blocks.append(out))
        for r in visual.transformer.resblocks
    ]
    try:
        raw = visual(pixels)
    finally:
        for h in handles:
            h.remove()
    if blocks[0].shape[0] != pixels.shape[0]:  # sequence-first transformers (older open_clip)
        blocks = [b.transpose(0, 1) for b in blocks]
    return raw, blocks[-1], blocks


def _first_block_output(bb, text: bool, inputs, prompts=None):
    """What block 0 gives in the project's layer-wise path (the slots deep prompts replace)."""
    from bimors.backbones.blocks import causal_allowed, run_block

    if text:
        tower = bb.text_tower
        x = tower.embed(inputs)
        return run_block(tower.blocks[0], x, causal_allowed(x.shape[1], x.device), x.dtype)
    tower = bb.vision_tower
    x = tower.embed(inputs)
    x = torch.cat([x, prompts.unsqueeze(0).expand(x.shape[0], -1, -1)], dim=1)
    x = tower.ln_pre(x)
    return run_block(tower.blocks[0], x, None, x.dtype)


def test_layerwise_image_path_equals_library_forward(backbone):
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        feats = backbone.encode_image_deep(pixels)
        raw, last, blocks = _library_vision(backbone, pixels)
    torch.testing.assert_close(feats.pooled, raw / raw.norm(dim=-1, keepdim=True), **TOL)
    torch.testing.assert_close(feats.norm, raw.norm(dim=-1, keepdim=True), **TOL)
    torch.testing.assert_close(feats.projected, raw, **TOL)
    torch.testing.assert_close(feats.tokens, last, **TOL)
    assert feats.layer_means.shape == (2, backbone.vision_depth, backbone.vision_width)
    want = torch.stack([b.mean(dim=1) for b in blocks], dim=1)
    torch.testing.assert_close(feats.layer_means, want, **TOL)
    # encode_image (what every method calls) is this path
    torch.testing.assert_close(backbone.encode_image(pixels).layer_means, want, **TOL)


def test_layerwise_text_path_equals_encode_prompts(backbone):
    ids = backbone.tokenize(["a photo of a river.", "dense residential area"])
    eos = backbone.eos_positions(ids)
    with torch.no_grad():
        embeds = backbone.embed_tokens(ids)[:, :12]  # truncated after the last EOS
        torch.testing.assert_close(
            backbone.encode_prompts_deep(embeds, eos), backbone.encode_prompts(embeds, eos), **TOL
        )


def test_deep_text_prompts_replace_exactly_their_slots(backbone):
    """Overwriting block 1's input at the slots with the values it already has is a no-op."""
    ids = backbone.tokenize(["X X X river."])
    eos = backbone.eos_positions(ids)
    with torch.no_grad():
        embeds = backbone.embed_tokens(ids)[:, :8]
        plain = backbone.encode_prompts(embeds, eos)
        h0 = _first_block_output(backbone, True, embeds)
        same = backbone.encode_prompts_deep(embeds, eos, [h0[0, 1:4]])
        other = backbone.encode_prompts_deep(embeds, eos, [torch.randn_like(h0[0, 1:4])])
        shifted = backbone.encode_prompts_deep(embeds, eos, [h0[0, 1:4]], start=2)
    torch.testing.assert_close(same, plain, **TOL)
    assert not torch.allclose(other, plain, atol=1e-3)
    assert not torch.allclose(shifted, plain, atol=1e-3)


def test_visual_prompts_enter_before_ln_pre_and_deep_ones_replace_them(backbone):
    pixels = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    prompts = torch.randn(2, backbone.vision_width, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = backbone.encode_image_deep(pixels)
        prompted = backbone.encode_image_deep(pixels, prompts)
        h0 = _first_block_output(backbone, False, pixels, prompts)
        same = backbone.encode_image_deep(pixels, prompts, [h0[0, -2:]])
        other = backbone.encode_image_deep(pixels, prompts, [torch.randn_like(h0[0, -2:])])
    assert prompted.tokens.shape == plain.tokens.shape  # prompt tokens are not returned
    assert not torch.allclose(prompted.pooled, plain.pooled, atol=1e-3)
    torch.testing.assert_close(same.pooled, prompted.pooled, **TOL)
    torch.testing.assert_close(same.layer_means, prompted.layer_means, **TOL)
    assert not torch.allclose(other.pooled, prompted.pooled, atol=1e-3)


def test_prompted_image_path_carries_gradients_to_prompts(hf_backbone):
    prompts = torch.randn(2, hf_backbone.vision_width, requires_grad=True)
    deep = torch.randn(2, hf_backbone.vision_width, requires_grad=True)
    feats = hf_backbone.encode_image_deep(torch.randn(2, 3, 32, 32), prompts, [deep])
    feats.pooled.sum().backward()
    assert prompts.grad.abs().sum() > 0 and deep.grad.abs().sum() > 0
    assert all(p.grad is None for p in hf_backbone.parameters())


def test_bad_deep_prompts_are_refused(hf_backbone):
    d = hf_backbone.vision_width
    pixels = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match="need more than the 2 vision blocks"):
        hf_backbone.encode_image_deep(pixels, torch.zeros(2, d), [torch.zeros(2, d)] * 2)
    with pytest.raises(ValueError, match="need first-layer prompts"):
        hf_backbone.encode_image_deep(pixels, None, [torch.zeros(2, d)])
    with pytest.raises(ValueError, match="as many tokens"):
        hf_backbone.encode_image_deep(pixels, torch.zeros(2, d), [torch.zeros(3, d)])
    ids = hf_backbone.tokenize(["X X river."])
    emb = hf_backbone.embed_tokens(ids)
    with pytest.raises(ValueError, match="need more than the 2 text blocks"):
        hf_backbone.encode_prompts_deep(emb, hf_backbone.eos_positions(ids), [emb[0, 1:3]] * 2)


def test_depths_come_from_the_model(hf_backbone, oc_backbone):
    for bb in (hf_backbone, oc_backbone):
        assert (bb.text_depth, bb.vision_depth) == (2, 2)


def test_resnet_tower_has_no_layerwise_path_but_keeps_its_norm():
    from open_clip import get_tokenizer

    from bimors.backbones.openclip import OpenCLIP
    from bimors.demo.tiny import build_open_clip_resnet

    model = build_open_clip_resnet()
    bb = OpenCLIP(model, get_tokenizer("RN50"), "tiny-rn")
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = bb.encode_image(pixels)
        raw = model.encode_image(pixels)
    assert bb.vision_depth == 0 and feats.layer_means is None
    torch.testing.assert_close(feats.projected, raw, **TOL)
    with pytest.raises(ValueError, match="needs a ViT image tower"):
        bb.encode_image_deep(pixels)


def test_image_features_move_and_concatenate_with_optional_fields():
    a = ImageFeatures(torch.ones(2, 3), torch.ones(2, 4, 5), torch.ones(2, 1), torch.ones(2, 6, 5))
    b = ImageFeatures(torch.zeros(1, 3), torch.zeros(1, 4, 5))
    moved = a.to("cpu", torch.float64)
    assert moved.norm.dtype == torch.float64 and moved.layer_means.dtype == torch.float64
    both = ImageFeatures.cat([a, b])
    assert len(both) == 3 and both.norm is None and both.layer_means is None
    assert ImageFeatures.cat([a, a]).layer_means.shape == (4, 6, 5)
    with pytest.raises(ValueError, match="no norm"):
        _ = b.projected
