"""``bimors export`` / ``push`` and ``Predictor.from_pretrained``: a run as a hub model repo."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file, save_file

from bimors.cli import main
from bimors.core.errors import CheckpointError
from bimors.run.config import resolve_config
from bimors.run.export import _base_model, export_run, load_exported
from bimors.run.predict import Predictor
from tests.test_experiments import _records, env, trained_run  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):  # noqa: F811
    return export_run(trained_run, tmp_path_factory.mktemp("export") / "repo")


def test_export_writes_a_model_repository_with_a_parsable_card(trained_run, exported):  # noqa: F811
    from huggingface_hub import ModelCard

    assert sorted(p.name for p in exported.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    payload = __import__("torch").load(trained_run / "checkpoint.pt", weights_only=True)
    weights = load_file(str(exported / "model.safetensors"))
    assert weights.keys() == payload["state"].keys()
    assert all((weights[k] == payload["state"][k]).all() for k in weights)
    config = json.loads((exported / "config.json").read_text())
    assert config["method"] == "bimors" and config["classnames"] == payload["classnames"]
    assert config["config"]["data"]["shots"] == 4
    card = ModelCard.load(exported / "README.md")
    assert card.data.library_name == "bimors"
    assert "bimors" in card.data.tags and "remote-sensing" in card.data.tags
    assert card.data.datasets == ["synthetic"]
    records = _records(trained_run)
    got = {(r.dataset_split, r.metric_value) for r in card.data.eval_results}
    assert got == {(r["split"], r["accuracy"]) for r in records}
    assert "Predictor.from_pretrained" in card.text and "4 shots per class" in card.text


def test_reloaded_export_predicts_exactly_what_the_run_predicts(env, trained_run, exported):  # noqa: F811
    images = sorted((env["scenes"] / "river").glob("*.png"))[:3]
    want = Predictor.from_run(trained_run, device="cpu").predict(images, topk=3)
    got = Predictor.from_pretrained(exported, device="cpu").predict(images, topk=3)
    assert got == want


def test_hf_id_is_downloaded_through_huggingface_hub(exported, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_download(repo_id, revision=None, **kw):
        calls.append((repo_id, revision))
        return str(exported)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    trained = load_exported("hf:someone/bimors-demo", device="cpu", revision="abc")
    assert calls == [("someone/bimors-demo", "abc")]
    assert trained.cfg.method == "bimors" and trained.run is None


def test_cli_export_predict_and_push(env, trained_run, tmp_path, monkeypatch, capsys):  # noqa: F811
    import huggingface_hub

    out = tmp_path / "exp"
    assert main(["-q", "export", str(trained_run), str(out)]) == 0
    assert (out / "model.safetensors").is_file()
    assert main(["-q", "export", str(trained_run), str(out)]) == 2  # not empty: refused
    assert "not an empty folder" in capsys.readouterr().err
    image = sorted((env["scenes"] / "river").glob("*.png"))[0]
    assert main(["-q", "predict", str(out), str(image), "--topk", "1"]) == 0
    assert str(image) in capsys.readouterr().out

    seen = {}

    def create_repo(self, repo_id, private=False, exist_ok=False, repo_type=None, **kw):
        seen["create"] = (repo_id, private, exist_ok, repo_type)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, repo_id, folder_path, repo_type=None, **kw):
        from pathlib import Path

        seen["files"] = sorted(p.name for p in Path(folder_path).iterdir())
        seen["upload"] = (repo_id, repo_type)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    assert main(["-q", "push", str(trained_run), "--repo", "me/bimors-x", "--private"]) == 0
    assert seen["create"] == ("me/bimors-x", True, True, "model")
    assert seen["upload"] == ("me/bimors-x", "model")
    assert seen["files"] == ["README.md", "config.json", "model.safetensors"]
    assert "hf:me/bimors-x" in capsys.readouterr().out


def test_a_damaged_export_is_refused_not_loaded(exported, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(exported, bad)
    weights = load_file(str(bad / "model.safetensors"))
    weights.pop(sorted(weights)[0])
    save_file(weights, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing keys"):
        load_exported(bad, device="cpu")
    (bad / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not a bimors export"):
        load_exported(bad, device="cpu")


def test_base_model_is_named_only_when_it_is_a_hub_id(tmp_path):
    cfg = resolve_config("coop", overrides=["backbone.model=openai/clip-vit-base-patch16"])
    assert _base_model(cfg) == "openai/clip-vit-base-patch16"
    local = resolve_config("coop", overrides=[f"backbone.model={tmp_path}"])
    assert _base_model(local) is None
