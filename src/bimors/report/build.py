"""``bimors report``: gather every run's records under a folder and write all tables and plots.

Writes ``report.md`` (every table with the published numbers and the
differences, the notes and the honest-comparison caveats), ``report.csv``
(every cell), ``report.tex`` (a document pdflatex compiles), one figure per
table, and per run a confusion matrix and per-class accuracy (``per_run/``).

Runs of a sweep (records with ``sweep``, see :mod:`bimors.grid.sweep`)
stay out of the main tables, which hold one configuration per method; they
get ablation tables (``ablation.csv`` and sections of ``report.md`` and
``report.tex``) and, where ``data.shots`` is swept, few-shot curve figures
(``fewshot_<protocol>[_<source>]_<keys>.png``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from bimors.core import atomic
from bimors.report.ablation import ablation_csv, ablation_latex, ablation_markdown, ablation_tables
from bimors.report.aggregate import base2new_rows, latest, transfer_rows
from bimors.report.csvout import tables_csv
from bimors.report.curves import curve_figure, has_curve
from bimors.report.fewshot import (
    PUBLISHED_FILE,
    fewshot_figure,
    fewshot_markdown,
    fewshot_tables,
    load_published,
)
from bimors.report.grid import Table, base2new_table, transfer_tables
from bimors.report.identity import paper_mismatch, setting_label, split_by_setting
from bimors.report.latex import latex_document
from bimors.report.markdown import table_markdown
from bimors.report.notes import CAVEATS
from bimors.report.perclass import write_per_run
from bimors.report.plots import table_figure

logger = logging.getLogger(__name__)

TRANSFER = ("cross_dataset", "domain_gen")


def collect_records(root: str | Path) -> list[dict[str, Any]]:
    """Every record of every ``results.jsonl`` under ``root`` (sorted paths: stable order)."""
    root = Path(root)
    if not root.is_dir():
        from bimors.core.errors import DataError

        raise DataError(f"runs folder {root} does not exist")
    records = []
    for path in sorted(root.rglob("results.jsonl")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    logger.warning("skipping unreadable line %d of %s", i + 1, path)
    return records


def report_tables(records: list[dict[str, Any]]) -> list[Table]:
    """Per setting (see :mod:`bimors.report.identity`): Table 1 (if base-to-new records
    exist), then the transfer tables, in the papers' order. Runs whose identity differs
    in anything but the seed never share a cell."""
    groups = split_by_setting(records)
    tables = []
    for setting, group in groups:
        label = setting_label(setting)
        differs = paper_mismatch(setting)
        for table in _setting_tables(group):
            table.setting = label
            table.labelled = len(groups) > 1
            table.notes.append(f"Runs: {label}. " + _seeds_note(table))
            if differs and any(line.has_published for line in table.lines):
                _drop_published(table)
                table.notes.append(
                    "No published numbers or Δ: the paper's tables are 16-shot on ViT-B/16 with "
                    "OpenAI's weights; these runs differ (" + "; ".join(differs) + ")."
                )
            tables.append(table)
    return tables


def _drop_published(table: Table) -> None:
    """Remove the published numbers (and lines that only held them) from ``table``."""
    for line in table.lines:
        for cell in line.cells.values():
            cell.published = None
    table.lines = [line for line in table.lines if line.has_ours]


def _seeds_note(table: Table) -> str:
    """The seeds behind each line's cells."""
    parts = []
    for line in table.lines:
        seeds = sorted(
            {str(k) for c in line.cells.values() if c.has_ours for k in c.ours.by_seed},
            key=lambda s: (len(s), s),
        )
        if seeds:
            parts.append(f"{line.label}: seed {', '.join(seeds)}")
    return ("Seeds: " + "; ".join(parts) + ".") if parts else ""


def _setting_tables(records: list[dict[str, Any]]) -> list[Table]:
    tables = []
    b2n = base2new_rows(records)
    if b2n:
        tables.append(base2new_table(b2n))
    for protocol in TRANSFER:
        rows = transfer_rows(records, protocol)
        if rows:
            tables += transfer_tables(rows, protocol)
    return tables


def _figure_name(table: Table) -> str:
    if table.protocol == "base2new":
        return "base2new.png"
    return f"{table.protocol}_{table.source}.png"


def build_report(
    runs: str | Path, out: str | Path | None = None, per_run: bool = True
) -> dict[str, Any]:
    """Write the report into ``out`` (default: ``runs``); ``per_run``: per-run figures too."""
    records = collect_records(runs)
    if not records:
        from bimors.core.errors import DataError

        found = sorted(Path(runs).rglob("results.jsonl"))
        why = (
            f"its {len(found)} results.jsonl file(s) hold no readable record"
            if found
            else "it holds no results.jsonl (a finished run writes RUN/results.jsonl)"
        )
        raise DataError(
            f"nothing to report under {runs}: {why}; pass the folder given to "
            "`bimors run --out` or `bimors train --out`"
        )
    out = Path(out or runs)
    tables = report_tables([r for r in records if not r.get("sweep")])
    ablations = ablation_tables(records)
    md = ["# Results\n", f"{len(records)} records from {runs}.\n"]
    figures, captions = [], []
    compared = any(line.has_published for t in tables for line in t.lines)
    used: set[str] = set()
    for table in tables:
        name = _figure_name(table)
        n = 2
        while name in used:  # one figure per table when several settings share a protocol
            name = _figure_name(table).replace(".png", f"_{n}.png")
            n += 1
        used.add(name)
        md += [f"## {table.title}\n", table_markdown(table), f"![{table.title}]({name})\n"]
        figures.append(table_figure(table, out / name))
        captions.append((name, table.title))
    for ablation in ablations:
        md += [f"## {ablation.title}\n", ablation_markdown(ablation)]
        if has_curve(ablation):
            name = f"fewshot_{ablation.slug}.png"
            figures.append(curve_figure(ablation, out / name))
            captions.append((name, f"Few-shot curves: {ablation.title}"))
            md.append(f"![Few-shot curves: {ablation.title}]({name})\n")
    ref = Path(runs) / PUBLISHED_FILE
    few = fewshot_tables(records, load_published(ref) if ref.is_file() else [])
    for backbone in dict.fromkeys(t.backbone for t in few):
        mine = [t for t in few if t.backbone == backbone]
        md.append(f"## Few-shot protocol, backbone {backbone}\n")
        for t in mine:
            md += [f"### {t.dataset} ({backbone})\n", fewshot_markdown(t)]
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in backbone)
        name = f"fewshot_protocol_{stem}.png"
        figures.append(fewshot_figure(mine, out / name))
        md.append(f"![Few-shot curves, {backbone}]({name})\n")
    if compared:
        md += ["## Reading the comparison\n", CAVEATS + "\n"]
    markdown = "\n".join(md)
    atomic.write_text(out / "report.md", markdown)
    atomic.write_text(out / "report.csv", tables_csv(tables))
    if ablations:
        atomic.write_text(out / "ablation.csv", ablation_csv(ablations))
    atomic.write_text(
        out / "report.tex",
        latex_document(
            tables,
            [CAVEATS] if compared else [],
            [ablation_latex(a) for a in ablations],
            captions,
        ),
    )
    extra = write_per_run(latest(records), out) if per_run else []
    return {
        "markdown": markdown,
        "records": len(records),
        "tables": tables,
        "ablations": ablations,
        "fewshot": few,
        "files": [out / "report.md", out / "report.csv", out / "report.tex", *figures],
        "per_run": extra,
    }
