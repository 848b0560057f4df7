"""A checkpoint file on a plain OpenAI-shaped open_clip name is refused unless said to be GELU.

RemoteCLIP and GeoRSCLIP fine-tune OpenAI's QuickGELU weights; loaded into
plain ``ViT-B-32`` they ran GELU silently. And open_clip's "No pretrained
weights loaded ... initialized randomly" line was printed on every checkpoint
load although bimors loads the weights right after.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch

from bimors.backbones import load_backbone
from bimors.backbones import openclip as oc
from bimors.backbones.loading import ModelLoadError
from bimors.backbones.presets import PRESETS
from bimors.demo.tiny import CLIP_SHAPES, build_open_clip, open_clip_config
from bimors.run.config import resolve_config


@pytest.fixture(scope="module")
def arch(tmp_path_factory):
    """The tiny CLIP registered as a plain (GELU-config) open_clip architecture."""
    import open_clip

    folder = tmp_path_factory.mktemp("arch")
    cfg = open_clip_config(CLIP_SHAPES["tiny"])
    cfg.pop("quick_gelu")
    (folder / "bimors-qg-tiny.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    return "bimors-qg-tiny"


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "RemoteCLIP-tiny.pt"
    torch.save(build_open_clip(CLIP_SHAPES["tiny"], 0).state_dict(), path)
    return path


def test_plain_vit_b_32_with_a_checkpoint_file_is_refused_naming_quickgelu(weights):
    with pytest.raises(ModelLoadError, match=r"ViT-B-32-quickgelu.*backbone\.activation=gelu"):
        load_backbone("open_clip", "ViT-B-32", str(weights))


def test_openai_shaped_tiny_arch_is_refused_then_allowed_with_activation_gelu(
    arch, weights, monkeypatch
):
    monkeypatch.setattr(oc, "OPENAI_SHAPED", oc.OPENAI_SHAPED | {arch})
    with pytest.raises(ModelLoadError, match=f"{arch}-quickgelu"):
        load_backbone("open_clip", arch, str(weights))
    gelu = load_backbone("open_clip", arch, str(weights), "gelu")
    assert gelu.activation == "gelu"
    quick = load_backbone("open_clip", arch, str(weights), "quick_gelu")
    assert quick.activation == "quick_gelu"


def test_the_random_init_line_is_not_shown_when_bimors_loads_the_weights(arch, weights, caplog):
    with caplog.at_level(logging.WARNING):
        load_backbone("open_clip", f"{arch}-quickgelu", str(weights))
    assert not [r for r in caplog.records if "initialized randomly" in r.getMessage()]
    assert not any(isinstance(f, oc._HideRandomInit) for f in logging.getLogger().filters)


def test_activation_is_a_config_key_and_gelu_presets_set_it():
    cfg = resolve_config(
        "coop", overrides=["backbone.adapter=open_clip", "backbone.activation=gelu"]
    )
    assert cfg.backbone.activation == "gelu"
    with pytest.raises(Exception, match="backbone.activation"):
        resolve_config("coop", overrides=["backbone.activation=relu"])
    for p in PRESETS.values():
        plain_openai = p.adapter == "open_clip" and p.model in oc.OPENAI_SHAPED
        assert (p.fields["activation"] == "gelu") == plain_openai
