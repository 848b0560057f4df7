"""Typed configs: presets, overrides and validation errors that name the field."""

from __future__ import annotations

import pytest

from bimors.core.config import apply_overrides
from bimors.core.errors import ConfigError
from bimors.methods.presets import preset_names
from bimors.run.config import RunConfig, resolve_config


def test_bimors_preset_is_the_reference_recipe():
    cfg = resolve_config("bimors")
    t = cfg.train
    assert (t.batch_size, t.lr, t.momentum, t.weight_decay, t.epochs) == (4, 0.009, 0.9, 5e-4, 10)
    assert (t.warmup_epochs, t.warmup_lr) == (1, 1e-5)
    assert cfg.method_params.ctx_init == "a photo of a" and cfg.method_params.heads == 4
    assert cfg.data.shots == 16
    assert cfg.backbone.model == "openai/clip-vit-base-patch16"


def test_every_method_has_a_preset():
    from bimors.methods import METHODS

    assert set(METHODS.names()) <= set(preset_names())


def test_overrides_are_typed_and_round_trip(tmp_path):
    cfg = resolve_config("coop", overrides=["train.lr=0.5", "method.n_ctx=8", "data.shots=4"])
    assert cfg.train.lr == 0.5 and cfg.method_params.n_ctx == 8 and cfg.data.shots == 4
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg


def test_file_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("method: cocoop\ntrain:\n  epochs: 3\n")
    cfg = resolve_config(config_file=f, overrides=["train.epochs=4"])
    assert cfg.method == "cocoop" and cfg.train.epochs == 4 and cfg.train.lr == 0.002


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "train.lrr=1",
            r"config.train: unknown field\(s\) lrr; valid fields: epochs, batch_size, lr",
        ),
        (
            "train.precision=fp8",
            r"config.train.precision: 'fp8' is not allowed; choose one of 'fp32'",
        ),
        ("train.epochs=ten", "config.train.epochs: expected an integer, got 'ten'"),
        ("train.batch_size=0", "train.batch_size must be >= 1"),
        ("method.heads=two", "method.bimors.heads: expected an integer"),
        ("data.classnames=pretty", "config.data.classnames: 'pretty' is not allowed"),
        ("nonsense", "must look like section.field=value"),
    ],
)
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config("bimors", overrides=[override])


def test_unknown_method_and_preset():
    from bimors.core.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="valid methods"):
        resolve_config("bimorz")


def test_apply_overrides_creates_sections():
    assert apply_overrides({}, ["a.b.c=[1, 2]"]) == {"a": {"b": {"c": [1, 2]}}}


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        resolve_config(config_file=bad)
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config(config_file=tmp_path / "none.yaml")


def test_seed_comes_from_set_when_no_seed_flag_is_given(tmp_path):
    from bimors.core.errors import ConfigError
    from bimors.grid.runner import config_for

    assert config_for("coop", "synthetic", tmp_path, None, None, ["train.seed=5"]).train.seed == 5
    assert config_for("coop", "synthetic", tmp_path, None, None, []).train.seed == 1
    with pytest.raises(ConfigError, match="conflicts with --seed 3"):
        config_for("coop", "synthetic", tmp_path, 3, None, ["train.seed=5"])
