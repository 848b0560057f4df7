"""``data.shots`` is a positive integer, and a class smaller than k keeps all its images once.

Dassl's ``generate_fewshot_dataset`` is called with ``repeat=False`` by every
official code: a class with fewer than k items gives all of them and draws
nothing from ``random``. Both samplers must do the same, warn once naming the
small classes, and the run's records and ``fewshot.json`` must carry the real
per-class counts.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict

import pytest

from bimors.core.errors import ConfigError
from bimors.data.fewshot import class_counts, draw_fewshot
from bimors.data.split import Sample
from bimors.run.config import resolve_config


def _samples(sizes: list[int]) -> list[Sample]:
    return [Sample(f"c{c}/{i}.jpg", c, f"c{c}") for c, n in enumerate(sizes) for i in range(n)]


def _dassl_no_repeat(samples: list[Sample], k: int, seed: int) -> list[str]:
    """Dassl's draw with repeat=False, restated on relpaths."""
    rng = random.Random(seed)
    tracker: dict[int, list[str]] = defaultdict(list)
    for s in samples:
        tracker[s.label].append(s.relpath)
    out: list[str] = []
    for items in tracker.values():
        out += rng.sample(items, k) if len(items) >= k else items
    return out


@pytest.mark.parametrize("value", ["0", "-1", "true", "2.5"])
def test_non_positive_or_non_integer_shots_are_refused_naming_the_field(value):
    with pytest.raises(ConfigError, match=r"data\.shots"):
        resolve_config("coop", overrides=[f"data.shots={value}"])


def test_positive_shots_are_accepted():
    assert resolve_config("coop", overrides=["data.shots=3"]).data.shots == 3


@pytest.mark.parametrize("sampler", ["hash", "dassl"])
def test_a_small_class_keeps_all_its_images_without_repeats(sampler, caplog):
    samples = _samples([6, 6, 20])
    with caplog.at_level(logging.WARNING, logger="bimors.data.fewshot"):
        idx = draw_fewshot({"train": (samples, 100)}, 1, "toy", sampler)["train"]
    assert len(idx) == len(set(idx)) == 32  # 6 + 6 + 20, each once
    assert class_counts([samples[i] for i in idx]) == {"c0": 6, "c1": 6, "c2": 20}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one warning for all the small classes
    text = warnings[0].getMessage()
    assert "c0 (6)" in text and "c1 (6)" in text and "c2 (20)" in text


def test_no_warning_when_every_class_has_enough(caplog):
    samples = _samples([5, 5])
    with caplog.at_level(logging.WARNING, logger="bimors.data.fewshot"):
        draw_fewshot({"train": (samples, 5)}, 1, "toy", "dassl")
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dassl_draw_with_a_small_class_matches_repeat_false(seed):
    """The small class draws nothing, so the classes after it see Dassl's stream."""
    samples = _samples([9, 2, 9, 3, 9])
    idx = draw_fewshot({"train": (samples, 4)}, seed, "toy", "dassl")["train"]
    assert [samples[i].relpath for i in idx] == _dassl_no_repeat(samples, 4, seed)
