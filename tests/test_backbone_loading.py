"""Backbones load from the forms users have (hub folders, RemoteCLIP/GeoRSCLIP state dicts,
SkyCLIP zips, presets) and every failure is one line naming the model, the cause and the fix."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch

from bimors.backbones import load_backbone
from bimors.backbones.loading import ModelLoadError
from bimors.backbones.openclip import activation
from bimors.backbones.presets import PRESETS, get_preset
from bimors.cli import main
from bimors.core.errors import ConfigError, UnknownNameError
from bimors.demo.tiny import CLIP_SHAPES, build_hf_clip, build_open_clip, open_clip_config
from bimors.run.config import resolve_config

from .test_experiments import _train, env  # noqa: F401  (env is a fixture)

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory):
    """The tiny CLIP registered as an open_clip architecture, as ViT-B-32 is for real users."""
    import open_clip

    folder = tmp_path_factory.mktemp("arch")
    cfg = open_clip_config(CLIP_SHAPES["tiny"])
    cfg.pop("quick_gelu")
    (folder / "bimors-tiny.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    return "bimors-tiny"


def _remoteclip_file(path, seed=0, wrap=None, prefix=""):
    """A raw state dict of the tiny model, as RemoteCLIP/GeoRSCLIP publish theirs."""
    state = {
        prefix + k: v for k, v in build_open_clip(CLIP_SHAPES["tiny"], seed).state_dict().items()
    }
    torch.save({wrap: state} if wrap else state, path)
    return path


# -- presets -------------------------------------------------------------------------------------
def test_presets_cover_the_four_families_with_their_activation():
    families = {p.family for p in PRESETS.values()}
    assert families == {"OpenAI CLIP", "RemoteCLIP", "GeoRSCLIP", "SkyCLIP"}
    names = set(PRESETS)
    for want in ("remoteclip-rn50", "remoteclip-vit-b-32", "remoteclip-vit-l-14"):
        assert want in names
    for want in ("georsclip-vit-b-32", "georsclip-vit-l-14", "georsclip-vit-h-14"):
        assert want in names
    assert {"skyclip-vit-b-32", "skyclip-vit-l-14"} <= names
    assert {"openai-vit-b-32", "openai-vit-b-16-openclip", "openai-vit-l-14"} <= names
    for p in PRESETS.values():
        assert p.citation and p.licence and p.source.startswith("https://")
        if p.adapter == "open_clip":  # the QuickGELU rule, in the architecture name
            assert p.model.endswith("-quickgelu") == p.quick_gelu, p.name
    assert not get_preset("georsclip-vit-h-14").quick_gelu  # LAION-2B weights: plain GELU
    assert not get_preset("skyclip-vit-b-32").quick_gelu


def test_preset_sets_the_backbone_fields_and_refuses_a_contradiction():
    cfg = resolve_config("coop", overrides=["backbone.preset=remoteclip-vit-b-32"])
    assert (cfg.backbone.adapter, cfg.backbone.model) == ("open_clip", "ViT-B-32-quickgelu")
    assert cfg.backbone.pretrained == "hf-file:chendelong/RemoteCLIP/RemoteCLIP-ViT-B-32.pt"
    with pytest.raises(ConfigError, match="backbone.model='ViT-B-16' contradicts"):
        resolve_config(
            "coop", overrides=["backbone.preset=remoteclip-vit-b-32", "backbone.model=ViT-B-16"]
        )
    with pytest.raises(UnknownNameError, match="valid presets: openai-vit-b-32"):
        resolve_config("coop", overrides=["backbone.preset=remoteclip-vit-b-99"])


def test_list_shows_presets_with_architectures(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "remoteclip-vit-b-32" in out and "ViT-B-32-quickgelu" in out
    assert "GeoRSCLIP" in out and "SkyCLIP" in out and "georsclip-vit-h-14" in out


# -- checkpoint forms ----------------------------------------------------------------------------
@pytest.mark.parametrize(("wrap", "prefix"), [(None, ""), ("state_dict", "module.")])
def test_state_dict_checkpoints_load_strictly_with_quickgelu(tiny_arch, tmp_path, wrap, prefix):
    path = _remoteclip_file(tmp_path / "RemoteCLIP-tiny.pt", wrap=wrap, prefix=prefix)
    bb = load_backbone("open_clip", f"{tiny_arch}-quickgelu", str(path))
    assert activation(bb.model) == "quick_gelu"
    plain = load_backbone("open_clip", tiny_arch, str(path))
    assert activation(plain.model) == "gelu"  # the silent mistake the rule prevents
    assert (bb.activation, plain.activation) == ("quick_gelu", "gelu")
    ref = build_open_clip(CLIP_SHAPES["tiny"], 0)
    ids = bb.tokenize(["a satellite photo of a harbor."])
    with torch.no_grad():
        torch.testing.assert_close(bb.encode_text(ids), ref.encode_text(ids), **TOL)
        assert not torch.allclose(plain.encode_text(ids), ref.encode_text(ids), atol=1e-4)


def test_skyclip_zip_by_url_is_fetched_once_and_loaded(tiny_arch, tmp_path, monkeypatch):
    monkeypatch.setenv("BIMORS_CACHE", str(tmp_path / "cache"))
    inner = _remoteclip_file(tmp_path / "epoch_20.pt", wrap="state_dict", prefix="module.")
    archive = tmp_path / "SkyCLIP_tiny.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(inner, "SkyCLIP_tiny/epoch_20.pt")
    bb = load_backbone("open_clip", f"{tiny_arch}-quickgelu", archive.as_uri())
    assert (tmp_path / "cache" / "backbones" / "SkyCLIP_tiny" / "SkyCLIP_tiny").is_dir()
    assert not list((tmp_path / "cache").rglob("*.partial"))
    archive.unlink()  # a second load reads the cache
    again = load_backbone("open_clip", f"{tiny_arch}-quickgelu", archive.as_uri())
    ids = bb.tokenize(["river"])
    torch.testing.assert_close(bb.encode_text(ids), again.encode_text(ids))


def test_both_adapters_give_the_same_logits_on_the_same_weights(oc_backbone, hf_backbone):
    """open_clip weights copied into a transformers CLIPModel: both adapters agree."""
    from bimors.backbones.hf_clip import HFCLIP
    from bimors.methods import build_method

    oc = oc_backbone.model
    hf = build_hf_clip(CLIP_SHAPES["tiny"])
    _copy_open_clip_into_hf(oc, hf)
    twin = HFCLIP(hf, hf_backbone.tokenizer, hf_backbone.preprocess, "copied")
    names = ["harbor", "dense residential", "storage tank"]
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = build_method("zeroshot", oc_backbone, names)
        b = build_method("zeroshot", twin, names)
        la = a(oc_backbone.encode_image(pixels))
        lb = b(twin.encode_image(pixels))
    torch.testing.assert_close(la, lb, atol=1e-4, rtol=1e-5)
    assert la.std() > 0


def _copy_open_clip_into_hf(oc, hf) -> None:
    """Map open_clip CLIP weights onto transformers' CLIPModel names (same architecture)."""
    with torch.no_grad():
        t, v = hf.text_model, hf.vision_model
        t.embeddings.token_embedding.weight.copy_(oc.token_embedding.weight)
        t.embeddings.position_embedding.weight.copy_(oc.positional_embedding)
        for src, dst in [
            *zip(oc.transformer.resblocks, t.encoder.layers, strict=True),
            *zip(oc.visual.transformer.resblocks, v.encoder.layers, strict=True),
        ]:
            q, k, val = src.attn.in_proj_weight.chunk(3)
            qb, kb, vb = src.attn.in_proj_bias.chunk(3)
            for lin, w, b in ((dst.self_attn.q_proj, q, qb), (dst.self_attn.k_proj, k, kb)):
                lin.weight.copy_(w), lin.bias.copy_(b)
            dst.self_attn.v_proj.weight.copy_(val), dst.self_attn.v_proj.bias.copy_(vb)
            dst.self_attn.out_proj.load_state_dict(src.attn.out_proj.state_dict())
            dst.layer_norm1.load_state_dict(src.ln_1.state_dict())
            dst.layer_norm2.load_state_dict(src.ln_2.state_dict())
            dst.mlp.fc1.load_state_dict(src.mlp.c_fc.state_dict())
            dst.mlp.fc2.load_state_dict(src.mlp.c_proj.state_dict())
        t.final_layer_norm.load_state_dict(oc.ln_final.state_dict())
        hf.text_projection.weight.copy_(oc.text_projection.T)
        v.embeddings.patch_embedding.weight.copy_(oc.visual.conv1.weight)
        v.embeddings.class_embedding.copy_(oc.visual.class_embedding)
        v.embeddings.position_embedding.weight.copy_(oc.visual.positional_embedding)
        v.pre_layrnorm.load_state_dict(oc.visual.ln_pre.state_dict())
        v.post_layernorm.load_state_dict(oc.visual.ln_post.state_dict())
        hf.visual_projection.weight.copy_(oc.visual.proj.T)
        hf.logit_scale.copy_(oc.logit_scale)


