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


def test_fallback_cells_are_marked_in_every_table():
    from bimors.report.aggregate import transfer_rows
    from bimors.report.tables import base2new_latex, records_csv, transfer_markdown

    recs = [
        _rec("linear_probe", "a", "base", 1, 80.0),
        _rec("linear_probe", "a", "new", 1, 40.0) | {"fallback": "zeroshot"},
        _rec("linear_probe", "b", "base", 1, 60.0),
        _rec("linear_probe", "b", "new", 1, 50.0) | {"fallback": "zeroshot"},
        _rec("coop", "a", "base", 1, 70.0),
        _rec("coop", "a", "new", 1, 30.0),
    ]
    rows = base2new_rows(recs)
    assert [(r.dataset, r.base.fallback, r.new.fallback) for r in rows] == [
        ("a", "", "zeroshot"),
        ("b", "", "zeroshot"),
        ("average", "", "zeroshot"),
        ("a", "", ""),
    ]
    md = base2new_markdown(rows)
    assert "| linear_probe | a | 80.00 | 40.00† |" in md and "| coop | a | 70.00 | 30.00 |" in md
    assert "† scored by a fallback (zeroshot)" in md
    assert "† scored by" not in base2new_markdown(rows[3:])
    assert r"40.00$^\dagger$" in base2new_latex(rows)
    cross = [
        {**_rec("linear_probe", "a", "all", 1, 90.0), "protocol": "cross_dataset"},
        {
            **_rec("linear_probe", "b", "all", 1, 20.0),
            "protocol": "cross_dataset",
            "train_dataset": "a",
            "fallback": "zeroshot",
        },
    ]
    trows = transfer_rows(cross, "cross_dataset")
    assert "| linear_probe | 90.00 | 20.00† |" in transfer_markdown(trows)
    lines = records_csv(rows, trows).splitlines()
    assert lines[0].endswith(",fallback")
    assert "cross_dataset,linear_probe,a,b,all,20.0000,0.0000,1,zeroshot" in lines
    assert "base2new,linear_probe,a,a,hm,53.3333,,,zeroshot" in lines
