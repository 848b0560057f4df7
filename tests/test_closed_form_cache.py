"""Closed-form methods fit on features read from the feature cache (issue 22, item 4).

The fit through the cache must equal the fit through the image encoder (to the
cache's float tolerance), and a second fit (another seed, method or shot
count of a grid) must not run the image encoder at all.
"""

from __future__ import annotations

import pytest
import torch

from bimors.engine.config import TrainConfig
from bimors.engine.extract import extract_features, fit_closed_form
from bimors.engine.feature_cache import FeatureCache
from bimors.engine.features import CachedFeatures, FeatureSource
from bimors.methods import METHODS, build_method
from tests.test_feature_cache import _data, _no_image_encoder

CLOSED_FORM = [n for n in METHODS.names() if METHODS.get(n).closed_form]


def test_there_are_closed_form_methods_to_check():
    assert {"linear_probe", "tip_adapter", "tip_adapter_f"} <= set(CLOSED_FORM)


def test_extracted_features_from_the_cache_equal_the_encoders(backbone, scenes, tmp_path):
    data = _data(scenes, backbone, train=True, n=12)  # a training transform: extraction drops it
    method = build_method("linear_probe", backbone, data.classnames)
    fresh, y = extract_features(method, data, 5)
    cached, yc = extract_features(method, data, 5, source=CachedFeatures(FeatureCache(tmp_path)))
    assert torch.equal(y, yc)
    torch.testing.assert_close(cached.pooled, fresh.pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cached.norm, fresh.norm, atol=1e-5, rtol=1e-5)
    assert cached.tokens.shape[:2] == (12, 0)
    assert list(tmp_path.rglob("*.safetensors")), "nothing was written to the cache"


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_closed_form_fit_reads_the_cache_and_equals_the_plain_fit(
    name, backbone, scenes, tmp_path, monkeypatch
):
    train = _data(scenes, backbone, train=False, n=12)
    val = _data(scenes, backbone, train=False, n=6)
    cfg = TrainConfig(eval_batch_size=4)

    def fitted(source):
        torch.manual_seed(0)
        m = build_method(name, backbone, train.classnames)
        fit_closed_form(m, train, val, cfg, source=source)
        return m

    assert_cached_fit_equals_plain(fitted, val, tmp_path, monkeypatch, backbone)


def assert_cached_fit_equals_plain(fitted, val, cache_dir, monkeypatch, backbone) -> None:
    """``fitted(source)`` through the cache scores like through the encoder, and a second
    fit from the same cache (the next cell of a grid) never runs the image encoder."""
    plain = fitted(FeatureSource())
    cached = fitted(CachedFeatures(FeatureCache(cache_dir)))
    test_feats, _ = extract_features(plain, val, 4)
    with torch.no_grad():
        want, got = plain(test_feats), cached(test_feats)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    _no_image_encoder(monkeypatch, backbone)
    again = fitted(CachedFeatures(FeatureCache(cache_dir)))
    with torch.no_grad():
        torch.testing.assert_close(again(test_feats), got, atol=0, rtol=0)
