"""``data.shots``: a positive integer; a class smaller than k keeps all its images, no repeats,
with one warning, and the run records the real per-class counts."""

from __future__ import annotations

import json
import logging

import pytest

from bimors.cli import main
from bimors.core.errors import ConfigError
from bimors.data.fewshot import class_counts, draw_fewshot, warn_small_classes
from bimors.data.split import Sample
from bimors.run.config import resolve_config
from tests.test_experiments import env  # noqa: F401 (fixture)


@pytest.mark.parametrize("bad", ["0", "-1"])
def test_shots_must_be_a_positive_integer(bad):
    with pytest.raises(ConfigError, match=r"data\.shots=-?\d: must be a positive whole number"):
        resolve_config("coop", overrides=[f"data.shots={bad}"])


@pytest.mark.parametrize("bad", ["2.5", "true", "four"])
def test_shots_of_another_type_are_refused_by_name(bad):
    with pytest.raises(ConfigError, match=r"data\.shots: expected an integer"):
        resolve_config("coop", overrides=[f"data.shots={bad}"])


@pytest.mark.parametrize("sampler", ["hash", "dassl"])
def test_a_small_class_keeps_all_its_images_without_repeats(sampler):
    train = [Sample(f"a/{i}.png", 0, "a") for i in range(3)]
    train += [Sample(f"b/{i}.png", 1, "b") for i in range(9)]
    idx = draw_fewshot({"train": (train, 5)}, 1, "toy", sampler)["train"]
    assert len(idx) == len(set(idx)) == 3 + 5
    assert {train[i].relpath for i in idx if train[i].label == 0} == {
        f"a/{i}.png" for i in range(3)
    }


def test_small_classes_are_named_in_one_warning(caplog):
    samples = [Sample("a/0.png", 0, "a"), Sample("b/0.png", 1, "b"), Sample("b/1.png", 1, "b")]
    counts = class_counts(samples, ["airport", "beach", "forest"])
    assert counts == {"airport": 1, "beach": 2, "forest": 0}
    with caplog.at_level(logging.WARNING):
        assert warn_small_classes(counts, 2, "toy") == {"airport": 1, "forest": 0}
    (record,) = caplog.records
    assert "airport (1), forest (0)" in record.getMessage()


def test_the_run_records_the_real_per_class_counts(env, tmp_path, caplog):  # noqa: F811
    out = tmp_path / "run"
    pairs = zip(env["sets"][::2], env["sets"][1::2], strict=True)
    sets = [x for flag, v in pairs if not v.startswith("data.shots") for x in (flag, v)]
    sets += ["--set", "data.shots=100", "--store", f"synthetic={env['store']}"]
    with caplog.at_level(logging.WARNING):
        assert main(["-q", "train", "--method", "coop", "--dataset", "synthetic", "--root",
                     str(env["scenes"]), "--out", str(out), *sets]) == 0  # fmt: skip
    fewshot = json.loads((out / "fewshot.json").read_text())
    assert fewshot["shots"] == 100
    counts = fewshot["per_class"]["train"]
    assert counts and all(0 < n < 100 for n in counts.values())
    assert sum(counts.values()) == len(fewshot["train"]) == len(set(fewshot["train"]))
    record = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert record["train_per_class"] == counts
    assert any("fewer than 100 images" in r.getMessage() for r in caplog.records)
