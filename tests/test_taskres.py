"""TaskRes against a restatement of its official forward and loss, caches, state and a tiny grid."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from bimors.cli import main
from bimors.engine.checkpoint import load_into, read_checkpoint
from bimors.engine.config import TrainConfig
from bimors.engine.feature_cache import FeatureCache
from bimors.engine.features import CachedFeatures, FeatureSource
from bimors.engine.shared_views import SharedViews
from bimors.engine.trainer import Trainer, make_optimizer
from bimors.methods import build_method
from bimors.methods.presets import resolve_preset
from bimors.perf.bench import run_bench
from bimors.perf.workload import BenchOptions

from .conftest import CLASSNAMES
from .test_feature_cache import _data, _logits, _no_image_encoder

TEMPLATE = "a satellite photo of {}."


def _pixels(n=6, seed=0):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _labels(n=6):
    return torch.arange(n) % len(CLASSNAMES)


def _library_features(backbone, ids, pixels):
    """Raw text and image embeddings from each library's own forward (not bimors' towers)."""
    model = backbone.model
    with torch.no_grad():
        if backbone.adapter == "hf":
            text = model.get_text_features(input_ids=ids)
            image = model.get_image_features(pixel_values=pixels)
            text, image = (getattr(t, "pooler_output", t) for t in (text, image))
        else:
            text, image = model.encode_text(ids), model.encode_image(pixels)
    return text, image


def _official_logits(base, residual, alpha, image, logit_scale):
    """The official CustomCLIP.forward: ``t + a * x`` first, then both sides normalised."""
    text = base + alpha * residual
    text = text / text.norm(dim=-1, keepdim=True)
    image = image / image.norm(dim=-1, keepdim=True)
    return logit_scale * image @ text.t()


def _perturbed(backbone, classnames=CLASSNAMES, **params):
    torch.manual_seed(0)
    m = build_method("taskres", backbone, classnames, params or None)
    with torch.no_grad():  # a residual of the base's own scale, so that its use shows
        scale = m.base_features().norm(dim=-1, keepdim=True)
        m.residual.copy_(scale * torch.randn_like(m.residual))
    return m


def test_taskres_matches_the_official_forward_loss_and_gradient(backbone):
    m = _perturbed(backbone)
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["residual"]
    assert m.cfg.alpha == 0.5 and m.cfg.template == TEMPLATE
    pixels = _pixels()
    ids = backbone.tokenize([TEMPLATE.format(n) for n in CLASSNAMES]).to(backbone.device)
    base, image = _library_features(backbone, ids, pixels)
    residual = m.residual.detach().clone().requires_grad_(True)
    logits_want = _official_logits(base, residual, 0.5, image, backbone.logit_scale)
    loss_want = F.cross_entropy(logits_want, _labels())
    (grad_want,) = torch.autograd.grad(loss_want, residual)

    m.train()
    logits = m(m.image_features(pixels))
    loss = m.loss(logits, _labels())
    loss.backward()
    torch.testing.assert_close(logits, logits_want, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(loss, loss_want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(m.residual.grad, grad_want, atol=1e-5, rtol=1e-4)
    # the order matters: normalising the base before adding the residual is another model
    wrong = _official_logits(F.normalize(base, dim=-1), residual, 0.5, image, backbone.logit_scale)
    assert (wrong - logits_want).abs().max() > 1e-2
    # the reference recipe (77 positions, no packing) gives the same base and logits
    m.reference_recipe = True
    with torch.no_grad():
        torch.testing.assert_close(m(m.image_features(pixels)), logits_want, atol=1e-4, rtol=1e-5)


def test_a_fresh_residual_is_zero_shot_clip_with_the_template(backbone):
    torch.manual_seed(0)
    m = build_method("taskres", backbone, CLASSNAMES)
    zs = build_method("zeroshot", backbone, CLASSNAMES, {"template": TEMPLATE})
    assert torch.equal(m.residual, torch.zeros(len(CLASSNAMES), backbone.embed_dim))
    feats = m.image_features(_pixels())
    with torch.no_grad():
        torch.testing.assert_close(m(feats), zs(feats), atol=1e-4, rtol=1e-5)


def test_unseen_classes_get_a_zero_residual_and_are_named_a_fallback(hf_backbone):
    m = _perturbed(hf_backbone)
    feats = m.image_features(_pixels())
    m.eval()
    with torch.no_grad():
        full = m(feats)
        # a subset of the trained classes keeps its rows: the same columns, no fallback
        m.set_classnames(["runway", "river"])
        assert m.fallback is None
        torch.testing.assert_close(m(feats), full[:, [3, 0]])
        # new classes score with zero-shot CLIP; trained ones keep their residual
        m.set_classnames(["harbor", "river", "forest"])
        assert m.fallback == "zeroshot"
        zs = build_method("zeroshot", hf_backbone, ["harbor", "forest"], {"template": TEMPLATE})
        mixed = m(feats)
        torch.testing.assert_close(mixed[:, [0, 2]], zs(feats), atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(mixed[:, 1], full[:, 0])
        m.set_classnames(CLASSNAMES)
        assert m.fallback is None
        torch.testing.assert_close(m(feats), full)
    strict = build_method("taskres", hf_backbone, CLASSNAMES, {"unseen": "error"})
    with pytest.raises(ValueError, match="harbor"):
        strict.set_classnames(["harbor", "river"])
    with pytest.raises(Exception, match="alpha"):
        build_method("taskres", hf_backbone, CLASSNAMES, {"alpha": -1.0})


def test_state_is_only_the_residual_and_round_trips(hf_backbone):
    a = _perturbed(hf_backbone)
    state = a.method_state_dict()
    assert list(state) == ["residual"] and state["residual"].shape == (5, hf_backbone.embed_dim)
    b = build_method("taskres", hf_backbone, CLASSNAMES)
    b.load_method_state_dict(state)
    feats = a.image_features(_pixels())
    with torch.no_grad():
        assert torch.equal(a(feats), b(feats))


def test_cached_features_equal_the_image_encoder(hf_backbone, scenes, tmp_path, monkeypatch):
    """Evaluation from the feature cache and training from shared views change no bit."""
    data = _data(scenes, hf_backbone, train=False)
    m = _perturbed(hf_backbone, data.classnames)
    cached, plain = CachedFeatures(FeatureCache(tmp_path / "cache")), FeatureSource()
    with torch.no_grad():
        for a, b in zip(cached.eval_loader(m, data, 4), plain.eval_loader(m, data, 4), strict=True):
            assert "pixels" not in a and "pixels" in b
            torch.testing.assert_close(_logits(m, cached, a, data), _logits(m, plain, b, data))

    train = _data(scenes, hf_backbone, train=True, n=8)
    cfg = TrainConfig(epochs=2, batch_size=4, lr=0.01, optimizer="adam", warmup_epochs=0)

    def fit(source):
        torch.manual_seed(0)
        method = build_method("taskres", hf_backbone, train.classnames)
        Trainer(method, cfg, features=source).fit(train)
        return method.residual.detach().clone()

    want = fit(FeatureSource())
    assert want.abs().sum() > 0
    assert torch.equal(fit(SharedViews(root=tmp_path / "views")), want)  # writes the views
    _no_image_encoder(monkeypatch, hf_backbone)
    assert torch.equal(fit(SharedViews(root=tmp_path / "views")), want)  # reads them only


def test_adam_is_dassls_coupled_l2_adam():
    p = [torch.nn.Parameter(torch.ones(3))]
    opt = make_optimizer(p, TrainConfig(optimizer="adam", lr=0.002, weight_decay=5e-4))
    assert type(opt) is torch.optim.Adam
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["betas"]) == (0.002, 5e-4, (0.9, 0.999))


def test_preset_follows_the_official_config():
    settings, record = resolve_preset("taskres", "base2new", "eurosat")
    method, train = settings["method"], settings["train"]
    assert (method["alpha"], method["template"]) == (0.5, TEMPLATE)
    assert (train["optimizer"], train["lr"], train["batch_size"], train["epochs"]) == (
        "adam",
        0.002,
        256,
        100,
    )
    assert (train["warmup_epochs"], train["warmup_lr"], train["weight_decay"]) == (1, 1e-5, 5e-4)
    assert record.layers == ["taskres"]


def test_list_shows_taskres(capsys):
    assert main(["list"]) == 0
    assert "taskres" in capsys.readouterr().out.splitlines()[0]


def test_bench_runs_taskres_and_both_paths_agree(capsys):
    out = run_bench(BenchOptions(shape="tiny", method="taskres", repeats=1, memory=False))
    assert out["max_abs_logit_diff"] <= 1e-4
    argv = ["bench", "--json", "--backbone", "tiny", "--method", "taskres", "--repeats", "1"]
    assert main([*argv, "--no-memory", "--classes", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_logit_diff"] <= 1e-4


def _sets(tiny_dir):
    sets = [
        "backbone.adapter=hf",
        f"backbone.model={tiny_dir / 'clip-hf'}",
        "train.device=cpu",
        "train.epochs=2",
        "train.batch_size=4",
        "data.shots=4",
        "data.num_workers=0",
        f"method.template={TEMPLATE}",  # zero-shot CLIP with TaskRes's template
    ]
    return [x for s in sets for x in ("--set", s)]


def test_base_to_new_run_records_the_zero_shot_fallback(tiny_dir, scenes, tmp_path, hf_backbone):
    runs = tmp_path / "runs"
    grid = ["-q", "run", "--protocol", "base2new", "--method", "taskres", "zeroshot"]
    grid += ["--dataset", "synthetic", "--seeds", "1", "--root", str(scenes), "--out", str(runs)]
    assert main(grid + _sets(tiny_dir)) == 0
    cells = {m: runs / "base2new" / "synthetic" / m / "seed1" for m in ("taskres", "zeroshot")}
    records = {
        m: {r["split"]: r for r in map(json.loads, (c / "results.jsonl").read_text().splitlines())}
        for m, c in cells.items()
    }
    ours, zs = records["taskres"], records["zeroshot"]
    assert set(ours) == {"base", "new"}
    assert ours["new"]["fallback"] == "zeroshot" and "fallback" not in ours["base"]
    # new classes have no residual: exactly zero-shot CLIP's predictions
    assert ours["new"]["correct"] == zs["new"]["correct"] and ours["new"]["total"] > 0
    rows = [json.loads(x) for x in (cells["taskres"] / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    payload = read_checkpoint(cells["taskres"] / "checkpoint.pt")
    assert list(payload["state"]) == ["residual"] and payload["state"]["residual"].abs().sum() > 0
    fresh = build_method("taskres", hf_backbone, payload["classnames"])
    load_into(fresh, payload)  # strict
    assert torch.equal(fresh.residual.detach(), payload["state"]["residual"])
    assert main(["-q", "report", str(runs)]) == 0
    report = (runs / "report.md").read_text()
    (row,) = [line for line in report.splitlines() if line.startswith("| TaskRes |")]
    assert row.split("|")[3].strip().endswith("†")  # the new column names its substitute
