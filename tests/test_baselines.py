"""The baselines: which parameters train, that CLIP never changes, gradients, state, and maths."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bimors.backbones.base import ImageFeatures
from bimors.methods import METHODS, build_method
from bimors.methods.applenet import context_redundancy
from bimors.methods.linear_probe import search_c
from bimors.methods.prograd import distillation_loss, project_conflicting

from .conftest import CLASSNAMES
from .library_forward import library_image, library_text
from .test_methods import _digest

SGD_METHODS = ["clip_adapter", "prograd", "maple", "applenet", "taskres"]
# The tiny CLIPs have 2 blocks per encoder; APPLeNet's gate gets 8 hidden units instead of 2, so
# that no draw of random weights (they differ between transformers releases) leaves it all dead.
PARAMS = {"maple": {"prompt_depth": 2}, "applenet": {"reduction": 4}}
NO_SCALER = torch.amp.GradScaler("cpu", enabled=False)
GATE = ["attention.0.weight", "attention.2.weight", "linear1.weight", "linear1.bias"]
META = ["linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"]
TRAINABLE = {
    "clip_adapter": {"adapter.0.weight", "adapter.2.weight"},
    "prograd": {"ctx"},
    "taskres": {"residual"},
    "maple": {
        "ctx",
        "proj.weight",
        "proj.bias",
        "compound_prompts_text.0",
        "compound_projections.0.weight",
        "compound_projections.0.bias",
    },
    "applenet": {
        "ctx",
        *(f"scale_proj.{i}.{w}" for i in range(2) for w in ("weight", "bias")),
        *(f"injection.{n}" for n in [*GATE, "linear2.weight", "linear2.bias"]),
        *(f"meta_net.{n}" for n in META),
    },
}


def _pixels(n=6, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _labels(n=6):
    return torch.arange(n) % len(CLASSNAMES)


def _step(method, pixels, labels):
    method.train()
    loss = method.loss(method(method.image_features(pixels)).float(), labels)
    method.backward(loss, NO_SCALER)
    return loss


def test_registry_holds_every_baseline():
    assert METHODS.names() == [
        "zeroshot",
        "coop",
        "cocoop",
        "bimors",
        "clip_adapter",
        "linear_probe",
        "prograd",
        "maple",
        "applenet",
        "kgcoop",
        "tcp",
        "ivlp",
        "promptsrc",
        "clip_lora",
        "tip_adapter",
        "tip_adapter_f",
        "taskres",
        "lp_pp",
        "clap",
    ]


@pytest.mark.parametrize("name", SGD_METHODS)
def test_a_step_trains_exactly_its_own_parameters_and_never_clip(backbone, name):
    torch.manual_seed(0)
    m = build_method(name, backbone, CLASSNAMES, PARAMS.get(name))
    trainable = {n for n, p in m.own_parameters() if p.requires_grad}
    assert trainable == TRAINABLE[name]
    assert set(m.method_state_dict()) == trainable
    before = _digest(backbone)
    opt = torch.optim.SGD(m.trainable_parameters(), lr=0.1)
    logits = m(m.image_features(_pixels()))
    assert logits.shape == (6, len(CLASSNAMES))
    opt.zero_grad()
    _step(m, _pixels(), _labels())
    for n, p in m.own_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {n}"
    opt.step()
    assert _digest(backbone) == before
    assert all(p.grad is None for p in backbone.parameters())


@pytest.mark.parametrize("name", SGD_METHODS)
def test_a_few_steps_lower_the_loss(hf_backbone, name):
    torch.manual_seed(0)
    m = build_method(name, hf_backbone, CLASSNAMES, PARAMS.get(name))
    opt = torch.optim.SGD(m.trainable_parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        losses.append(float(_step(m, _pixels(), _labels()).detach()))
        opt.step()
    # 1e-4: how fast depends on the tiny model's random init, which differs between releases
    assert losses[-1] < losses[0] - 1e-4, losses


@pytest.mark.parametrize("name", [*SGD_METHODS, "linear_probe"])
def test_state_round_trips_exactly(hf_backbone, name):
    torch.manual_seed(0)
    a = build_method(name, hf_backbone, CLASSNAMES, PARAMS.get(name))
    with torch.no_grad():
        for _, p in a.own_parameters():
            p.add_(0.05 * torch.randn_like(p))
        if name == "linear_probe":
            a.c.fill_(1.0)
    b = build_method(name, hf_backbone, CLASSNAMES, PARAMS.get(name))
    b.load_method_state_dict(a.method_state_dict())
    for (n, p), (_, q) in zip(a.own_parameters(), b.own_parameters(), strict=True):
        assert torch.equal(p, q), n
    a.eval(), b.eval()
    with torch.no_grad():
        assert torch.equal(a(a.image_features(_pixels())), b(b.image_features(_pixels())))


def test_only_deep_prompt_methods_have_trainable_image_features(hf_backbone):
    for name in METHODS.names():
        cls = METHODS.get(name)
        # MaPLe and IVLP prompt the image encoder; CLIP-LoRA adapts its attention
        assert cls.frozen_image_features == (
            name not in ("maple", "ivlp", "promptsrc", "clip_lora")
        ), name
    maple = build_method("maple", hf_backbone, CLASSNAMES, PARAMS["maple"])
    assert maple.image_features(_pixels(2)).pooled.requires_grad
    adapter = build_method("clip_adapter", hf_backbone, CLASSNAMES)
    assert not adapter.image_features(_pixels(2)).pooled.requires_grad


# -- CLIP-Adapter ----------------------------------------------------------------------------
def test_clip_adapter_equals_the_official_blend_on_raw_features(backbone):
    """Same logits and same gradients as the official adapter on CLIP's raw embedding."""
    torch.manual_seed(0)
    m = build_method("clip_adapter", backbone, CLASSNAMES)
    feats = backbone.encode_image(_pixels(3))
    raw = feats.projected  # the official adapter sees CLIP's unnormalised embedding
    x = F.relu(F.relu(raw @ m.adapter[0].weight.T) @ m.adapter[2].weight.T)
    image = F.normalize(0.2 * x + 0.8 * raw, dim=-1)
    prompts = backbone.tokenize([f"a photo of a {n}." for n in CLASSNAMES])
    text = F.normalize(backbone.encode_text(prompts), dim=-1)
    want = backbone.logit_scale * image @ text.T
    want_grads = torch.autograd.grad(F.cross_entropy(want, _labels(3)), m.trainable_parameters())
    got = m(feats)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
    grads = torch.autograd.grad(F.cross_entropy(got, _labels(3)), m.trainable_parameters())
    for g, w in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)
    assert m.adapter[0].weight.shape == (backbone.embed_dim // 4, backbone.embed_dim)


# -- ProGrad ---------------------------------------------------------------------------------
def test_projection_removes_only_the_conflicting_component():
    g, k = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 3.0, 0.0])
    out = project_conflicting(g, k)  # g . k < 0: the k-component goes
    torch.testing.assert_close(out, torch.tensor([1.0, 0.0, 0.5]))
    torch.testing.assert_close(project_conflicting(g, k, 0.5), torch.tensor([1.0, -1.0, 0.5]))
    torch.testing.assert_close(project_conflicting(g, -k), g)  # aligned: untouched
    torch.testing.assert_close(project_conflicting(g, torch.zeros(3)), g)
    a, b = torch.randn(40, 8), torch.randn(40, 8)
    p = project_conflicting(a, b)
    if float((a * b).sum()) < 0:
        assert abs(float((p * b).sum())) < 1e-4