# -- one-line failures ---------------------------------------------------------------------------
def test_checkpoint_that_does_not_fit_the_architecture_is_refused(tiny_arch, tmp_path):
    path = tmp_path / "wrong.pt"
    state = build_open_clip(CLIP_SHAPES["tiny"]).state_dict()
    state.pop("ln_final.weight")
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(
        ModelLoadError, match=r"1 missing \(e\.g\. ln_final\.weight\); 1 unexpected"
    ):
        load_backbone("open_clip", tiny_arch, str(path))


def test_hf_folder_with_missing_weights_is_refused(tmp_path, tiny_dir):
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "clip"
    shutil.copytree(tiny_dir / "clip-hf", folder)
    weights = folder / "model.safetensors"
    state = load_file(str(weights))
    del state[next(k for k in state if k.endswith("final_layer_norm.weight"))]
    save_file(state, str(weights), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"1 weights missing .* would leave them random"):
        load_backbone("hf", str(folder))


def test_mistyped_folder_is_named_as_a_folder_not_a_hub_id(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.chdir(tiny_dir.parent)
    rel = f"{tiny_dir.name}/clip-hff"
    for adapter in ("hf", "open_clip"):
        with pytest.raises(ModelLoadError, match=r"no such file or folder; .* holds: blip2") as e:
            load_backbone(adapter, rel)
        assert "hub id must" not in str(e.value).lower() and "repo id" not in str(e.value).lower()
    with pytest.raises(ModelLoadError, match="no such file or folder"):
        load_backbone("hf", str(tmp_path / "a" / "b" / "c"))


def test_hub_id_offline_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache") as e:
        load_backbone("hf", "someone/clip-that-is-not-cached")
    assert "\n" not in str(e.value)
    with pytest.raises(ModelLoadError, match="cannot fetch 'RemoteCLIP-ViT-B-32.pt'"):
        load_backbone(
            "open_clip", "ViT-B-32-quickgelu", get_preset("remoteclip-vit-b-32").pretrained
        )


def test_cli_reports_a_bad_backbone_in_one_line_with_status_2(env, tmp_path, capsys):  # noqa: F811
    capsys.readouterr()
    code = _train(env, tmp_path / "run", "coop", ["--set", f"backbone.model={tmp_path}/nope"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "no such file or folder" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("form", ["hf-folder", "remoteclip-pt"])
def test_both_checkpoint_forms_train_and_evaluate_through_the_cli(
    env,  # noqa: F811
    tiny_dir,
    tiny_arch,
    tmp_path,
    form,
):
    """A transformers hub-layout folder and a RemoteCLIP-format state dict: train, eval."""
    if form == "hf-folder":
        sets = ["backbone.adapter=hf", f"backbone.model={tiny_dir / 'clip-hf'}"]
    else:
        path = _remoteclip_file(tmp_path / "RemoteCLIP-tiny.pt")
        sets = [
            "backbone.adapter=open_clip",
            f"backbone.model={tiny_arch}-quickgelu",
            f"backbone.pretrained={path}",
        ]
    run = tmp_path / "run"
    extra = [x for s in sets for x in ("--set", s)] + ["--set", "train.epochs=1"]
    assert _train(env, run, "coop", extra) == 0
    records = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    assert {r["split"] for r in records} == {"base", "new"}
    assert {r["backbone_activation"] for r in records} == {"quick_gelu"}
    assert main(["-q", "eval", str(run), "--store", f"synthetic={env['store']}"]) == 0
    again = [json.loads(x) for x in (run / "results.jsonl").read_text().splitlines()]
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in records]


def test_a_library_release_that_cannot_load_is_named(monkeypatch, tiny_dir):
    import transformers

    def too_old(*_args, **_kwargs):
        raise TypeError("CLIPModel.__init__() got an unexpected keyword argument 'x'")

    monkeypatch.setattr(transformers.CLIPModel, "from_pretrained", too_old)
    with pytest.raises(ModelLoadError, match=rf"with transformers {transformers.__version__}") as e:
        load_backbone("hf", str(tiny_dir / "clip-hf"))
    assert "pyproject.toml" in str(e.value) and "\n" not in str(e.value)
