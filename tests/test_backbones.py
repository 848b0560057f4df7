"""Both CLIP adapters load by path, read their widths, and agree with their library's own paths."""

from __future__ import annotations

import pytest
import torch

from bimors.backbones import BACKBONES, load_backbone
from bimors.backbones.hf_clip import HFCLIP
from bimors.backbones.loading import ModelLoadError
from bimors.backbones.openclip import OpenCLIP
from bimors.core.errors import UnknownNameError
from bimors.demo.tiny import CLIP_SHAPES, build_hf_clip, build_open_clip


def _library_text(bb, ids):
    if isinstance(bb, HFCLIP):
        out = bb.model.get_text_features(input_ids=ids)
        return getattr(out, "pooler_output", out)
    return bb.model.encode_text(ids)


def _library_image(bb, pixels):
    if isinstance(bb, HFCLIP):
        out = bb.model.get_image_features(pixel_values=pixels)
        out = getattr(out, "pooler_output", out)
    else:
        out = bb.model.encode_image(pixels)
    return out / out.norm(dim=-1, keepdim=True)


def test_adapters_match_library_paths(backbone):
    ids = backbone.tokenize(["a photo of a river.", "dense residential area", "x"])
    assert ids.shape == (3, backbone.context_length)
    assert torch.equal(backbone.eos_positions(ids), (ids == backbone.eot_id).int().argmax(-1))
    torch.testing.assert_close(backbone.encode_text(ids), _library_text(backbone, ids))
    pixels = torch.randn(2, 3, backbone.preprocess.image_size, backbone.preprocess.image_size)
    feats = backbone.encode_image(pixels)
    torch.testing.assert_close(feats.pooled, _library_image(backbone, pixels))
    n_tokens = (backbone.preprocess.image_size // 8) ** 2 + 1
    assert feats.tokens.shape == (2, n_tokens, backbone.vision_width)


def test_token_states_are_before_final_layernorm(hf_backbone, oc_backbone):
    pixels = torch.randn(1, 3, 32, 32)
    for bb, ln, proj in (
        (
            hf_backbone,
            hf_backbone.model.vision_model.post_layernorm,
            hf_backbone.model.visual_projection,
        ),
        (
            oc_backbone,
            oc_backbone.model.visual.ln_post,
            lambda x: x @ oc_backbone.model.visual.proj,
        ),
    ):
        feats = bb.encode_image(pixels)
        pooled = proj(ln(feats.tokens[:, 0]))
        torch.testing.assert_close(feats.pooled, pooled / pooled.norm(dim=-1, keepdim=True))


def test_backbone_is_frozen_and_stays_in_eval(backbone):
    assert not any(p.requires_grad for p in backbone.parameters())
    backbone.train()
    assert not backbone.training
    assert not any(m.training for m in backbone.modules())


def test_widths_come_from_tiny_config(hf_backbone, oc_backbone):
    for bb in (hf_backbone, oc_backbone):
        assert (bb.vision_width, bb.text_width, bb.embed_dim) == (64, 64, 32)
        assert bb.context_length == 77
        assert (bb.sot_id, bb.eot_id) == (49406, 49407)
        assert bb.causal_text


@pytest.mark.parametrize("shape_name", ["ViT-B/32", "ViT-B/16", "ViT-L/14"])
def test_real_clip_shapes_build_with_random_weights(shape_name):
    from open_clip import get_tokenizer
    from open_clip.tokenizer import SimpleTokenizer

    shape = CLIP_SHAPES[shape_name]
    oc = OpenCLIP(build_open_clip(shape), get_tokenizer("ViT-B-16"), shape_name)
    assert (oc.vision_width, oc.text_width, oc.embed_dim) == (
        shape.vision_width,
        shape.text_width,
        shape.embed_dim,
    )
    assert oc.preprocess.image_size == 224
    assert isinstance(oc.tokenizer, SimpleTokenizer)
    hf_model = build_hf_clip(shape)
    assert hf_model.config.vision_config.hidden_size == shape.vision_width
    assert hf_model.config.text_config.hidden_size == shape.text_width
    ids = oc.tokenize(["a photo of a river."])
    assert oc.encode_text(ids).shape == (1, shape.embed_dim)
    del hf_model


def test_open_clip_modified_resnet_tower():
    from open_clip import get_tokenizer
    from open_clip.model import CLIP

    torch.manual_seed(0)
    model = CLIP(
        32,
        {"layers": (1, 1, 1, 1), "width": 16, "image_size": 64},
        {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    ).eval()
    bb = OpenCLIP(model, get_tokenizer("RN50"), "tiny-rn")
    pixels = torch.randn(2, 3, 64, 64)
    feats = bb.encode_image(pixels)
    torch.testing.assert_close(feats.pooled, _library_image(bb, pixels))
    assert feats.tokens.shape == (2, 1 + 4, bb.vision_width)  # mean token + 2x2 grid


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(UnknownNameError, match="valid backbones: hf, open_clip"):
        load_backbone("nope", "x")
    assert BACKBONES.names() == ["hf", "open_clip"]


def test_open_clip_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match=r"has no open_clip_config\.json"):
        load_backbone("open_clip", str(tmp_path))