def test_distillation_loss_is_kl_plus_teacher_entropy_times_t_squared():
    s, t, temp = torch.randn(4, 5), torch.randn(4, 5), 2.0
    p = F.softmax(t / temp, dim=-1)
    entropy = -(p * p.log()).sum(-1).mean()
    kl = F.kl_div(F.log_softmax(s / temp, -1), p, reduction="batchmean")
    torch.testing.assert_close(distillation_loss(s, t, temp), (kl + entropy) * temp**2)


def test_prograd_context_puts_the_phrase_last_and_zeros_first(backbone):
    m = build_method("prograd", backbone, CLASSNAMES)
    phrase = backbone.embed_tokens(backbone.tokenize(["a photo of a"]))[0, 1:5]
    assert m.ctx.shape == (16, backbone.text_width)
    torch.testing.assert_close(m.ctx[12:].detach(), phrase)
    assert not m.ctx[:12].any()


def test_prograd_teacher_is_zero_shot_clip_and_backward_projects(hf_backbone):
    torch.manual_seed(0)
    m = build_method("prograd", hf_backbone, CLASSNAMES)
    zs = build_method("zeroshot", hf_backbone, CLASSNAMES)
    with torch.no_grad():
        m.ctx.add_(0.5 * torch.randn_like(m.ctx))
    feats = hf_backbone.encode_image(_pixels())
    torch.testing.assert_close(m.teacher_logits(feats), zs(feats), atol=1e-5, rtol=1e-5)
    m.train()
    logits = m(feats)
    ce = F.cross_entropy(logits, _labels())
    kd = distillation_loss(logits, zs(feats).detach())
    (g_ce,) = torch.autograd.grad(ce, m.ctx, retain_graph=True)
    (g_kd,) = torch.autograd.grad(kd, m.ctx)
    loss = m.loss(m(feats), _labels())
    torch.testing.assert_close(loss, ce)
    m.backward(loss, NO_SCALER)
    torch.testing.assert_close(m.ctx.grad, project_conflicting(g_ce, g_kd), atol=1e-6, rtol=1e-5)
    m.eval()  # no teacher term outside training: a plain backward
    m.ctx.grad = None
    m.backward(m.loss(m(feats), _labels()), NO_SCALER)
    torch.testing.assert_close(m.ctx.grad, g_ce, atol=1e-6, rtol=1e-5)


