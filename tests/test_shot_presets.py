"""Presets per shot count (issue 23): CoOp/ProGrad epochs and EuroSAT's lambda."""

from __future__ import annotations

import pytest

from bimors.cli import main
from bimors.core.errors import ConfigError
from bimors.methods import presets
from bimors.run.config import resolve_config

#: COOP.md and ProGrad.public/README.md: rn50_ep50 / rn50_ep100 / rn50 by shot count.
OFFICIAL_EPOCHS = {1: 50, 2: 100, 4: 100, 8: 200, 16: 200}


@pytest.mark.parametrize("method", ["coop", "prograd"])
@pytest.mark.parametrize("shots", sorted(OFFICIAL_EPOCHS))
def test_fewshot_protocol_epochs_follow_the_shot_count(method, shots):
    cfg = resolve_config(method, overrides=[f"data.shots={shots}"], protocol="fewshot")
    assert cfg.train.epochs == OFFICIAL_EPOCHS[shots]
    assert f"{method}/protocols/fewshot/shots/{shots}" in cfg.preset.layers


def test_other_protocols_keep_their_schedule():
    assert (
        resolve_config("coop", overrides=["data.shots=1"], protocol="base2new").train.epochs == 50
    )
    cfg = resolve_config("prograd", overrides=["data.shots=1"], protocol="base2new")
    assert cfg.train.epochs == 200 and not any("shots" in layer for layer in cfg.preset.layers)


@pytest.mark.parametrize("shots, lam", [(1, 1.0), (2, 1.0), (4, 1.0), (8, 0.8), (16, 0.8)])
def test_prograd_eurosat_lambda_is_08_only_at_8_and_16_shots(shots, lam):
    sets = ["data.dataset=eurosat", f"data.shots={shots}"]
    cfg = resolve_config("prograd", overrides=sets, protocol="fewshot")
    assert cfg.method_params.grad_lambda == lam
    assert cfg.method_params.template == "a centered satellite photo of {}."
    other = resolve_config("prograd", overrides=[f"data.shots={shots}"], protocol="fewshot")
    assert other.method_params.grad_lambda == 1.0


def test_without_shots_the_presets_own_count_picks_the_layer():
    cfg = resolve_config("coop", protocol="fewshot")  # the preset's data.shots is 16
    assert cfg.data.shots == 16 and cfg.train.epochs == 200


def test_user_setting_beats_the_shot_layer():
    cfg = resolve_config("coop", overrides=["data.shots=1", "train.epochs=7"], protocol="fewshot")
    assert cfg.train.epochs == 7


def test_list_preset_shows_the_shot_layers(capsys):
    assert main(["list", "--preset", "coop", "--protocol", "fewshot", "--shots", "2"]) == 0
    out = capsys.readouterr().out
    assert "coop/protocols/fewshot/shots/2" in out and "epochs: 100" in out
    assert main(["list"]) == 0
    assert "protocols/fewshot/shots/1" in capsys.readouterr().out


def test_bad_shots_section_names_the_preset(monkeypatch):
    raw = {"train": {"epochs": 1}, "shots": {"one": {"train": {"epochs": 2}}}}
    monkeypatch.setattr(presets, "load_preset", lambda name: raw)
    monkeypatch.setattr(presets, "preset_names", lambda: ["fake"])
    with pytest.raises(ConfigError, match="preset fake: shots keys must be shot counts"):
        presets.resolve_preset("fake")
    raw["shots"] = {1: 3}
    with pytest.raises(ConfigError, match="shots must map shot counts"):
        presets.resolve_preset("fake")
    raw["shots"] = {1: {"train": {"epochs": 2}}}
    settings, record = presets.resolve_preset("fake", shots=1)
    assert settings["train"]["epochs"] == 2 and record.layers == ["fake", "fake/shots/1"]


def test_a_protocols_dataset_layer_applies_last_and_bad_nesting_is_refused(monkeypatch):
    raw = {
        "train": {"epochs": 1, "lr": 0.1},
        "datasets": {"eurosat": {"train": {"epochs": 2, "lr": 0.2}}},
        "protocols": {
            "fewshot": {
                "train": {"epochs": 3},
                "datasets": {
                    "eurosat": {"train": {"epochs": 4}, "shots": {8: {"train": {"lr": 0.8}}}}
                },
            }
        },
    }
    monkeypatch.setattr(presets, "load_preset", lambda name: raw)
    monkeypatch.setattr(presets, "preset_names", lambda: ["fake"])
    settings, record = presets.resolve_preset("fake", "fewshot", "eurosat", shots=8)
    assert settings["train"] == {"epochs": 4, "lr": 0.8}
    assert record.layers == [
        "fake",
        "fake/protocols/fewshot",
        "fake/datasets/eurosat",
        "fake/protocols/fewshot/datasets/eurosat",
        "fake/protocols/fewshot/datasets/eurosat/shots/8",
    ]
    assert "datasets" not in settings  # the nested section is a layer, never a setting
    assert presets.resolve_preset("fake", "fewshot", "resisc45")[0]["train"]["epochs"] == 3
    assert presets.resolve_preset("fake", "base2new", "eurosat")[0]["train"]["epochs"] == 2
    assert "protocols/fewshot/datasets/eurosat/shots/8" in presets.variants("fake")
    # a dataset layer holding protocols would otherwise be dropped without a word
    raw["datasets"]["eurosat"]["protocols"] = {"fewshot": {"train": {"epochs": 9}}}
    with pytest.raises(ConfigError, match=r"datasets.eurosat: a datasets layer cannot hold"):
        presets.resolve_preset("fake", "fewshot", "eurosat")
    del raw["datasets"]["eurosat"]["protocols"]
    raw["protocols"]["fewshot"]["datasets"]["eurosat"]["datasets"] = {"x": {}}
    with pytest.raises(ConfigError, match="cannot nest further layers"):
        presets.resolve_preset("fake", "fewshot", "eurosat")
