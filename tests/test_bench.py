"""``bimors bench`` on a tiny CLIP: the report is complete and the two paths agree.

No timing is asserted (the machine is shared); the real figures come from
``bimors bench --json`` on ViT-B/16 (see README, Performance).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bimors.cli import main
from bimors.core.errors import ConfigError
from bimors.perf.bench import run_bench
from bimors.perf.memory import measure_in_subprocess
from bimors.perf.workload import PATTERNNET_LABEL_ORDER, BenchOptions, class_names
from tests.reference import reference_splits

_REF = reference_splits()
SPLIT_FILE = _REF / "patternnet.json" if _REF else Path("patternnet.json")


@pytest.mark.parametrize("adapter", ["hf", "open_clip"])
def test_bench_reports_both_paths_and_they_agree(adapter):
    opts = BenchOptions(shape="tiny", adapter=adapter, repeats=1, memory=False, precision="fp32")
    out = run_bench(opts)
    assert out["max_abs_logit_diff"] <= 1e-4
    assert out["max_abs_logit_diff_fast_precision"] == out["max_abs_logit_diff"]  # both fp32
    for key in ("train_speedup", "eval_speedup", "floor_ratio", "fast_train_step_gflop"):
        assert out[key] > 0, key
    # the fast path encodes far fewer text tokens than 19 prompts x 77 positions
    assert (
        out["fast_path"]["text_tokens_per_image"] < out["reference_path"]["text_tokens_per_image"]
    )
    assert out["reference_path"]["text_tokens_per_image"] == 19 * 77
    assert "not run" in out["fast_path"]["image_features"]
    assert out["config"]["classnames"] == class_names(19)
    assert "train_speedup_with_image_encoder" in out
    assert out["checksum"]["ratio_to_cached_train_step"] > 0  # measured, not asserted < 2%
    d = out["default_path"]
    assert d["floor_ratio"] > 0 and d["gflop"] > out["fast_train_step_gflop"]  # + the encoder
    assert set(d["breakdown_s"]) == {"image_encoder_forward", "method_forward_backward", "rest"}
    assert sum(d["breakdown_s"].values()) == pytest.approx(d["breakdown_total_s"])
    v = out["shared_views"]
    assert v["exact"] is True and v["methods"] == 7 and "tokens" in v["fields"]  # BiMoRS
    t = {k: x["min"] for k, x in out["seconds"].items()}
    parts = t["fast_train_step_image_encoder"] + t["shared_store_write"]
    assert v["amortised_train_step_s"] == pytest.approx((parts + 6 * t["fast_train_step"]) / 7)


def test_shared_views_check_fails_when_served_features_differ(tmp_path, monkeypatch):
    from bimors.engine.shared_views import ViewStore
    from bimors.perf.default_path import exact_round_trip
    from bimors.perf.workload import Workload

    wl = Workload(BenchOptions(shape="tiny", repeats=1, memory=False), tmp_path)
    assert exact_round_trip(wl, tmp_path / "a")
    real = ViewStore.load
    monkeypatch.setattr(ViewStore, "load", lambda self, *a: real(self, *a) * (1 + 1e-6))
    assert not exact_round_trip(wl, tmp_path / "b")


def test_bench_cli_prints_one_json_object(capsys):
    argv = ["bench", "--json", "--backbone", "tiny", "--repeats", "1", "--no-memory"]
    assert main([*argv, "--classes", "5", "--no-cache", "--precision", "bf16"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fast_path"]["precision"] == "bf16"
    assert out["fast_path"]["image_features"] == "image encoder every step"
    assert len(out["config"]["classnames"]) == 5
    assert out["max_abs_logit_diff"] <= 1e-4  # measured in float32 whatever the fast precision
    assert "shared_views" not in out and out["default_path"]["floor_ratio"] > 0


def test_peak_memory_is_measured_in_a_fresh_process():
    opts = BenchOptions(shape="tiny", repeats=1, precision="fp32")
    got = measure_in_subprocess(opts, "reference")
    assert got["path"] == "reference"
    assert got["peak_rss_mb"] >= got["peak_rss_mb_after_setup"] > 0


def test_bench_options_are_validated():
    with pytest.raises(ConfigError, match="classes"):
        BenchOptions(classes=39)
    with pytest.raises(ConfigError, match="adapter"):
        BenchOptions(adapter="timm")
    with pytest.raises(ConfigError, match="batch"):
        BenchOptions(batch=0)


@pytest.mark.skipif(not SPLIT_FILE.is_file(), reason="reference split file not on this machine")
def test_patternnet_label_order_matches_the_published_split_file():
    data = json.loads(SPLIT_FILE.read_text())
    names = {label: name for part in data.values() for _, label, name in part}
    assert tuple(names[i] for i in range(len(names))) == PATTERNNET_LABEL_ORDER


# -- methods with no SGD step: closed-form fits and zero-shot CLIP ---------------------------
def _no_sgd_methods():
    from bimors.methods import METHODS

    return [n for n in METHODS.names() if METHODS.get(n).closed_form] + ["zeroshot"]


@pytest.mark.parametrize("name", _no_sgd_methods())
def test_bench_times_the_fit_of_methods_without_an_sgd_step(name):
    opts = BenchOptions(shape="tiny", method=name, classes=4, shots=2, repeats=1, memory=False)
    out = run_bench(opts)
    assert out["eval_speedup"] > 0
    if name == "zeroshot":
        assert out["kind"] == "none" and "fit" not in out
        assert out["max_abs_logit_diff"] <= 1e-4
        return
    f = out["fit"]
    assert out["kind"] == "fit" and f["images"] == 8 and f["speedup"] > 0
    assert f["reference_s"] > 0 and f["fast_s"] > 0 and f["gflop"] >= 0
    assert set(f["chosen"]) == {"reference", "fast"}
    if f["same_choices"]:  # same hyper-parameters: the fitted models agree to float noise
        assert out["max_abs_logit_diff"] <= 1e-3
    assert "not run" in out["fast_path"]["image_features"]


def test_the_fast_fit_reads_every_feature_from_the_cache(tmp_path, monkeypatch):
    from bimors.perf.workload import Workload

    wl = Workload(BenchOptions(shape="tiny", method="tip_adapter", classes=3, shots=2), tmp_path)
    with pytest.raises(ConfigError, match="no SGD training step"):
        wl.train_step(False)
    wl.prepare()

    def refuse(pixels):
        raise AssertionError("the image encoder ran in the fast fit")

    monkeypatch.setattr(wl.backbone, "encode_image", refuse)
    assert wl.fit(False)["train_images"] == 6
    with pytest.raises(AssertionError, match="image encoder ran"):
        wl.fit(True)  # the reference fit encodes every image


def test_bench_cli_takes_method_options_and_skips_shared_views_for_prompted_encoders(capsys):
    argv = ["bench", "--json", "--backbone", "tiny", "--repeats", "1", "--no-memory"]
    sets = ["--set", "prompt_depth_text=2", "--set", "method.prompt_depth_vision=2"]
    assert main([*argv, "--method", "ivlp", "--classes", "3", *sets]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["method_options"] == {"prompt_depth_text": 2, "prompt_depth_vision": 2}
    assert "shared_views" not in out  # IVLP prompts the image encoder: nothing to share
    assert "no cache" in out["fast_path"]["image_features"]
    assert out["max_abs_logit_diff"] <= 1e-4


def test_bench_cli_prints_a_fit_summary(capsys):
    argv = ["bench", "--backbone", "tiny", "--repeats", "1", "--no-memory", "--classes", "3"]
    assert main([*argv, "--method", "tip_adapter_f", "--shots", "2"]) == 0
    text = capsys.readouterr().out
    assert "fit speedup" in text and "for 6 images" in text and "eval speedup" in text


def test_fit_choices_differ_only_beyond_float_noise():
    from bimors.perf.fit_bench import differing_choices

    ref = {"best_iteration": 300, "lr_alpha": 21.812519, "kernel": "linear"}
    assert differing_choices(ref, {**ref, "lr_alpha": 21.812530}) == []  # 5e-7 relative
    assert differing_choices(ref, {**ref, "lr_alpha": 21.9}) == ["lr_alpha"]
    assert differing_choices(ref, {**ref, "best_iteration": 299}) == ["best_iteration"]
    assert differing_choices(ref, {**ref, "kernel": "rbf"}) == ["kernel"]
    assert differing_choices(ref, {"best_iteration": 300, "lr_alpha": 21.812519}) == ["kernel"]