# -- MaPLe -----------------------------------------------------------------------------------
def test_maple_prompt_keeps_the_rest_of_the_phrase_and_couples_the_encoders(backbone):
    m = build_method("maple", backbone, CLASSNAMES, PARAMS["maple"])
    ids = backbone.tokenize([f"a photo of a {n}." for n in CLASSNAMES])
    assert torch.equal(m.prompts.token_ids, ids)
    torch.testing.assert_close(m.ctx.detach(), backbone.embed_tokens(ids)[0, 1:3])
    first, deeper = m.visual_prompts()
    assert first.shape == (2, backbone.vision_width) and len(deeper) == 1
    torch.testing.assert_close(first, m.ctx @ m.proj.weight.T + m.proj.bias)
    with pytest.raises(ValueError, match=r"prompt_depth=9 .* set prompt_depth <= 2"):
        build_method("maple", backbone, CLASSNAMES)


def test_maple_deep_text_prompts_change_the_class_features(hf_backbone):
    m = build_method("maple", hf_backbone, CLASSNAMES, PARAMS["maple"])
    with torch.no_grad():
        before = m.encode_class_prompts(m.ctx, list(m.compound_prompts_text))
        m.compound_prompts_text[0].add_(torch.randn_like(m.compound_prompts_text[0]))
        after = m.encode_class_prompts(m.ctx, list(m.compound_prompts_text))
        m.reference_recipe = True  # the 77-token reference path agrees with the truncated one
        reference = m.encode_class_prompts(m.ctx, list(m.compound_prompts_text))
    assert not torch.allclose(before, after, atol=1e-3)
    torch.testing.assert_close(after, reference, atol=1e-5, rtol=0)


