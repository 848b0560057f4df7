"""The ``lpclip`` sampler draws what CoOp's ``lpclip/linear_probe.py`` draws, image for image."""

from __future__ import annotations

import numpy as np
import pytest

from bimors.core.errors import DataError
from bimors.data.fewshot import draw_fewshot
from bimors.data.split import Sample
from bimors.run.config import resolve_config

VAL_SHOTS = {1: 1, 2: 2, 4: 4, 8: 4, 16: 4}  # linear_probe.py's val_shot_list


def _official(train_label: np.ndarray, val_label: np.ndarray, shots: int, seed: int):
    """A restatement of linear_probe.py's sampling loop on label arrays (global numpy state)."""
    np.random.seed(seed)
    out = {}
    for part, labels, k in (("train", train_label, shots), ("val", val_label, VAL_SHOTS[shots])):
        picked = []
        for label in np.unique(train_label):
            collection = np.where(labels == label)[0]
            picked.extend(np.random.choice(collection, size=k, replace=False))
        out[part] = [int(i) for i in picked]
    return out


def _part(rng: np.random.Generator, n_classes: int, n: int, name: str) -> list[Sample]:
    labels = rng.permutation(np.repeat(np.arange(n_classes), n))  # classes interleaved
    return [Sample(f"{name}/{i:04d}.jpg", int(y), f"c{y}") for i, y in enumerate(labels)]


@pytest.mark.parametrize("shots", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lpclip_matches_the_official_loop_image_for_image(shots, seed):
    rng = np.random.default_rng(100 + shots)
    train, val = _part(rng, 7, 20, "train"), _part(rng, 7, 6, "val")
    got = draw_fewshot({"train": (train, shots), "val": (val, min(shots, 4))}, seed, "x", "lpclip")
    want = _official(
        np.array([s.label for s in train]), np.array([s.label for s in val]), shots, seed
    )
    assert got == want
    assert [train[i].relpath for i in got["train"]] == [train[i].relpath for i in want["train"]]


def test_lpclip_differs_from_dassl_and_leaves_the_global_stream_alone():
    rng = np.random.default_rng(0)
    train, val = _part(rng, 5, 30, "train"), _part(rng, 5, 8, "val")
    parts = {"train": (train, 16), "val": (val, 4)}
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    lp = draw_fewshot(parts, 1, "x", "lpclip")
    assert (np.random.get_state()[1] == before).all()
    assert lp != draw_fewshot(parts, 1, "x", "dassl")


def test_lpclip_refuses_a_class_too_small():
    train = [Sample(f"{i}.jpg", i % 2, f"c{i % 2}") for i in range(6)]
    with pytest.raises(DataError, match="class 0 has 3 images, fewer than 4"):
        draw_fewshot({"train": (train, 4)}, 1, "x", "lpclip")


def test_linear_probe_preset_uses_lpclip_under_the_fewshot_protocol():
    cfg = resolve_config("linear_probe", protocol="fewshot")
    assert cfg.data.fewshot_sampler == "lpclip"
    assert resolve_config("linear_probe", protocol="base2new").data.fewshot_sampler == "dassl"
