"""The report on hand-made records whose means, spreads, counts and differences are known."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from bimors.report import published as pub
from bimors.report.aggregate import base2new_rows, harmonic_mean, transfer_rows
from bimors.report.build import build_report, report_tables
from bimors.report.csvout import tables_csv
from bimors.report.grid import base2new_table, transfer_tables
from bimors.report.latex import escape, latex_document, table_latex
from bimors.report.markdown import table_markdown
from bimors.report.names import method_label
from bimors.report.perclass import per_class_csv
from bimors.report.plots import draw_figure
from tests.report_grid import CLASSES, METHODS, grid_records, write_grid

SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "published_results.json"


def _rec(method, dataset, split, seed, acc, **extra):
    return {
        "method": method,
        "dataset": dataset,
        "protocol": "base2new",
        "split": split,
        "seed": seed,
        "accuracy": acc,
        **extra,
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
    per_seed = [harmonic_mean(90, 40), harmonic_mean(80, 60)]
    assert row.hm != pytest.approx(statistics.fmean(per_seed))
    assert row.hm_stat.std == pytest.approx(statistics.stdev(per_seed))


def test_average_spread_is_over_seeds_and_counts_seeds_and_datasets():
    # per-dataset means 85 and 70 (a spread across datasets of 10.6); per-seed averages 80, 75
    recs = [
        _rec("coop", "a", "base", 1, 80.0),
        _rec("coop", "a", "base", 2, 90.0),
        _rec("coop", "a", "base", 3, 85.0),  # seed 3 only on "a": in a's mean, not in the ±
        _rec("coop", "b", "base", 1, 80.0),
        _rec("coop", "b", "base", 2, 60.0),
    ] + [_rec("coop", d, "new", s, 50.0) for d in "ab" for s in (1, 2)]
    avg = next(r for r in base2new_rows(recs) if r.dataset == "average")
    assert avg.base.mean == pytest.approx((85.0 + 70.0) / 2)
    assert avg.base.std == pytest.approx(statistics.stdev([80.0, 75.0]))
    assert (avg.base.n, avg.base.datasets) == (2, 2)
    md = table_markdown(base2new_table(base2new_rows(recs)))
    assert "Every average is over 2 datasets × 2 seeds." in md
    assert "1-3 seeds per cell" not in md and "2-3 seeds per cell" in md


@pytest.fixture(scope="module")
def grid():
    records = grid_records()
    return records, report_tables(records)


def _csv(tables):
    return list(csv.DictReader(io.StringIO(tables_csv(tables))))


def _expected_ours(protocol, method, dataset, metric):
    """The seed mean the hand-made records imply (published - 1 per cell, see report_grid)."""
    if protocol == "base2new":
        datasets = list(CLASSES) if dataset == "average" else [dataset]
        if metric == "hm":
            b = statistics.fmean(
                pub.published_value(protocol, method, d, "base") - 1 for d in datasets
            )
            n = statistics.fmean(
                pub.published_value(protocol, method, d, "new") - 1 for d in datasets
            )
            return harmonic_mean(b, n)
        return statistics.fmean(
            pub.published_value(protocol, method, d, metric) - 1 for d in datasets
        )
    return pub.published_value(protocol, method, dataset, metric) - 1


def test_every_published_number_appears_with_the_right_difference(grid):
    _, tables = grid
    rows = {(r["protocol"], r["method"], r["dataset"], r["metric"]): r for r in _csv(tables)}
    data = json.loads((Path(pub.__file__).parent / "published_results.json").read_text())
    seen = 0
    for protocol in ("base2new", "cross_dataset", "domain_gen"):
        for method, cells in data[protocol]["results"].items():
            for dataset, values in cells.items():
                values = values if isinstance(values, list) else [values]
                metrics = ("base", "new", "hm") if protocol == "base2new" else ("acc",)
                for metric, value in zip(metrics, values, strict=True):
                    row = rows[(protocol, method, dataset, metric)]
                    assert float(row["published"]) == pytest.approx(value), row
                    if method in ("erm", "dann"):  # published only: no run, no difference
                        assert row["mean"] == row["difference"] == ""
                    else:
                        want = _expected_ours(protocol, method, dataset, metric) - value
                        assert float(row["difference"]) == pytest.approx(want, abs=1e-4), row
                    seen += 1
    assert seen == 90 + 24 + 32
    # the transfer tables' published average is the mean of the published targets
    row = rows[("domain_gen", "applenet", "average", "acc")]
    assert float(row["published"]) == pytest.approx((81.03 + 82.23 + 74.03) / 3)
    assert float(row["difference"]) == pytest.approx(-1.0)


def test_markdown_lines_follow_the_papers_order_and_show_published_and_delta(grid):
    _, tables = grid
    b2n, cross, dg = tables
    md = table_markdown(b2n)
    names = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ")]
    ours = [n for n in names if not n.startswith("↳") and n != "Method"]
    assert ours == [method_label(m) for m in (*pub_order(), "linear_probe")]
    lines = md.splitlines()
    i = lines.index(next(x for x in lines if x.startswith("| CoOp |")))
    assert lines[i + 1].startswith("| ↳ published | 91.62 | 62.23 | 74.12 | 92.52 |")
    assert lines[i + 2].startswith("| ↳ Δ | -1.00 | -1.00 | -1.04 |")
    assert lines[i].startswith("| CoOp | 90.62 ± 1.00 | 61.23 ± 1.00 |")
    # ERM and DANN have published numbers only, in the paper's place
    dg_names = [
        x.split("|")[1].strip() for x in table_markdown(dg).splitlines()[2:] if x.startswith("| ")
    ]
    dg_names = [n for n in dg_names if not n.startswith("↳")]
    assert dg_names[:3] == ["ERM (published)", "CLIP", "DANN (published)"]
    assert cross.groups == ["patternnet", "rsicd", "resisc45", "mlrsnet", "average"]


def pub_order():
    return ("zeroshot", "coop", "clip_adapter", "cocoop", "prograd", "maple", "applenet", "bimors")


def test_best_of_each_column_is_marked(grid):
    _, (b2n, cross, _) = grid
    md = table_markdown(b2n).splitlines()
    applenet = next(x for x in md if x.startswith("| APPLeNet |"))
    bimors = next(x for x in md if x.startswith("| BiMoRS |"))
    assert applenet.split("|")[2].strip() == "**93.89** ± 1.00"  # PatternNet base: APPLeNet
    assert bimors.split("|")[3].strip() == "**74.00** ± 1.00"  # PatternNet new: BiMoRS 74
    assert sum("**" in x.split("|")[2] for x in md if x.startswith("| ") and "↳" not in x) == 1
    rows = [r for r in _csv([cross]) if r["best"] == "1"]
    assert {(r["method"], r["dataset"]) for r in rows} == {
        ("applenet", "patternnet"),
        *(("bimors", d) for d in ("rsicd", "resisc45", "mlrsnet", "average")),
    }


def test_average_rows_count_seeds_and_datasets(grid):
    _, tables = grid
    rows = _csv(tables)
    avg = [r for r in rows if r["dataset"] == "average" and r["mean"]]
    assert {(r["protocol"], r["datasets"], r["seeds"]) for r in avg} == {
        ("base2new", "4", "3"),
        ("cross_dataset", "3", "3"),
        ("domain_gen", "3", "3"),
    }
    assert all(float(r["std"]) == pytest.approx(1.0) for r in avg if r["metric"] != "hm")
    for table in tables:
        md = table_markdown(table)
        n = 4 if table.protocol == "base2new" else 3
        assert f"Every average is over {n} datasets × 3 seeds." in md
        assert "std over seeds of the per-seed average" in md


def test_fallback_cells_are_marked_in_every_format(grid):
    _, (b2n, *_rest) = grid
    probe = next(x for x in table_markdown(b2n).splitlines() if x.startswith("| Linear probe |"))
    cells = [c.strip() for c in probe.split("|")[2:-1]]
    assert [c.endswith("†") for c in cells[:3]] == [False, True, True]  # base, new, H
    assert "† scored by a fallback (zeroshot)" in table_markdown(b2n)
    assert r"59.00 $\pm$ 1.00$^\dagger$" in table_latex(b2n)
    rows = [r for r in _csv([b2n]) if r["method"] == "linear_probe"]
    assert {r["metric"] for r in rows if r["fallback"] == "zeroshot"} == {"new", "hm"}


def test_latex_escapes_every_special_character():
    nasty = 'a_b&c%d$e#f{g}h~i^j\\k|l<m>n"o'
    assert escape(nasty) == (
        r"a\_b\&c\%d\$e\#f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k"
        r"\textbar{}l\textless{}m\textgreater{}n\textquotedbl{}o"
    )
    assert escape("± † Δ × −") == r"$\pm$ $^\dagger$ $\Delta$ $\times$ $-$"
    recs = [_rec(nasty, "my_set", s, 1, 50.0) for s in ("base", "new")]
    tex = table_latex(base2new_table(base2new_rows(recs)))
    assert escape(nasty) in tex and "my\\_set" in tex and "clip_adapter" not in tex
    grid_tex = latex_document(report_tables(grid_records()))
    assert "CLIP-Adapter" in grid_tex and "clip_adapter" not in grid_tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_report_compiles_with_pdflatex(tmp_path):
    nasty = 'my_method&50%$#{}~^\\|<>"é'
    records = grid_records() + [_rec(nasty, "rsicd", s, 1, 50.0) for s in ("base", "new")]
    (tmp_path / "report.tex").write_text(latex_document(report_tables(records), ["100% _ok_"]))
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "report.pdf").stat().st_size > 1000


def test_transfer_tables_without_the_papers_source_show_ours_only():
    recs = [
        {**_rec("coop", d, "all", 1, v), "protocol": "cross_dataset", "train_dataset": "ucmerced"}
        for d, v in (("ucmerced", 90.0), ("aid", 40.0), ("eurosat", 30.0))
    ]
    (table,) = transfer_tables(transfer_rows(recs, "cross_dataset"), "cross_dataset")
    assert table.groups == ["ucmerced", "aid", "eurosat", "average"]
    md = table_markdown(table)
    assert "| CoOp | 90.00 | 40.00 | 30.00 | 35.00 |" in md.replace("**", "")
    assert "published" not in md.lower()


def test_figures_keep_legends_off_the_data(grid):
    _, tables = grid
    for table in tables:
        fig = draw_figure(table)
        fig.canvas.draw()
        legend = fig.legends[0].get_window_extent()
        for ax in fig.axes:
            assert not legend.overlaps(ax.get_window_extent()), table.title
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert "published" in labels
        if table.protocol == "base2new":
            assert "zero-shot fallback" in labels
            ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
            assert ticks == [method_label(m) for m in (*pub_order(), "linear_probe")]
            # error bars: one per bar, their half-length the std over seeds (1.0)
            bars = [c for c in fig.axes[0].containers if hasattr(c, "errorbar")]
            assert bars and all(c.errorbar is not None for c in bars)
        else:
            labels = labels[: len(METHODS)]
            assert labels == [method_label(m) for m in pub_order()]
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_report_writes_every_file_and_per_run_figures(tmp_path):
    # per-run figures for BiMoRS seed 1 only (older records lack a matrix): keeps it short
    records = [
        r if (r["method"], r["seed"]) == ("bimors", 1) else {**r, "confusion": None}
        for r in grid_records()
    ]
    for r in records:
        if r["confusion"] is None:
            del r["confusion"]
    runs = write_grid(tmp_path / "runs", records)
    report = build_report(runs, tmp_path / "out")
    out = tmp_path / "out"
    for name in ("report.md", "report.csv", "report.tex", "base2new.png"):
        assert (out / name).is_file()
    for name in ("cross_dataset_patternnet.png", "domain_gen_patternnetv2.png"):
        with Image.open(out / name) as im:
            assert im.size[0] >= 1000  # 7 in at 200 dpi
    md = (out / "report.md").read_text()
    assert "select the checkpoint on the test set" in md and "MLRSNet has no published split" in md
    run = out / "per_run" / "base2new" / "mlrsnet" / "bimors" / "seed1"
    for split, k in (("base", 23), ("new", 23)):
        lines = (run / f"mlrsnet_{split}_confusion.csv").read_text().splitlines()
        assert len(lines) == k + 1 and len(lines[0].split(",")) == k + 1
        with Image.open(run / f"mlrsnet_{split}_confusion.png") as im:
            assert im.format == "PNG"
        assert (run / f"mlrsnet_{split}_per_class.png").is_file()
    assert len(report["per_run"]) == 4 * (4 * 2 + 4 + 4)  # 4 files per base2new/transfer record


def test_per_class_csv_names_the_most_confused_class():
    text = per_class_csv(["river", "lake", "road"], [[6, 3, 1], [2, 8, 0], [0, 0, 0]])
    assert text.splitlines() == [
        "class,correct,total,accuracy,most_confused_with,count",
        "river,6,10,60.00,lake,3",
        "lake,8,10,80.00,river,2",
        "road,0,0,,,0",
    ]


def test_package_carries_the_published_numbers_it_cites():
    ours = json.loads((Path(pub.__file__).parent / "published_results.json").read_text())
    assert "mainaksingha01/APPLeNet" in pub.source() and pub.source() == ours["source"]
    assert pub.paper_datasets("domain_gen") == (
        "patternnetv2",
        "rsicdv2",
        "resisc45v2",
        "mlrsnetv2",
    )
    assert pub.published_value("base2new", "applenet", "average", "hm") == 72.56
    assert pub.published_value("base2new", "bimors", "rsicd", "base") is None
    if SHARED.is_file():  # the transcription this project was given
        assert ours == json.loads(SHARED.read_text())
