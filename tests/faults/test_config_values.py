"""Config values: YAML 1.2 numbers parse, non-finite numbers and impossible values are refused."""

from __future__ import annotations

import pytest

from bimors.core.config import yaml_load
from bimors.core.errors import ConfigError
from bimors.run.config import resolve_config


@pytest.mark.parametrize(
    "text, value", [("2e-3", 0.002), ("1e-5", 1e-5), ("1E5", 1e5), ("-.5", -0.5), ("3", 3)]
)
def test_yaml_12_numbers_parse(text, value):
    assert yaml_load(text) == value
    assert type(yaml_load(text)) is type(value)


def test_lr_in_exponent_form_from_set_and_from_a_file(tmp_path):
    assert resolve_config("coop", overrides=["train.lr=2e-3"]).train.lr == 0.002
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 1e-5\n")
    assert resolve_config("coop", f).train.lr == 1e-5


@pytest.mark.parametrize("item", ["train.lr=.nan", "train.warmup_lr=.inf", "train.momentum=-.inf"])
def test_non_finite_numbers_are_refused_with_the_field(item):
    with pytest.raises(ConfigError, match=item.split("=")[0] + ".*finite"):
        resolve_config("coop", overrides=[item])


def test_device_name_is_checked_by_the_config():
    with pytest.raises(ConfigError, match="train.device='banana'"):
        resolve_config("coop", overrides=["train.device=banana"])


def test_machine_checks_name_the_field(tmp_path):
    from bimors.run.preflight import check_config

    cfg = resolve_config("coop", overrides=["features.dir=/proc/nope"])
    with pytest.raises(ConfigError, match="features.dir=/proc/nope"):
        check_config(cfg)


def test_cli_flags_and_config_may_not_disagree(tmp_path):
    from bimors.grid.runner import config_for

    with pytest.raises(ConfigError, match="method.name='cocoop'.*--method coop"):
        config_for("coop", "synthetic", tmp_path, 1, None, ["method.name=cocoop"])
    with pytest.raises(ConfigError, match="data.root=.*--root"):
        config_for("coop", "synthetic", tmp_path, 1, None, ["data.root=/elsewhere"])
    same = config_for("coop", "synthetic", tmp_path, 1, None, [f"data.root={tmp_path}"])
    assert same.data.root == str(tmp_path)


def test_stored_paths_are_absolute(tmp_path, monkeypatch, tiny_dir):
    monkeypatch.chdir(tiny_dir.parent)
    cfg = resolve_config(
        "coop",
        overrides=[
            "data.root=syn_small",
            f"backbone.model={tiny_dir.name}/clip-hf",
            "features.dir=feats",
        ],
    )
    assert cfg.data.root == str(tiny_dir.parent / "syn_small")
    assert cfg.backbone.model == str((tiny_dir / "clip-hf").resolve())
    assert cfg.features.dir == str(tiny_dir.parent / "feats")
    hub = resolve_config("coop", overrides=["backbone.model=openai/clip-vit-base-patch16"])
    assert hub.backbone.model == "openai/clip-vit-base-patch16"


def test_n_ctx_that_ctx_init_would_ignore_is_refused(hf_backbone):
    from bimors.methods import build_method

    with pytest.raises(ConfigError, match="method.n_ctx=8 disagrees with method.ctx_init"):
        build_method("cocoop", hf_backbone, ["river", "forest"], {"n_ctx": 8})
    method = build_method("cocoop", hf_backbone, ["river", "forest"], {"n_ctx": 8, "ctx_init": ""})
    assert method.ctx.shape[0] == 8


def test_heads_that_do_not_divide_the_width_are_refused(hf_backbone):
    from bimors.methods import build_method

    with pytest.raises(ConfigError, match="method.heads=3"):
        build_method("bimors", hf_backbone, ["river", "forest"], {"heads": 3}, caption_dim=8)
