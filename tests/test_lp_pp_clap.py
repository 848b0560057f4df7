"""LP++ and CLAP (issue 22) against compact restatements of their official fits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.linalg import eigh
from torch import nn

from bimors.backbones.base import ImageFeatures
from bimors.cli import main
from bimors.methods import build_method
from tests.conftest import CLASSNAMES
from tests.test_baselines import _clusters
from tests.test_experiments import env  # noqa: F401  (fixture)

TOL = dict(atol=1e-4, rtol=1e-4)


def _raw_text(backbone, template="a photo of a {}.", names=CLASSNAMES):
    # CLIP's plain text path: the projected (unnormalised) EOT embedding of each prompt
    with torch.no_grad():
        ids = backbone.tokenize([template.format(n) for n in names]).to(backbone.device)
        return backbone.encode_text(ids).float()


# -- LP++: FewShot-CLIP-Strong-Baseline methods/linear_probe_p2.py, methods/utils.py ------------
def _official_lp_pp(f, y, vf, vy, clip_weights, epochs, bias0):
    """``LinearProbe_P2.forward`` restated; ``clip_weights`` is (E, K) as officially."""
    n, k = len(y), int(y.max()) + 1
    one_hot = torch.zeros(1, n, k).scatter_(-1, y.view(1, n, 1), 1)
    centroids = one_hot.transpose(1, 2).bmm(f.unsqueeze(0))  # compute_centroids: sums
    clf = nn.Linear(f.shape[1], k, bias=True)
    clf.weight.data = centroids[0].clone()
    clf.bias.data = bias0.clone()
    lr_temp = (4 * n) / max(eigh((f.T @ f).double().numpy())[0])
    z = (f @ clip_weights).unsqueeze(0)
    alpha_tilde = (one_hot * z / one_hot.sum(-2, keepdim=True)).sum(1)[0] * (n // k)
    init = torch.mean(250 / (n // k) * alpha_tilde)
    alpha_vec = (init * torch.ones(1, k)).requires_grad_(True)
    lr_alpha = n / (max(torch.sum(torch.pow(f @ clip_weights, 2), dim=0)) * 4)
    opt = torch.optim.SGD(clf.parameters(), lr_temp, momentum=0.9)
    best_acc, best = 0.0, None
    for epoch in range(epochs):
        logits = clf(f) + torch.ones(n, 1) @ alpha_vec * (f @ clip_weights)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (epoch + 1) % 10 == 0:
            alpha_vec.data -= lr_alpha * alpha_vec.grad.data
        with torch.no_grad():
            lv = clf(vf) + torch.ones(len(vy), 1) @ alpha_vec * (vf @ clip_weights)
            acc = np.mean(lv.argmax(dim=1).numpy() == vy.numpy()) * 100.0
        if acc >= best_acc:
            best_acc = acc
            best = (clf.weight.detach().clone(), clf.bias.detach().clone(), alpha_vec.detach()[0])
    return best, best_acc


def _bias0(dim, k=5, seed=1):  # 5: len(CLASSNAMES)
    # nn.Linear's default bias draw, from the method's seeded generator
    b = 1.0 / dim**0.5
    return torch.empty(k).uniform_(-b, b, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("epochs", [30, 300])
def test_lp_pp_fits_like_the_official_loop(backbone, epochs):
    m = build_method("lp_pp", backbone, CLASSNAMES, {"train_epoch": epochs})
    assert m.trainable_parameters() == []
    train, y = _clusters(backbone.embed_dim, seed=0)
    val, yv = _clusters(backbone.embed_dim, per_class=2, seed=1)
    with pytest.raises(RuntimeError, match="not fitted"):
        m(train)
    with pytest.raises(ValueError, match="validation split"):
        m.fit_features(train, y)
    info = m.fit_features(train, y, val, yv)
    text = F.normalize(_raw_text(backbone), dim=-1)
    (w, b, a), acc = _official_lp_pp(
        train.pooled, y, val.pooled, yv, text.t(), epochs, _bias0(backbone.embed_dim)
    )
    tol = TOL if epochs <= 30 else dict(atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(m.weight.detach(), w, **tol)
    torch.testing.assert_close(m.bias.detach(), b, **tol)
    torch.testing.assert_close(m.alpha.detach(), a, **tol)
    assert info["best_val_acc"] == pytest.approx(acc)
    test, _ = _clusters(backbone.embed_dim, per_class=3, seed=2)
    with torch.no_grad():
        got = m(test)
        want = (
            test.pooled @ w.t()
            + b
            + torch.ones(len(got), 1) @ a.unsqueeze(0) * (test.pooled @ text.t())
        )
        torch.testing.assert_close(got, want, **tol)
        # a subset of the fitted classes keeps its rows; unseen classes: zero-shot CLIP
        m.set_classnames([CLASSNAMES[3], CLASSNAMES[1]])
        assert m.fallback is None
        torch.testing.assert_close(m(test), got[:, [3, 1]], **tol)
        m.set_classnames(["forest", "harbor"])
        assert m.fallback == "zeroshot"
        zs = build_method("zeroshot", backbone, ["forest", "harbor"])
        torch.testing.assert_close(m(test), zs(test), **TOL)
    with pytest.raises(Exception, match="fitted without classes"):
        build_method("lp_pp", backbone, CLASSNAMES, {"unseen": "error"}).set_classnames(["forest"])


@pytest.mark.parametrize(
    "wrong", [{"alpha_every": 9}, {"alpha_scale": 200.0}, {"momentum": 0.0}, {"seed": 2}]
)
def test_lp_pp_a_wrong_setting_is_caught(hf_backbone, wrong):
    m = build_method("lp_pp", hf_backbone, CLASSNAMES, {"train_epoch": 30, **wrong})
    train, y = _clusters(hf_backbone.embed_dim, seed=0)
    val, yv = _clusters(hf_backbone.embed_dim, per_class=2, seed=1)
    m.fit_features(train, y, val, yv)
    text = F.normalize(_raw_text(hf_backbone), dim=-1)
    (w, b, a), _ = _official_lp_pp(
        train.pooled, y, val.pooled, yv, text.t(), 30, _bias0(hf_backbone.embed_dim)
    )
    got = torch.cat([m.weight.detach().flatten(), m.bias.detach(), m.alpha.detach()])
    assert not torch.allclose(got, torch.cat([w.flatten(), b, a]), **TOL)


# -- CLAP: jusiro/CLAP trainers/adapters.py, configs/trainers/SGD_lr1e-1_B256_ep300.yaml ---------
def _official_clap(
    raw, y, base, scale, epochs, lr=0.1, bs=256, seed=1, constraint=True, adapt=False, images=None
):
    """``ADAPTER.train`` with INIT=ZS restated on raw image features.

    ``raw``/``y`` are the feature bank (every augmented view of every image);
    ``images`` is the number of images, whose loader sets the batches per epoch
    (``len(self.train_loader_x)``); default: one view each.
    """

    def forward_lp(x, p):
        return x / x.norm(dim=-1, keepdim=True) @ (p / p.norm(dim=-1, keepdim=True)).t() * scale

    protos = nn.Parameter(base.clone())
    with torch.no_grad():
        oh = F.one_hot(y).float()
        lam = torch.diag(torch.softmax(forward_lp(raw, base), -1).t() @ oh) / oh.sum(0)
    rho = torch.zeros_like(lam)
    opt = torch.optim.SGD([protos], lr=lr, momentum=0.9, weight_decay=0.0, dampening=0)
    succ = torch.optim.lr_scheduler.CosineAnnealingLR(opt, float(epochs))
    # Dassl ConstantWarmupScheduler(successor, warmup_epoch=1, cons_lr=1e-5)
    warm_last = 0
    for g in opt.param_groups:
        g["lr"] = 1e-5
    n_img = len(y) if images is None else images
    n_batches = len(torch.utils.data.DataLoader(range(n_img), bs, drop_last=n_img >= bs))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        idx = torch.randperm(len(y), generator=gen)
        feats, labels = raw[idx], y[idx]
        for bi in range(n_batches):
            x, t = feats[bi * bs : (bi + 1) * bs], labels[bi * bs : (bi + 1) * bs]
            loss = F.cross_entropy(forward_lp(x, protos), t)
            if constraint:
                loss = loss + torch.mean(lam * (protos - base).pow(2).sum(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        if warm_last >= 1:
            succ.step()
        else:
            warm_last += 1
            for g, v in zip(opt.param_groups, succ.get_last_lr(), strict=True):
                g["lr"] = v
        if adapt:  # outer_step's PHR gradient and penalty update
            with torch.no_grad():
                h = (protos - base).pow(2).sum(-1)
                x = lam + rho * h
                lam, rho = torch.where(x >= 0, x, torch.zeros_like(h)), h
    return protos.detach()


@pytest.mark.parametrize("opts", [{}, {"adaptive": True}, {"constraint": False}, {"batch_size": 8}])
def test_clap_fits_like_the_official_loop(backbone, opts):
    epochs = 12
    m = build_method("clap", backbone, CLASSNAMES, {"epochs": epochs, "lr": 0.5, **opts})
    assert m.trainable_parameters() == []
    train, y = _clusters(backbone.embed_dim, seed=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        m(train)
    m.fit_features(train, y)
    base = _raw_text(backbone)
    raw = train.pooled * train.norm  # the official forward normalises CLIP's raw embedding
    scale = backbone.logit_scale.float()
    want = _official_clap(
        raw,
        y,
        base,
        scale,
        epochs,
        lr=0.5,
        bs=opts.get("batch_size", 256),
        constraint=opts.get("constraint", True),
        adapt=opts.get("adaptive", False),
    )
    torch.testing.assert_close(m.prototypes.detach(), want, **TOL)
    assert not torch.allclose(want, base, **TOL)  # the fit moved the prototypes
    test, _ = _clusters(backbone.embed_dim, per_class=3, seed=2)
    with torch.no_grad():
        got = m(test)
        pn = want / want.norm(dim=-1, keepdim=True)
        torch.testing.assert_close(got, scale * test.pooled @ pn.t(), **TOL)
        # new classes keep their zero-shot prototypes, fitted ones theirs
        m.set_classnames([CLASSNAMES[2], "forest"])
        assert m.fallback is None
        zs = build_method("zeroshot", backbone, [CLASSNAMES[2], "forest"])(test)
        torch.testing.assert_close(m(test)[:, 0], got[:, 2], **TOL)
        torch.testing.assert_close(m(test)[:, 1], zs[:, 1], **TOL)


@pytest.mark.parametrize("bs", [8, 256])
def test_clap_fits_the_official_bank_of_augmented_views(backbone, bs):
    # epochs_aumentation views of each image form one bank: multipliers over the whole bank,
    # each epoch the first len(train_loader) batches (those of N images) of the shuffled bank
    from bimors.methods.fit_views import mean_of_views

    m = build_method("clap", backbone, CLASSNAMES, {"epochs": 6, "lr": 0.5, "batch_size": bs})
    views, y = zip(*(_clusters(backbone.embed_dim, seed=s) for s in (0, 3, 4)), strict=True)
    assert all(torch.equal(y[0], t) for t in y)
    info = m.fit_features(mean_of_views(views), y[0], views=list(views))
    raw = torch.cat([v.pooled * v.norm for v in views])
    scale = backbone.logit_scale.float()
    want = _official_clap(
        raw, y[0].repeat(3), _raw_text(backbone), scale, 6, lr=0.5, bs=bs, images=len(y[0])
    )
    torch.testing.assert_close(m.prototypes.detach(), want, **TOL)
    assert (info["train_images"], info["bank"]) == (len(y[0]), 3 * len(y[0]))
    # one view per image is not the same fit
    single = build_method("clap", backbone, CLASSNAMES, {"epochs": 6, "lr": 0.5, "batch_size": bs})
    single.fit_features(views[0], y[0])
    assert not torch.allclose(single.prototypes, m.prototypes, **TOL)


@pytest.mark.parametrize("wrong", [{"lr": 0.4}, {"warmup_lr": 1e-3}, {"momentum": 0.5}])
def test_clap_a_wrong_setting_is_caught(hf_backbone, wrong):
    m = build_method("clap", hf_backbone, CLASSNAMES, {"epochs": 12, "lr": 0.5, **wrong})
    train, y = _clusters(hf_backbone.embed_dim, seed=0)
    m.fit_features(train, y)
    raw, scale = train.pooled * train.norm, hf_backbone.logit_scale.float()
    want = _official_clap(raw, y, _raw_text(hf_backbone), scale, 12, lr=0.5)
    assert not torch.allclose(m.prototypes.detach(), want, **TOL)


def test_clap_default_schedule_is_the_official_one():
    from bimors.methods.clap import CLAPConfig, clap_lr

    cfg = CLAPConfig()
    assert (cfg.lr, cfg.epochs, cfg.batch_size, cfg.momentum) == (0.1, 300, 256, 0.9)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    succ = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 300.0)
    lrs = [1e-5, succ.get_last_lr()[0]]  # the warm-up epoch, then the cosine from its start
    for _ in range(298):
        opt.step()  # a real loop's order; stepping the schedule alone warns
        succ.step()
        lrs.append(succ.get_last_lr()[0])
    assert [clap_lr(cfg, e) for e in range(300)] == pytest.approx(lrs, rel=1e-9, abs=1e-12)


# -- the feature cache and the experiment runner --------------------------------------------
@pytest.mark.parametrize("name", ["lp_pp", "clap"])
def test_fitted_methods_score_the_same_from_the_feature_cache(backbone, scenes, tmp_path, name):
    from bimors.engine.feature_cache import FeatureCache
    from bimors.engine.features import CachedFeatures, FeatureSource
    from tests.test_feature_cache import _data, _logits

    data = _data(scenes, backbone, train=False)
    params = {"lp_pp": {"train_epoch": 20}, "clap": {"epochs": 3}}[name]
    m = build_method(name, backbone, data.classnames, params)
    n, e = 2 * len(data.classnames), backbone.embed_dim
    pooled = F.normalize(torch.randn(n, e, generator=torch.Generator().manual_seed(0)), dim=-1)
    feats = ImageFeatures(pooled, pooled.new_empty(n, 0, 0), torch.ones(n, 1))
    labels = torch.arange(n) % len(data.classnames)
    m.fit_features(feats, labels, feats, labels)
    cached, plain = CachedFeatures(FeatureCache(tmp_path)), FeatureSource()
    with torch.no_grad():
        for a, b in zip(cached.eval_loader(m, data, 4), plain.eval_loader(m, data, 4), strict=True):
            assert "pixels" not in a and "pixels" in b
            torch.testing.assert_close(_logits(m, cached, a, data), _logits(m, plain, b, data))
    assert list(tmp_path.rglob("*.safetensors"))


@pytest.mark.parametrize(
    "method,sets", [("lp_pp", ["method.train_epoch=20"]), ("clap", ["method.epochs=3"])]
)
def test_base_to_new_run_reports(env, tmp_path, capsys, method, sets):  # noqa: F811
    runs = tmp_path / "runs"
    argv = ["-q", "run", "--protocol", "base2new", "--method", method, "--dataset", "synthetic"]
    argv += ["--seeds", "1", "--root", str(env["scenes"]), "--out", str(runs), *env["sets"]]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    folder = runs / "base2new" / "synthetic" / method / "seed1"
    rows = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
    assert rows and (runs / "report.md").is_file()
    label = {"lp_pp": "LP++", "clap": "CLAP"}[method]
    assert label in capsys.readouterr().out
    new = [r for r in rows if r.get("split") == "new"]
    assert new and all(bool(r.get("fallback")) == (method == "lp_pp") for r in new)


def test_both_methods_are_listed(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "lp_pp" in out and "clap" in out
