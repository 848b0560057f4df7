"""Presets offline: a local copy of a preset's weights is accepted, and every offline error is
one complete line whose advice is a command that works."""

from __future__ import annotations

import logging
import re

import pytest

from bimors.backbones.loading import ModelLoadError, _short, fetch_weights
from bimors.backbones.openclip import OpenCLIP
from bimors.core.errors import ConfigError
from bimors.run.config import resolve_config


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


def _one_complete_line(message: str) -> None:
    assert "\n" not in message
    assert not re.search(r"\w\.\.\.", message)  # never cut mid-word


def test_a_preset_takes_a_local_copy_of_its_weights_and_records_both(tmp_path):
    weights = tmp_path / "RemoteCLIP-ViT-B-32.pt"
    weights.write_bytes(b"x")
    cfg = resolve_config(
        "zeroshot",
        overrides=["backbone.preset=remoteclip-vit-b-32", f"backbone.pretrained={weights}"],
    )
    assert cfg.backbone.preset == "remoteclip-vit-b-32"
    assert cfg.backbone.pretrained == str(weights) and cfg.backbone.model == "ViT-B-32-quickgelu"
    with pytest.raises(ConfigError, match="no such checkpoint file"):
        resolve_config(
            "zeroshot",
            overrides=["backbone.preset=remoteclip-vit-b-32", "backbone.pretrained=/no/such.pt"],
        )
    with pytest.raises(ConfigError, match="contradicts backbone.preset"):  # still: a tag clash
        resolve_config(
            "zeroshot",
            overrides=["backbone.preset=remoteclip-vit-b-32", "backbone.pretrained=laion"],
        )


def test_hub_file_offline_advises_a_download_command_then_the_flag(offline):
    with pytest.raises(ModelLoadError) as info:
        fetch_weights("hf-file:chendelong/RemoteCLIP/RemoteCLIP-ViT-B-32.pt")
    message = str(info.value)
    _one_complete_line(message)
    assert (
        '`python -c "from huggingface_hub import hf_hub_download; '
        "print(hf_hub_download('chendelong/RemoteCLIP', 'RemoteCLIP-ViT-B-32.pt'))\"`" in message
    )
    assert "`--set backbone.pretrained=/path/to/RemoteCLIP-ViT-B-32.pt`" in message


def test_open_clip_tag_offline_is_one_bimors_line_and_no_library_error_line(offline, caplog):
    with caplog.at_level(logging.INFO), pytest.raises(ModelLoadError) as info:
        OpenCLIP._create("ViT-B-32-quickgelu", "openai")
    message = str(info.value)
    _one_complete_line(message)
    assert "open_clip.create_model('ViT-B-32', pretrained='openai')" in message
    assert "--set backbone.pretrained=" in message
    assert [r for r in caplog.records if "open_clip" in r.pathname] == []


def test_short_cuts_after_a_whole_word():
    text = "please check your connection and try again " * 10
    cut = _short(text, 60)
    assert len(cut) <= 60 and cut.endswith("...") and cut[:-3].split()[-1] in text.split()