def test_maple_logits_loss_and_gradients_match_the_libraries_forward(backbone):
    # Restated official CustomCLIP.forward (trainers/maple.py) on the libraries' own forwards,
    # the edits made by hooks: the projected context appended before ln_pre, each block's
    # projected text prompt replacing it, the text prompts in the slots after SOS.
    torch.manual_seed(0)
    m = build_method("maple", backbone, CLASSNAMES, PARAMS["maple"])
    params = [p for _, p in m.own_parameters()]
    with torch.no_grad():  # off the identical inits, so a swapped projection would show
        for p in params:
            p.add_(0.1 * torch.randn_like(p))
    pixels, labels = _pixels(4), _labels(4)
    logits = m(m.image_features(pixels))
    grads = torch.autograd.grad(F.cross_entropy(logits, labels), params)

    deep = m.compound_prompts_text[0]
    first, projected = m.proj(m.ctx), m.compound_projections[0](deep)
    img = F.normalize(library_image(backbone, pixels, first, [projected]), dim=-1)
    ids = backbone.tokenize([f"a photo of a {n}." for n in CLASSNAMES]).to(backbone.device)
    emb = backbone.embed_tokens(ids)
    ctx = m.ctx.unsqueeze(0).expand(len(emb), -1, -1)
    prompts = torch.cat([emb[:, :1], ctx, emb[:, 1 + m.n_ctx :]], 1)
    text = F.normalize(library_text(backbone, ids, prompts, {1: deep}), dim=-1)
    want = backbone.logit_scale * img @ text.t()
    want_grads = torch.autograd.grad(F.cross_entropy(want, labels), params)
    torch.testing.assert_close(logits, want, rtol=1e-5, atol=1e-5)
    for (name, _), g, w in zip(m.own_parameters(), grads, want_grads, strict=True):
        assert g.abs().sum() > 0, name
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6, msg=name)


# -- APPLeNet --------------------------------------------------------------------------------
def test_applenet_context_matches_the_official_equations(hf_backbone):
    torch.manual_seed(0)
    m = build_method("applenet", hf_backbone, CLASSNAMES)
    feats = hf_backbone.encode_image(_pixels(3))
    with torch.no_grad():
        got = m.conditioned_context(feats)
        multi = [lin(feats.layer_means[:, i]) for i, lin in enumerate(m.scale_proj)]
        v = torch.stack([*multi, feats.pooled], 1).mean(1)  # AdaptiveAvgPool over the scales
        inj = m.injection

        def gate(x):
            h = F.relu(x @ inj.attention[0].weight.T)
            return torch.sigmoid(h @ inj.attention[2].weight.T)

        h1 = torch.cat([gate(v) * v, v], -1) @ inj.linear1.weight.T + inj.linear1.bias
        bias = torch.cat([gate(h1) * v, v], -1) @ inj.linear2.weight.T + inj.linear2.bias
        mn = m.meta_net
        hidden = F.relu(bias @ mn.linear1.weight.T + mn.linear1.bias)
        alpha = hidden @ mn.linear2.weight.T + mn.linear2.bias
        want = m.ctx.unsqueeze(0) + alpha.unsqueeze(1)  # the same shift for every token
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_context_redundancy_is_the_official_penalty_where_it_is_defined():
    s = torch.tensor([[[2.0, 0.0], [0.0, 0.5]]])  # det(S S^T - I) = 3 * -0.75 < 0
    torch.testing.assert_close(context_redundancy(s), torch.tensor(math.log10(2.25)))
    s, temp = torch.tensor([[[4.0, 0.0], [0.0, 1.0]]]), 2.0  # det(S S^T / T^3 - I / T) < 0
    want = torch.linalg.det((s @ s.transpose(1, 2) / temp**3) - torch.eye(2) / temp)
    assert float(want[0]) < 0
    torch.testing.assert_close(context_redundancy(s, temp), torch.log10(-want[0]))
    positive = torch.tensor([[[0.1, 0.0], [0.0, 0.1]]])  # det > 0: the official log is NaN
    assert torch.isfinite(context_redundancy(positive))


def test_applenet_needs_layerwise_features(hf_backbone, monkeypatch):
    m = build_method("applenet", hf_backbone, CLASSNAMES)
    feats = hf_backbone.encode_image(_pixels(2))
    with pytest.raises(ValueError, match="mean token state of each of the 2 vision blocks"):
        m(ImageFeatures(feats.pooled, feats.tokens))
    monkeypatch.setattr(hf_backbone, "vision_depth", 0)
    with pytest.raises(ValueError, match="no ViT image tower"):
        build_method("applenet", hf_backbone, CLASSNAMES)


