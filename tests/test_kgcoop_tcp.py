"""KgCoOp and TCP against restatements of their official forward and loss, and a tiny grid."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bimors.cli import main
from bimors.methods import build_method
from bimors.methods.presets import resolve_preset
from bimors.run.config import resolve_config

from .conftest import CLASSNAMES
from .test_experiments import env  # noqa: F401  (the session fixture of the CLI runs)


def _pixels(n=6, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _labels(n=6):
    return torch.arange(n) % len(CLASSNAMES)


def _official_text(backbone, phrase_ids, ctx, n_ctx):
    """The official TextEncoder on "<SOS> ctx <name>. <EOS>" over all 77 positions."""
    emb = backbone.embed_tokens(phrase_ids)
    prompts = torch.cat(
        [emb[:, :1], ctx.unsqueeze(0).expand(len(emb), -1, -1), emb[:, 1 + n_ctx :]], 1
    )
    return backbone.encode_prompts(prompts, backbone.eos_positions(phrase_ids))


# -- KgCoOp ----------------------------------------------------------------------------------
def test_kgcoop_matches_the_official_forward_loss_and_gradient(backbone):
    torch.manual_seed(0)
    m = build_method(
        "kgcoop", backbone, CLASSNAMES, {"template": "a centered satellite photo of {}."}
    )
    ids = backbone.tokenize([f"a photo of a {n}." for n in CLASSNAMES])
    torch.testing.assert_close(m.ctx.detach(), backbone.embed_tokens(ids)[0, 1:5])  # CTX_INIT
    with torch.no_grad():
        m.ctx.add_(0.3 * torch.randn_like(m.ctx))
    feats = backbone.encode_image(_pixels())
    # restated official CustomCLIP.forward and forward_backward
    ctx = m.ctx.detach().clone().requires_grad_(True)
    text = F.normalize(_official_text(backbone, ids, ctx, 4), dim=-1)
    hand_ids = backbone.tokenize([f"a centered satellite photo of {n}." for n in CLASSNAMES])
    with torch.no_grad():
        hand = F.normalize(backbone.encode_text(hand_ids), dim=-1)
    image = F.normalize(feats.pooled, dim=-1)
    logits_want = backbone.logit_scale * image @ text.t()
    score = 1.0 - torch.nn.CosineSimilarity(dim=1, eps=1e-07)(text, hand).mean()
    loss_want = F.cross_entropy(logits_want, _labels()) + 8.0 * score
    (grad_want,) = torch.autograd.grad(loss_want, ctx)

    m.train()
    logits = m(feats)
    loss = m.loss(logits, _labels())
    loss.backward()
    torch.testing.assert_close(logits, logits_want, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(loss, loss_want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(m.ctx.grad, grad_want, atol=1e-5, rtol=1e-4)
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["ctx"]
    m.eval()  # no knowledge term outside training
    with torch.no_grad():
        torch.testing.assert_close(
            m.loss(m(feats), _labels()), F.cross_entropy(logits_want, _labels())
        )


def test_kgcoop_weight_zero_is_coop_loss_and_bad_options_are_refused(hf_backbone):
    m = build_method("kgcoop", hf_backbone, CLASSNAMES, {"weight": 0.0})
    feats = hf_backbone.encode_image(_pixels())
    m.train()
    logits = m(feats)
    torch.testing.assert_close(m.loss(logits, _labels()), F.cross_entropy(logits, _labels()))
    with pytest.raises(Exception, match="weight"):
        build_method("kgcoop", hf_backbone, CLASSNAMES, {"weight": -1.0})
    with pytest.raises(Exception, match="template"):
        build_method("kgcoop", hf_backbone, CLASSNAMES, {"template": "no slot"})


def test_kgcoop_preset_follows_the_official_config():
    settings, record = resolve_preset("kgcoop", "base2new", "eurosat")
    method, train = settings["method"], settings["train"]
    assert (method["n_ctx"], method["ctx_init"], method["weight"]) == (4, "a photo of a", 8.0)
    assert method["template"] == "a centered satellite photo of {}."
    assert (train["epochs"], train["batch_size"], train["lr"]) == (100, 128, 0.002)
    assert record.layers == ["kgcoop", "kgcoop/datasets/eurosat"]
    cfg = resolve_config("kgcoop")
    assert cfg.method == "kgcoop" and cfg.train.epochs == 100


# -- a tiny base-to-new grid through the CLI -------------------------------------------------
def test_base_to_new_grid_runs_resumes_and_reports(env, tmp_path, capsys):  # noqa: F811
    runs = tmp_path / "runs"
    methods = ["kgcoop"]
    argv = [
        "-q",
        "run",
        "--protocol",
        "base2new",
        "--method",
        *methods,
        "--dataset",
        "synthetic",
        "--seeds",
        "1",
        "--root",
        str(env["scenes"]),
        "--out",
        str(runs),
        *env["sets"],
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for m in methods:
        assert (runs / "base2new" / "synthetic" / m / "seed1" / "results.jsonl").is_file()
    assert "| KgCoOp | " in out
    ckpt = runs / "base2new" / "synthetic" / methods[0] / "seed1" / "checkpoint.pt"
    stamp = ckpt.stat().st_mtime_ns
    assert main(argv) == 0  # finished cells are skipped, not retrained
    assert ckpt.stat().st_mtime_ns == stamp
    assert "KgCoOp" in (runs / "report.md").read_text()
