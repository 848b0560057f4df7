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
from .library_forward import library_text
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
def _grid(env, runs, method, extra=()):  # noqa: F811
    return [
        "-q", "run", "--protocol", "base2new", "--method", method, "--dataset", "synthetic",
        "--seeds", "1", "--root", str(env["scenes"]), "--out", str(runs), *env["sets"], *extra,
    ]  # fmt: skip


def test_base_to_new_grid_of_the_four_runs_resumes_and_reports(env, tmp_path, capsys):  # noqa: F811
    runs = tmp_path / "runs"
    # TCP injects before text block 1 of the tiny CLIP's 2 (official: 8 of 12), so it gets
    # its own invocation: the other methods have no method.layer field
    argvs = {
        "kgcoop": _grid(env, runs, "kgcoop"),
        "tcp": _grid(env, runs, "tcp", ["--set", "method.layer=1"]),
    }
    # IVLP and PromptSRC prompt 9 blocks of each tower officially; the tiny CLIP has 2
    depth = ["--set", "method.prompt_depth_text=2", "--set", "method.prompt_depth_vision=2"]
    for m in ("ivlp", "promptsrc"):
        argvs[m] = _grid(env, runs, m, depth)
    for argv in argvs.values():
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| TCP | " in out and "| PromptSRC | " in out
    stamps = {}
    for m in argvs:
        cell = runs / "base2new" / "synthetic" / m / "seed1"
        assert (cell / "results.jsonl").is_file()
        stamps[m] = (cell / "checkpoint.pt").stat().st_mtime_ns
    for argv in argvs.values():
        assert main(argv) == 0  # finished cells are skipped, not retrained
    for m, stamp in stamps.items():
        assert (
            runs / "base2new" / "synthetic" / m / "seed1" / "checkpoint.pt"
        ).stat().st_mtime_ns == stamp
    assert main(["-q", "report", str(runs)]) == 0
    report = capsys.readouterr().out + (runs / "report.md").read_text()
    for label in ("KgCoOp", "TCP", "IVLP", "PromptSRC"):
        assert f"| {label} | " in report, label


# -- TCP -------------------------------------------------------------------------------------
def test_tcp_matches_the_official_forward_loss_and_gradients(backbone):
    torch.manual_seed(0)
    m = build_method("tcp", backbone, CLASSNAMES, {"layer": 1})
    assert m.ctx.shape == (4, backbone.text_width)  # CTX_INIT False: 4 random vectors
    with torch.no_grad():
        m.ctx.add_(0.3 * torch.randn_like(m.ctx))
        for p in m.meta_net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    feats = backbone.encode_image(_pixels())
    ids = backbone.tokenize([f"X X X X {n}." for n in CLASSNAMES]).to(backbone.device)
    hand_ids = backbone.tokenize([f"a photo of a {n}." for n in CLASSNAMES])
    with torch.no_grad():
        hand = F.normalize(backbone.encode_text(hand_ids), dim=-1)
    # restated official PromptLearner.forward, TextEncoder and CustomCLIP.forward
    ctx = m.ctx.detach().clone().requires_grad_(True)
    mn = m.meta_net
    w1, b1, w2, b2 = (
        t.detach().clone().requires_grad_(True)
        for t in (mn.linear1.weight, mn.linear1.bias, mn.linear2.weight, mn.linear2.bias)
    )
    h = hand @ w1.t() + b1
    h = h * torch.sigmoid(1.702 * h)
    tokens = (h @ w2.t() + b2).reshape(len(CLASSNAMES), -1, backbone.text_width)
    emb = backbone.embed_tokens(ids)
    prompts = torch.cat([emb[:, :1], ctx.unsqueeze(0).expand(len(emb), -1, -1), emb[:, 5:]], 1)
    text = F.normalize(library_text(backbone, ids, prompts, {1: tokens}), dim=-1)
    image = F.normalize(feats.pooled, dim=-1)
    logits_want = backbone.logit_scale.detach() * image.detach() @ text.t()
    score = 1.0 - torch.nn.CosineSimilarity(dim=1, eps=1e-07)(text, hand).mean()
    loss_want = F.cross_entropy(logits_want, _labels()) + 8.0 * score
    grads_want = torch.autograd.grad(loss_want, [ctx, w1, b1, w2, b2])

    m.train()
    logits = m(feats)
    loss = m.loss(logits, _labels())
    loss.backward()
    torch.testing.assert_close(logits, logits_want, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(loss, loss_want, atol=1e-5, rtol=1e-5)
    got = [m.ctx.grad, mn.linear1.weight.grad, mn.linear1.bias.grad]
    got += [mn.linear2.weight.grad, mn.linear2.bias.grad]
    for g, w in zip(got, grads_want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {
        "ctx",
        *(
            f"meta_net.{k}"
            for k in ("linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias")
        ),
    }
    # the injection matters: without it (plain CoOp text) the features differ
    with torch.no_grad():
        assert not torch.allclose(m.class_text(), m.encode_class_prompts(m.ctx), atol=1e-3)
        m.reference_recipe = True  # all 77 positions: the truncated encoding is exact
        reference = m.class_text()
        m.reference_recipe = False
        torch.testing.assert_close(m.class_text(), reference, atol=1e-5, rtol=0)


def test_tcp_refuses_a_layer_the_text_encoder_lacks(hf_backbone):
    with pytest.raises(Exception, match=r"method.layer=8: .* blocks 0..1"):
        build_method("tcp", hf_backbone, CLASSNAMES)


def test_tcp_preset_follows_the_official_config_and_builds_dassls_adam():
    from bimors.engine.trainer import make_optimizer

    settings, _ = resolve_preset("tcp", "base2new", "patternnet")
    method, train = settings["method"], settings["train"]
    assert (method["n_ctx"], method["ctx_init"], method["layer"]) == (4, "", 8)
    assert (train["epochs"], train["batch_size"], train["lr"]) == (50, 32, 0.002)
    assert train["optimizer"] == "adam" and train["weight_decay"] == 0.0005
    cfg = resolve_config("tcp")
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg.train)
    assert type(opt) is torch.optim.Adam  # Dassl's adam: coupled L2 decay, not AdamW
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"], tuple(group["betas"])) == (
        0.002,
        5e-4,
        (0.9, 0.999),
    )
