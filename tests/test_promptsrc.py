"""PromptSRC: the self-regulating loss and Gaussian prompt aggregation against restatements."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
import torch.nn.functional as F

from bimors.engine.checkpoint import read_checkpoint
from bimors.engine.feature_cache import FeatureCache
from bimors.engine.features import CachedFeatures
from bimors.engine.shared_views import SharedViews
from bimors.engine.trainer import FINAL, LAST, Trainer
from bimors.methods import build_method
from bimors.methods.promptsrc import TEMPLATES
from bimors.run.config import TrainConfig

from .conftest import CLASSNAMES
from .library_forward import library_image, library_text
from .test_engine import _tasks

# The tiny CLIPs have 2 blocks per encoder.
PARAMS = {"prompt_depth_text": 2, "prompt_depth_vision": 2}
PROMPTS = ["ctx", "vpt", "deep_text.0", "deep_vision.0"]


class Killed(Exception):
    pass


def _pixels(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _moved(backbone, params=PARAMS):
    torch.manual_seed(0)
    m = build_method("promptsrc", backbone, CLASSNAMES, params)
    with torch.no_grad():  # every prompt off its init, so each one matters
        for _, p in m.own_parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m


def test_the_templates_are_the_official_sixty():
    assert len(TEMPLATES) == 60 and len(set(TEMPLATES)) == 60
    assert TEMPLATES[0] == "a photo of a {}." and TEMPLATES[-1] == "itap of the {}."
    digest = hashlib.sha256("\n".join(TEMPLATES).encode()).hexdigest()
    assert digest == "dc3398ed3ffc7c259342582bc0f36d7ac66c4dee17981a37b77b0fc9c23d4f72"


def test_promptsrc_trains_ivlp_prompts_and_saves_nothing_else(backbone):
    m = build_method("promptsrc", backbone, CLASSNAMES, PARAMS)
    assert {n for n, p in m.named_parameters() if p.requires_grad} == set(PROMPTS)
    assert set(m.method_state_dict()) == set(PROMPTS)
    assert not m.frozen_image_features
    assert (m.cfg.n_ctx, m.cfg.n_ctx_vision) == (4, 4)  # the official 4 + 4 tokens


def test_loss_logits_and_gradients_match_the_restated_official_forward(backbone):
    m = _moved(backbone)
    m.train()
    pixels, labels = _pixels(), torch.tensor([0, 1, 2, 0]) % len(CLASSNAMES)
    params = dict(m.own_parameters())
    logits = m(m.image_features(pixels))
    loss = m.loss(logits, labels)
    grads = torch.autograd.grad(loss, [params[n] for n in PROMPTS])

    # Restated (trainers/promptsrc.py CustomCLIP.forward and forward_backward, fp32):
    scale = backbone.logit_scale
    # the prompted towers on the libraries' own forwards, edited by hooks (all 77 positions)
    img = F.normalize(library_image(backbone, pixels, m.vpt, [m.deep_vision[0]]), dim=-1)
    ids = backbone.tokenize([f"a photo of a {c}." for c in CLASSNAMES]).to(backbone.device)
    emb = backbone.embed_tokens(ids)
    ctx = m.ctx.unsqueeze(0).expand(len(emb), -1, -1)
    prompts = torch.cat([emb[:, :1], ctx, emb[:, 1 + m.n_ctx :]], 1)
    text = F.normalize(library_text(backbone, ids, prompts, {1: m.deep_text[0]}), dim=-1)
    ref_logits = scale * img @ text.t()
    with torch.no_grad():
        # frozen text: every template x class in one batch, mean of raw features, normalised
        prompts = [t.replace("{}", c) for t in TEMPLATES for c in CLASSNAMES]
        raw = backbone.encode_text(backbone.tokenize(prompts))
        fixed = raw.view(len(TEMPLATES), len(CLASSNAMES), -1).mean(dim=0)
        fixed = fixed / fixed.norm(dim=-1, keepdim=True)
        zs_img = backbone.encode_image(pixels).pooled
        zs_img = zs_img / zs_img.norm(dim=-1, keepdim=True)
        zs_logits = scale * zs_img @ fixed.t()
    ce = F.cross_entropy(ref_logits, labels)
    l_text = (text - fixed).abs().mean() * 25
    l_image = (img - zs_img).abs().mean() * 10
    log_p, log_q = ref_logits.log_softmax(1), zs_logits.log_softmax(1)
    kl = (log_q.exp() * (log_q - log_p)).sum() / ref_logits.numel()
    ref_loss = ce + kl + l_text + l_image
    ref_grads = torch.autograd.grad(ref_loss, [params[n] for n in PROMPTS])

    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    assert float((loss - ce).detach()) > 1e-4  # the regularisers are really there
    for n, g, r in zip(PROMPTS, grads, ref_grads, strict=True):
        assert g.abs().sum() > 0, n
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)  # 25 x L1 terms


def test_evaluation_is_ivlp_forward_without_the_ensemble(hf_backbone):
    m = _moved(hf_backbone)
    ivlp = build_method("ivlp", hf_backbone, CLASSNAMES, {**PARAMS, "n_ctx": 4, "n_ctx_vision": 4})
    ivlp.load_method_state_dict(m.method_state_dict())
    m.eval(), ivlp.eval()
    with torch.no_grad():
        feats = m.image_features(_pixels())
        assert not hasattr(feats, "frozen")
        torch.testing.assert_close(m(feats), ivlp(ivlp.image_features(_pixels())))
        labels = torch.zeros(4, dtype=torch.long)
        assert torch.equal(m.loss(m(feats), labels), F.cross_entropy(m(feats), labels))
    assert m._ensemble is None  # evaluation never encodes the 60 x C template prompts


def test_the_feature_cache_and_shared_views_never_serve_promptsrc(backbone, scenes, tmp_path):
    """Its image features depend on the vision prompts, as IVLP's and MaPLe's."""
    m = build_method("promptsrc", backbone, CLASSNAMES, PARAMS)
    cached = CachedFeatures(FeatureCache(tmp_path / "c"), train_views=2)
    assert not cached.uses_cache(m, True) and not cached.uses_cache(m, False)
    assert cached.describe(m, True) == "encoder"
    assert not SharedViews(FeatureCache(tmp_path / "v")).shares(m)
    train, _, test = _tasks(scenes, backbone, shots=2)
    assert "pixels" in next(iter(cached.train_loader(m, train, 2, 1, 0)))
    assert "pixels" in next(iter(cached.eval_loader(m, test, 2)))
    assert not (tmp_path / "c").exists()


def _gauss(epochs, mean, std):
    """Restated ``get_gauss`` over epochs 1..N, divided by its sum (float64)."""
    g = [
        math.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
        for x in range(1, epochs + 1)
    ]
    return [w / sum(g) for w in g]


def test_gpa_final_prompts_are_the_gauss_weighted_epochs(scenes, hf_backbone, tmp_path):
    train, _, _ = _tasks(scenes, hf_backbone, shots=2)
    cfg = TrainConfig(epochs=3, batch_size=2, lr=0.05, warmup_epochs=0)
    params = {**PARAMS, "gpa_mean": 2.0, "gpa_std": 1.0}
    torch.manual_seed(0)
    m = build_method("promptsrc", hf_backbone, train.classnames, params)
    snaps = []  # each epoch's prompts, seen just before the method's own hook
    hook = m.on_epoch_end

    def snap(epoch, epochs):
        snaps.append({n: p.detach().clone() for n, p in m.own_parameters()})
        hook(epoch, epochs)

    m.on_epoch_end = snap
    Trainer(m, cfg, tmp_path, {"train": cfg.__dict__}).fit(train)
    w = _gauss(3, 2.0, 1.0)
    assert len(snaps) == 3 and abs(sum(w) - 1) < 1e-12 and w[1] > w[0] > 0
    final = read_checkpoint(tmp_path / FINAL)["state"]
    assert set(final) == set(PROMPTS)
    for n in PROMPTS:
        expected = snaps[0][n] * w[0]
        for e in (1, 2):
            expected = expected + snaps[e][n] * w[e]
        torch.testing.assert_close(final[n], expected, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(dict(m.own_parameters())[n].detach(), expected)
        assert not torch.allclose(expected, snaps[-1][n])  # not just the last epoch
    # the final checkpoint loads back strictly: nothing of the aggregate is a parameter
    again = build_method("promptsrc", hf_backbone, train.classnames, params)
    again.load_method_state_dict(final)
    assert again._gpa is None and m._gpa is None


@pytest.mark.parametrize("where", ["epoch", "step"])
def test_resume_with_the_aggregate_equals_uninterrupted(
    scenes, hf_backbone, tmp_path, monkeypatch, where
):
    from bimors.core.stop import TEST_HOOK, Stopped

    train, _, _ = _tasks(scenes, hf_backbone, shots=2)
    cfg = TrainConfig(epochs=4, batch_size=2, lr=0.05, warmup_epochs=1, deterministic=True)
    params = {**PARAMS, "gpa_mean": 3.0, "gpa_std": 2.0}

    def build(seed):
        torch.manual_seed(seed)
        return build_method("promptsrc", hf_backbone, train.classnames, params)

    Trainer(build(0), cfg, tmp_path / "a", {"train": cfg.__dict__}).fit(train)
    killed = Trainer(build(0), cfg, tmp_path / "b", {"train": cfg.__dict__})
    if where == "epoch":
        real = killed._write_epoch

        def write_then_die(row, history):
            real(row, history)
            if row["epoch"] == 2:
                raise Killed

        monkeypatch.setattr(killed, "_write_epoch", write_then_die)
        with pytest.raises(Killed):
            killed.fit(train)
    else:  # a stop signal inside epoch 3 (3 steps per epoch): last.pt holds a position
        monkeypatch.setenv(TEST_HOOK, "SIGTERM@7")
        with pytest.raises(Stopped):
            killed.fit(train)
        monkeypatch.delenv(TEST_HOOK)
    saved = read_checkpoint(tmp_path / "b" / LAST)["trainer"]
    assert (saved["in_epoch"] is None) == (where == "epoch")
    assert {k.removeprefix("gpa.") for k in saved["method"]} == set(PROMPTS)
    resumed = build(99)  # another init: prompts and aggregate must come from last.pt
    Trainer(resumed, cfg, tmp_path / "b", {"train": cfg.__dict__}).fit(train)
    a = read_checkpoint(tmp_path / "a" / FINAL)["state"]
    b = read_checkpoint(tmp_path / "b" / FINAL)["state"]
    assert set(a) == set(b) == set(PROMPTS)
    for n in a:
        assert torch.equal(a[n], b[n]), n


def test_gpa_refuses_weights_that_all_underflow(hf_backbone):
    m = build_method("promptsrc", hf_backbone, CLASSNAMES, {**PARAMS, "gpa_std": 0.01})
    with pytest.raises(ValueError, match="gpa_mean"):
        m.on_epoch_end(0, 2)  # mean 15: every density underflows to 0


def test_list_shows_promptsrc_and_its_preset_layers(capsys):
    from bimors.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert ", ivlp, promptsrc," in out
    assert "promptsrc: also protocols/cross_dataset, protocols/domain_gen, protocols/fewshot" in out


def test_preset_layers_follow_the_official_configs():
    from bimors.methods.presets import resolve_preset

    base, _ = resolve_preset("promptsrc", "base2new")
    assert base["method"]["prompt_depth_text"] == base["method"]["prompt_depth_vision"] == 9
    assert (base["method"]["gpa_mean"], base["method"]["gpa_std"]) == (15.0, 1.0)
    assert base["train"]["epochs"] == 20 and base["train"]["lr"] == 0.0025
    xd, _ = resolve_preset("promptsrc", "cross_dataset")
    assert (xd["method"]["prompt_depth_text"], xd["method"]["gpa_mean"]) == (3, 6.0)
    fs, _ = resolve_preset("promptsrc", "fewshot", shots=1)
    assert (fs["method"]["gpa_mean"], fs["method"]["gpa_std"], fs["train"]["epochs"]) == (
        30.0,
        30.0,
        50,
    )
    # the few-shot config's 45/5 is named for EuroSAT; only there, and only in few-shot
    euro, record = resolve_preset("promptsrc", "fewshot", "eurosat", shots=4)
    assert (euro["method"]["gpa_mean"], euro["method"]["gpa_std"]) == (45.0, 5.0)
    assert record.layers[-1] == "promptsrc/protocols/fewshot/datasets/eurosat"
    assert euro["train"]["epochs"] == 50
    b2n, _ = resolve_preset("promptsrc", "base2new", "eurosat")
    assert (b2n["method"]["gpa_mean"], b2n["method"]["gpa_std"]) == (15.0, 1.0)
    other, _ = resolve_preset("promptsrc", "fewshot", "resisc45")
    assert (other["method"]["gpa_mean"], other["method"]["gpa_std"]) == (30.0, 30.0)


def test_the_template_ensemble_is_float32_even_under_autocast(hf_backbone):
    """Encoded once, on the first training step: its precision must not depend on autocast."""
    m = build_method("promptsrc", hf_backbone, CLASSNAMES, PARAMS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = m.ensemble_features()
    with torch.no_grad():  # restated in float32, outside autocast
        prompts = [t.format(c) for t in TEMPLATES for c in CLASSNAMES]
        raw = hf_backbone.encode_text(hf_backbone.tokenize(prompts))
        ref = F.normalize(raw.view(len(TEMPLATES), len(CLASSNAMES), -1).mean(0), dim=-1)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref, rtol=1e-5, atol=1e-6)  # bf16 would be off by ~1e-2
