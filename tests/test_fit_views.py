"""Augmented views for closed-form fits: Tip-Adapter's averaged cache keys, Tip-Adapter-F's
epochs over views and LP++'s augmented pass, against restatements of the official codes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bimors.backbones.base import ImageFeatures
from bimors.core.errors import ConfigError
from bimors.data.images import ImageDataset
from bimors.data.transforms import build_transform
from bimors.engine.config import TrainConfig
from bimors.engine.data import TaskData
from bimors.engine.extract import extract_features, extract_views, fit_closed_form
from bimors.engine.feature_cache import FeatureCache
from bimors.engine.features import CachedFeatures, FeatureSource, view_pixels
from bimors.methods import build_method
from bimors.methods.fit_views import mean_of_views
from bimors.methods.tip_adapter_f import tip_f_logits
from bimors.run.config import resolve_config
from tests.test_closed_form_cache import assert_cached_fit_equals_plain
from tests.test_feature_cache import _data, _no_image_encoder

SCALE = (0.5, 1.0)


def _restated_views(backbone, data: TaskData, views: int) -> list[torch.Tensor]:
    """Raw features of each view, image by image through the encoder (no batching, no cache)."""
    images = ImageDataset(
        data.images.root, data.images.samples, build_transform(backbone.preprocess, True, SCALE)
    )
    out = []
    with torch.no_grad():
        for v in range(views):
            pix = torch.stack([view_pixels(images, i, v) for i in range(len(images))])
            out.append(backbone.encode_image(pix).projected)
    return out


def test_the_official_key_is_the_normalised_mean_raw_feature():
    gen = torch.Generator().manual_seed(0)
    raw = [torch.randn(5, 8, generator=gen) * (1 + v) for v in range(3)]
    views = [
        ImageFeatures(
            r / r.norm(dim=-1, keepdim=True), torch.empty(5, 0, 8), r.norm(dim=-1, keepdim=True)
        )
        for r in raw
    ]
    # utils.build_cache_model: stack the passes, mean over them, then divide by the norm
    want = torch.stack(raw).mean(dim=0)
    want = want / want.norm(dim=-1, keepdim=True)
    got = mean_of_views(views)
    torch.testing.assert_close(got.pooled, want)
    # not the mean of normalised features: the passes' norms weigh in
    naive = F.normalize(torch.stack([v.pooled for v in views]).mean(0), dim=-1)
    assert not torch.allclose(got.pooled, naive, atol=1e-3)
    with pytest.raises(ValueError, match="norm"):
        mean_of_views([ImageFeatures(views[0].pooled, views[0].tokens)])


def test_views_from_the_cache_equal_the_encoders_and_are_reused(
    backbone, scenes, tmp_path, monkeypatch
):
    data = _data(scenes, backbone, train=False, n=6)
    m = build_method("tip_adapter", backbone, data.classnames, {"augment_views": 3})
    fresh, y = extract_views(m, data, 3, SCALE, 4, source=FeatureSource())
    cached, yc = extract_views(m, data, 3, SCALE, 4, source=CachedFeatures(FeatureCache(tmp_path)))
    want = _restated_views(backbone, data, 3)
    assert torch.equal(y, yc) and torch.equal(
        y, torch.tensor([s.label for s in data.images.samples])
    )
    for v in range(3):
        for got in (fresh[v], cached[v]):
            torch.testing.assert_close(got.pooled * got.norm, want[v], atol=1e-5, rtol=1e-5)
    # the views are real augmentations: they differ from each other and from the test view
    plain, _ = extract_features(m, data, 4)
    assert (fresh[0].pooled - fresh[1].pooled).abs().max() > 1e-3
    assert (fresh[0].pooled - plain.pooled).abs().max() > 1e-3
    # a second fit of the grid (another method or seed) never runs the encoder
    _no_image_encoder(monkeypatch, backbone)
    again, _ = extract_views(m, data, 3, SCALE, 4, source=CachedFeatures(FeatureCache(tmp_path)))
    for v in range(3):
        assert torch.equal(again[v].pooled, cached[v].pooled)


def test_tip_adapter_keys_average_the_views_and_the_run_records_them(backbone, scenes, tmp_path):
    train = _data(scenes, backbone, train=False, n=9)
    val = _data(scenes, backbone, train=False, n=4)
    m = build_method(
        "tip_adapter",
        backbone,
        train.classnames,
        {"augment_views": 2, "search_scale": [7, 3], "search_step": [5, 4]},
    )
    info = fit_closed_form(
        m, train, val, TrainConfig(eval_batch_size=4), source=CachedFeatures(FeatureCache(tmp_path))
    )
    raw = torch.stack(_restated_views(backbone, train, 2)).mean(dim=0)
    torch.testing.assert_close(
        m.keys.detach(), raw / raw.norm(dim=-1, keepdim=True), atol=1e-5, rtol=1e-5
    )
    assert info["augment_views"] == 2 and info["hp_split"] == "val"
    # with no views the keys are the un-augmented features, as before
    m0 = build_method("tip_adapter", backbone, train.classnames, {"search": False})
    assert "augment_views" not in fit_closed_form(m0, train, val, TrainConfig(eval_batch_size=4))
    plain, _ = extract_features(m0, train, 4)
    torch.testing.assert_close(m0.keys.detach(), plain.pooled, atol=1e-5, rtol=1e-5)


def _views(dim: int, n: int, count: int, seed: int) -> list[ImageFeatures]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        raw = torch.randn(n, dim, generator=gen)
        norm = raw.norm(dim=-1, keepdim=True)
        out.append(ImageFeatures(raw / norm, torch.empty(n, 0, dim), norm))
    return out


def test_tip_adapter_f_epochs_cycle_over_the_views_as_a_restated_loop(hf_backbone):
    from .conftest import CLASSNAMES

    cfg = {"search": False, "train_epoch": 3, "batch_size": 4, "lr": 0.01, "augment_views": 2}
    m = build_method("tip_adapter_f", hf_backbone, CLASSNAMES, cfg)
    n, dim = 3 * len(CLASSNAMES), hf_backbone.embed_dim
    y = torch.arange(n) % len(CLASSNAMES)
    views = _views(dim, n, 2, seed=0)
    val = _views(dim, len(CLASSNAMES) * 2, 1, seed=1)[0]
    yv = torch.arange(len(val.pooled)) % len(CLASSNAMES)
    keys0 = mean_of_views(views)
    info = m.fit_features(keys0, y, val, yv, views=views)

    # restated run_tip_adapter_F: keys from the averaged cache, AdamW(eps 1e-4), cosine over
    # every step, epoch e on a fresh augmented pass (here: view e % 2), best val epoch kept
    text = m.class_text().float().detach()
    onehot = F.one_hot(y, len(CLASSNAMES)).float()
    scale = hf_backbone.logit_scale.detach()
    keys = torch.nn.Parameter(keys0.pooled.clone())
    opt = torch.optim.AdamW([keys], lr=0.01, eps=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 3 * 3)
    gen = torch.Generator().manual_seed(1)

    def acc(k):
        with torch.no_grad():
            out = tip_f_logits(val.pooled, k, onehot, text, scale, 1.17, 1.0)
        return 100.0 * float((out.argmax(-1) == yv).float().mean())

    best, best_keys = acc(keys), keys.detach().clone()
    for epoch in range(3):
        f = views[epoch % 2].pooled
        for idx in torch.randperm(n, generator=gen).split(4):
            loss = F.cross_entropy(
                tip_f_logits(f[idx], keys, onehot, text, scale, 1.17, 1.0), y[idx]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if acc(keys) > best:
            best, best_keys = acc(keys), keys.detach().clone()
    torch.testing.assert_close(m.keys.detach(), best_keys)
    assert info["best_val_acc"] == pytest.approx(best)


def test_tip_adapter_f_trains_epoch_e_on_view_e_mod_v(hf_backbone, monkeypatch):
    # Whatever epoch validation keeps, every training batch of epoch e holds rows of view e % V.
    import bimors.methods.tip_adapter_f as tf

    from .conftest import CLASSNAMES

    seen: list[torch.Tensor] = []
    real = tf.tip_f_logits

    def spy(f, *args):
        if torch.is_grad_enabled():  # training steps; validation runs without gradients
            seen.append(f.detach().clone())
        return real(f, *args)

    monkeypatch.setattr(tf, "tip_f_logits", spy)
    cfg = {"search": False, "train_epoch": 3, "batch_size": 4, "augment_views": 2}
    m = build_method("tip_adapter_f", hf_backbone, CLASSNAMES, cfg)
    n = 3 * len(CLASSNAMES)
    y = torch.arange(n) % len(CLASSNAMES)
    views = _views(hf_backbone.embed_dim, n, 2, seed=0)
    m.fit_features(mean_of_views(views), y, views[0], y, views=views)
    per_epoch = -(-n // 4)
    assert len(seen) == 3 * per_epoch
    for call, f in enumerate(seen):
        want = views[(call // per_epoch) % 2].pooled
        other = views[(call // per_epoch + 1) % 2].pooled
        assert torch.cdist(f, want).min(dim=1).values.max() < 1e-6, call
        assert torch.cdist(f, other).min(dim=1).values.min() > 1e-3, call


def test_lp_pp_fits_on_one_augmented_view(backbone, scenes):
    train = _data(scenes, backbone, train=False, n=12)  # every class: LP++ needs them all
    val = _data(scenes, backbone, train=False, n=4)
    seen = {}
    m = build_method("lp_pp", backbone, train.classnames, {"augment_views": 1, "train_epoch": 5})
    fit = m.fit_features

    def spy(**inputs):
        seen.update(x=inputs["train"], views=inputs["views"], xv=inputs["val"])
        return fit(**inputs)

    m.fit_features = spy  # type: ignore[method-assign]
    info = fit_closed_form(m, train, val, TrainConfig(eval_batch_size=4))
    want = _restated_views(backbone, train, 1)[0]
    torch.testing.assert_close(seen["x"].pooled, F.normalize(want, dim=-1), atol=1e-5, rtol=1e-5)
    assert len(seen["views"]) == 1 and info["augment_views"] == 1
    plain_val, _ = extract_features(m, val, 4)  # validation stays un-augmented
    torch.testing.assert_close(seen["xv"].pooled, plain_val.pooled, atol=1e-6, rtol=1e-6)


def test_presets_follow_the_official_configs():
    tip = resolve_config("tip_adapter").method_params
    assert (tip.augment_views, list(tip.augment_scale)) == (10, [0.5, 1.0])
    euro = resolve_config("tip_adapter_f", overrides=["data.dataset=eurosat"]).method_params
    assert (euro.init_alpha, list(euro.search_scale), euro.train_epoch) == (2.0, [12.0, 10.0], 100)
    assert euro.augment_views == 10
    other = resolve_config("tip_adapter_f", overrides=["data.dataset=resisc45"]).method_params
    assert (other.init_alpha, list(other.search_scale), other.train_epoch) == (1.17, [7.0, 3.0], 20)
    assert resolve_config("lp_pp").method_params.augment_views == 1
    clap = resolve_config("clap").method_params  # epochs_aumentation 20, Dassl's crop
    assert (clap.augment_views, list(clap.augment_scale)) == (20, [0.08, 1.0])


@pytest.mark.parametrize(
    "field, value, match",
    [("augment_views", -1, "augment_views=-1"), ("augment_scale", [0.0, 1.0], "augment_scale")],
)
def test_bad_view_settings_name_the_field(hf_backbone, field, value, match):
    from .conftest import CLASSNAMES

    with pytest.raises((ConfigError, ValueError), match=match):
        build_method("tip_adapter", hf_backbone, CLASSNAMES, {field: value})


@pytest.mark.parametrize("name", ["tip_adapter", "tip_adapter_f", "lp_pp", "clap"])
def test_a_fit_on_cached_views_equals_the_encoders_and_reuses_them(
    name, backbone, scenes, tmp_path, monkeypatch
):
    train = _data(scenes, backbone, train=False, n=12)
    val = _data(scenes, backbone, train=False, n=6)
    cfg = TrainConfig(eval_batch_size=4)
    small = {
        "lp_pp": {"train_epoch": 5},
        "clap": {"epochs": 3},
        "tip_adapter_f": {"train_epoch": 2},
    }
    params = {"augment_views": 2, **small.get(name, {})}
    if name.startswith("tip_adapter"):
        params["search_step"] = [5, 4]

    def fitted(source):
        torch.manual_seed(0)
        m = build_method(name, backbone, train.classnames, params)
        info = fit_closed_form(m, train, val, cfg, source=source)
        assert info["augment_views"] == 2
        return m

    assert_cached_fit_equals_plain(fitted, val, tmp_path, monkeypatch, backbone)
