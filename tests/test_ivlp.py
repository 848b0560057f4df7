"""IVLP: independent deep prompts in both towers, against a restatement of the official maths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bimors.core.errors import ConfigError
from bimors.methods import build_method

from .conftest import CLASSNAMES
from .library_forward import library_image, library_text

# The tiny CLIPs have 2 blocks per encoder.
PARAMS = {"prompt_depth_text": 2, "prompt_depth_vision": 2}


def _pixels(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_ivlp_trains_only_its_prompts(backbone):
    m = build_method("ivlp", backbone, CLASSNAMES, PARAMS)
    names = {n for n, p in m.named_parameters() if p.requires_grad}
    assert names == {"ctx", "deep_text.0", "vpt", "deep_vision.0"}
    assert not m.frozen_image_features


def test_ivlp_logits_loss_and_gradients_match_the_restated_official_forward(backbone):
    torch.manual_seed(0)
    m = build_method("ivlp", backbone, CLASSNAMES, PARAMS)
    with torch.no_grad():  # move every prompt off its init so each one matters
        for p in (m.ctx, m.vpt, m.deep_text[0], m.deep_vision[0]):
            p.add_(torch.randn_like(p) * 0.1)
    pixels, labels = _pixels(), torch.tensor([0, 1, 2, 0]) % len(CLASSNAMES)
    logits = m(m.image_features(pixels))
    loss = F.cross_entropy(logits, labels)
    grads = torch.autograd.grad(loss, [m.ctx, m.vpt, m.deep_text[0], m.deep_vision[0]])

    # Restated on the libraries' own forwards (hooks, nothing of bimors' towers): VPT after
    # the position-embedded tokens before ln_pre, block-own deep prompts in both towers, the
    # context in the text slots after SOS over all 77 positions, CLIP's scaled cosine
    # logits, cross-entropy.
    img = library_image(backbone, pixels, m.vpt, [m.deep_vision[0]])
    ids = backbone.tokenize([f"a photo of a {n}." for n in CLASSNAMES]).to(backbone.device)
    emb = backbone.embed_tokens(ids)
    ctx = m.ctx.unsqueeze(0).expand(len(emb), -1, -1)
    prompts = torch.cat([emb[:, :1], ctx, emb[:, 1 + m.n_ctx :]], 1)
    text = library_text(backbone, ids, prompts, {1: m.deep_text[0]})
    img, text = F.normalize(img, dim=-1), F.normalize(text, dim=-1)
    ref = backbone.logit_scale * img @ text.t()  # the scale is stored exponentiated
    ref_loss = F.cross_entropy(ref, labels)
    ref_grads = torch.autograd.grad(ref_loss, [m.ctx, m.vpt, m.deep_text[0], m.deep_vision[0]])
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        assert g.abs().sum() > 0
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_ivlp_towers_are_independent(hf_backbone):
    # Random shifts, not constants: a token shifted by the same amount in every dimension is
    # invisible to the class token behind pre-LayerNorm blocks, so it would prove nothing.
    gen = torch.Generator().manual_seed(1)
    m = build_method("ivlp", hf_backbone, CLASSNAMES, PARAMS)
    before = m.image_features(_pixels()).pooled.detach()
    with torch.no_grad():
        for p in (m.deep_text[0], m.ctx):
            p.add_(torch.randn(p.shape, generator=gen))
    torch.testing.assert_close(m.image_features(_pixels()).pooled, before)
    with torch.no_grad():
        m.deep_vision[0].add_(torch.randn(m.deep_vision[0].shape, generator=gen))
    assert (m.image_features(_pixels()).pooled - before).abs().max() > 1e-3


def test_ivlp_depth_beyond_the_backbone_names_the_field(hf_backbone):
    with pytest.raises(ConfigError, match="prompt_depth_vision"):
        build_method(
            "ivlp", hf_backbone, CLASSNAMES, {"prompt_depth_text": 2, "prompt_depth_vision": 9}
        )