def test_applenet_loss_adds_the_weighted_penalty(hf_backbone):
    torch.manual_seed(0)
    m = build_method("applenet", hf_backbone, CLASSNAMES)
    m.train()
    logits = m(hf_backbone.encode_image(_pixels()))
    ctx = m._shifted_ctx.detach().clone()
    got = m.loss(logits, _labels())
    want = F.cross_entropy(logits, _labels()) + 0.05 * context_redundancy(ctx)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(m.loss(logits, _labels()), F.cross_entropy(logits, _labels()))


# -- linear probe ----------------------------------------------------------------------------
def test_c_search_follows_the_official_grid_then_bisection():
    calls = []

    def score(c):  # accuracy peaks at C = 10**0.3
        calls.append(c)
        return c, -abs(math.log10(c) - 0.3)

    c, model = search_c(score, [1e6, 1e4, 1e2, 1.0, 1e-2], steps=8)
    assert calls[:5] == [1e6, 1e4, 1e2, 1.0, 1e-2]
    assert calls[5:7] == pytest.approx([0.1, 10.0])  # C_peak / 10 and 10 C_peak
    assert len(calls) == 5 + 2 * 8 and model == c
    assert abs(math.log10(c) - 0.3) < 0.05
    # ties: the grid's first best, then the left end
    c, _ = search_c(lambda c: (c, 1.0), [1e2, 1.0], steps=1)
    assert c == pytest.approx(10.0)


def _clusters(dim, per_class=6, seed=0):
    centres = torch.randn(len(CLASSNAMES), dim, generator=torch.Generator().manual_seed(99)) * 3
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(CLASSNAMES)).repeat_interleave(per_class)
    raw = centres[labels] + torch.randn(len(labels), dim, generator=gen)
    norm = raw.norm(dim=-1, keepdim=True)
    return ImageFeatures(raw / norm, torch.zeros(len(labels), 0, 1), norm), labels


def test_linear_probe_fits_like_sklearn_on_raw_features(hf_backbone):
    from sklearn.linear_model import LogisticRegression

    m = build_method("linear_probe", hf_backbone, CLASSNAMES, {"search_steps": 2})
    assert m.trainable_parameters() == []
    with pytest.raises(RuntimeError, match="not fitted"):
        m(_clusters(hf_backbone.embed_dim)[0])
    train, y = _clusters(hf_backbone.embed_dim, seed=0)
    val, yv = _clusters(hf_backbone.embed_dim, per_class=2, seed=1)
    info = m.fit_features(train, y, val, yv)
    clf = LogisticRegression(solver="lbfgs", max_iter=1000, C=info["C"])
    clf.fit(train.projected.double().numpy(), y.numpy())
    torch.testing.assert_close(m.weight, torch.as_tensor(clf.coef_, dtype=torch.float32))
    test, _ = _clusters(hf_backbone.embed_dim, per_class=3, seed=2)
    with torch.no_grad():
        pred = m(test).argmax(-1).numpy()
    assert (pred == clf.predict(test.projected.double().numpy())).all()
    assert float(m.c) == pytest.approx(info["C"], rel=1e-6) and info["val_acc"] == 100.0
    with pytest.raises(ValueError, match="validation split"):
        m.fit_features(train, y)


def test_linear_probe_scores_a_subset_and_falls_back_on_unseen_classes(hf_backbone):
    m = build_method("linear_probe", hf_backbone, CLASSNAMES, {"search_steps": 1})
    train, y = _clusters(hf_backbone.embed_dim)
    m.fit_features(train, y, train, y)
    with torch.no_grad():
        full = m(train)
        m.set_classnames([CLASSNAMES[3], CLASSNAMES[1]])
        torch.testing.assert_close(m(train), full[:, [3, 1]])
        new = ["forest", "harbor"]
        m.set_classnames(new)
        zs = build_method("zeroshot", hf_backbone, new)
        torch.testing.assert_close(m(train), zs(train), atol=1e-5, rtol=1e-5)
    strict = build_method("linear_probe", hf_backbone, CLASSNAMES, {"unseen": "error"})
    with pytest.raises(ValueError, match="fitted without classes"):
        strict.set_classnames(["forest"])
