"""Aggregation on hand-made records whose mean, std and HM are known."""

from __future__ import annotations

import pytest

from bimors.report.aggregate import base2new_rows, harmonic_mean
from bimors.report.tables import base2new_markdown


def _rec(method, dataset, split, seed, acc):
    return {
        "method": method,
        "dataset": dataset,
        "protocol": "base2new",
        "split": split,
        "seed": seed,
        "accuracy": acc,
    }


def test_hm_uses_seed_averaged_accuracies():
    recs = [
        _rec("bimors", "rsicd", "base", 1, 90.0),
        _rec("bimors", "rsicd", "base", 2, 80.0),
        _rec("bimors", "rsicd", "new", 1, 40.0),
        _rec("bimors", "rsicd", "new", 2, 60.0),
    ]
    (row,) = base2new_rows(recs)
    assert row.base.mean == 85.0 and row.new.mean == 50.0
    assert row.base.std == pytest.approx(7.0710678, rel=1e-6)
    assert row.hm == pytest.approx(2 * 85 * 50 / 135)
    per_seed = (harmonic_mean(90, 40) + harmonic_mean(80, 60)) / 2
    assert row.hm != pytest.approx(per_seed)


def test_average_row_over_datasets_and_markdown():
    recs = [
        _rec("coop", "a", "base", 1, 80.0),
        _rec("coop", "a", "new", 1, 40.0),
        _rec("coop", "b", "base", 1, 60.0),
        _rec("coop", "b", "new", 1, 60.0),
        _rec("coop", "b", "all", 1, 1.0) | {"protocol": "cross_dataset"},
    ]
    rows = base2new_rows(recs)
    assert [(r.dataset, r.base.mean, r.new.mean) for r in rows] == [
        ("a", 80.0, 40.0),
        ("b", 60.0, 60.0),
        ("average", 70.0, 50.0),
    ]
    md = base2new_markdown(rows)
    assert "| coop | average | 70.00 ± 14.14 | 50.00 ± 14.14 | 58.33 | 2 |" in md


def test_harmonic_mean_edges():
    assert harmonic_mean(0, 0) == 0.0
    assert harmonic_mean(50, 50) == 50.0
