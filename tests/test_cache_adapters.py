"""Cache and feature-based adapters of issue 22 against restated official maths."""

from __future__ import annotations

import json

import pytest
import torch

from bimors.cli import main
from bimors.methods import build_method
from tests.conftest import CLASSNAMES
from tests.test_baselines import _clusters
from tests.test_experiments import env  # noqa: F401  (fixture)


def _official_tip(test, keys, onehot, text, alpha, beta, scale=100.0):
    # Tip-Adapter main.py: clip_logits + cache_logits * alpha (scale: CLIP's 100)
    affinity = test @ keys.t()
    cache = ((-1) * (beta - beta * affinity)).exp() @ onehot
    return scale * test @ text.t() + cache * alpha


def _official_search(test, labels, keys, onehot, clip_logits, scale, step):
    betas = [i * (scale[0] - 0.1) / step[0] + 0.1 for i in range(step[0])]
    alphas = [i * (scale[1] - 0.1) / step[1] + 0.1 for i in range(step[1])]
    best_acc, best_b, best_a = 0.0, 0.0, 0.0
    for b in betas:
        for a in alphas:
            cache = ((-1) * (b - b * (test @ keys.t()))).exp() @ onehot
            acc = 100.0 * float(((clip_logits + cache * a).argmax(-1) == labels).float().mean())
            if acc > best_acc:
                best_acc, best_b, best_a = acc, b, a
    return best_a, best_b, best_acc


def test_tip_adapter_matches_the_official_cache_and_search(backbone):
    m = build_method(
        "tip_adapter", backbone, CLASSNAMES, {"search_scale": [7, 3], "search_step": [20, 6]}
    )
    assert m.trainable_parameters() == []
    train, y = _clusters(backbone.embed_dim, seed=0)
    with pytest.raises(RuntimeError, match="empty cache"):
        m(train)
    val, yv = _clusters(backbone.embed_dim, per_class=2, seed=1)
    with pytest.raises(ValueError, match="validation split"):
        m.fit_features(train, y)
    info = m.fit_features(train, y, val, yv)
    with torch.no_grad():
        text = m.class_text().float()
    onehot = torch.nn.functional.one_hot(y, len(CLASSNAMES)).float()
    keys = train.pooled.float()
    scale = float(backbone.logit_scale)
    clip_val = scale * val.pooled @ text.t()
    a, b, acc = _official_search(val.pooled, yv, keys, onehot, clip_val, [7, 3], [20, 6])
    assert info["hp_split"] == "val" and info["alpha"] == pytest.approx(a)
    assert info["beta"] == pytest.approx(b) and info["val_acc"] == pytest.approx(acc)
    test, _ = _clusters(backbone.embed_dim, per_class=3, seed=2)
    with torch.no_grad():
        got = m(test)
    want = _official_tip(test.pooled, keys, onehot, text, a, b, scale)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    # a subset reorders columns; unseen classes get no cache term (zero-shot alone)
    with torch.no_grad():
        m.set_classnames([CLASSNAMES[3], CLASSNAMES[1]])
        torch.testing.assert_close(m(test), got[:, [3, 1]], atol=1e-4, rtol=1e-4)
        m.set_classnames(["forest", "harbor"])
        zs = build_method("zeroshot", backbone, ["forest", "harbor"])
        torch.testing.assert_close(m(test), zs(test), atol=1e-4, rtol=1e-4)
    # the cache's size comes back from a checkpoint
    fresh = build_method("tip_adapter", backbone, CLASSNAMES)
    fresh.load_state_dict(build_method("tip_adapter", backbone, CLASSNAMES).state_dict())
    m.set_classnames(CLASSNAMES)
    fresh.load_state_dict(m.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh(test), got, atol=1e-4, rtol=1e-4)


def test_tip_adapter_without_search_keeps_the_initial_values(hf_backbone):
    m = build_method("tip_adapter", hf_backbone, CLASSNAMES, {"search": False})
    train, y = _clusters(hf_backbone.embed_dim, seed=0)
    info = m.fit_features(train, y)
    assert info == {
        "train_images": len(y),
        "hp_split": "none",
        "alpha": pytest.approx(1.17),
        "beta": 1.0,
    }


@pytest.mark.parametrize("method", ["tip_adapter", "tip_adapter_f"])
def test_base_to_new_run_resumes_and_reports(env, tmp_path, capsys, method):  # noqa: F811
    runs = tmp_path / "runs"
    argv = [
        "-q",
        "run",
        "--protocol",
        "base2new",
        "--method",
        method,
        "--dataset",
        "synthetic",
        "--seeds",
        "1",
        "--root",
        str(env["scenes"]),
        "--out",
        str(runs),
        *env["sets"],
        "--set",
        "method.search_step=[5,3]",
    ]
    assert main(argv) == 0
    folder = runs / "base2new" / "synthetic" / method / "seed1"
    text = (folder / "results.jsonl").read_text()
    assert (runs / "report.md").is_file() and "Tip-Adapter" in capsys.readouterr().out
    stamp = (folder / "checkpoint.pt").stat().st_mtime_ns
    assert main(argv) == 0
    assert (folder / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert [json.loads(x) for x in text.splitlines()]


def test_tip_adapter_f_trains_keys_with_the_official_loss(hf_backbone):
    cfg = {"search_step": [4, 3], "train_epoch": 3, "batch_size": 8, "lr": 0.01}
    m = build_method("tip_adapter_f", hf_backbone, CLASSNAMES, cfg)
    train, y = _clusters(hf_backbone.embed_dim, seed=0)
    val, yv = _clusters(hf_backbone.embed_dim, per_class=2, seed=1)
    with pytest.raises(ValueError, match="validation split"):
        m.fit_features(train, y)
    info = m.fit_features(train, y, val, yv)
    assert info["hp_split"] == "val" and 0 <= info["best_epoch"] <= 3
    text = m.class_text().float()
    onehot = torch.nn.functional.one_hot(y, len(CLASSNAMES)).float()
    scale = float(hf_backbone.logit_scale)
    keys = m.keys.detach().clone().requires_grad_(True)
    want = _official_tip(train.pooled, keys, onehot, text, 1.17, 1.0, scale)
    from bimors.methods.tip_adapter_f import tip_f_logits

    got = tip_f_logits(train.pooled, keys, onehot, text, hf_backbone.logit_scale, 1.17, 1.0)
    torch.testing.assert_close(got, want)
    g1 = torch.autograd.grad(torch.nn.functional.cross_entropy(got, y), keys)[0]
    g2 = torch.autograd.grad(torch.nn.functional.cross_entropy(want, y), keys)[0]
    torch.testing.assert_close(g1, g2)
    test, _ = _clusters(hf_backbone.embed_dim, per_class=3, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(
            m(test),
            _official_tip(test.pooled, m.keys, onehot, text, info["alpha"], info["beta"], scale),
            atol=1e-4,
            rtol=1e-4,
        )
