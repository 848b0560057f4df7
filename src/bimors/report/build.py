"""``bimors report``: gather every run's records under a folder and write all tables and plots."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from bimors import atomic
from bimors.report.aggregate import base2new_rows, transfer_rows
from bimors.report.plots import base2new_bars, transfer_bars
from bimors.report.tables import (
    base2new_latex,
    base2new_markdown,
    records_csv,
    transfer_latex,
    transfer_markdown,
)

logger = logging.getLogger(__name__)

TITLES = {"cross_dataset": "Cross-dataset", "domain_gen": "Domain generalisation"}


def collect_records(root: str | Path) -> list[dict[str, Any]]:
    """Every record of every ``results.jsonl`` under ``root`` (sorted paths: stable order)."""
    root = Path(root)
    if not root.is_dir():
        from bimors.errors import DataError

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


def build_report(runs: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write report.md, report.csv, report.tex and PNG plots into ``out`` (default: ``runs``)."""
    records = collect_records(runs)
    out = Path(out or runs)
    b2n = base2new_rows(records)
    transfer = {p: transfer_rows(records, p) for p in TITLES}
    md = ["# Results\n", f"{len(records)} records from {runs}.\n"]
    tex = []
    plots = []
    if b2n:
        md += ["## Base-to-new generalisation\n", base2new_markdown(b2n, published=True)]
        tex.append(base2new_latex(b2n))
        plots.append(
            base2new_bars([r for r in b2n if r.dataset == "average"] or b2n, out / "base2new.png")
        )
    for protocol, rows in transfer.items():
        if rows:
            md += [f"## {TITLES[protocol]}\n", transfer_markdown(rows)]
            tex.append(transfer_latex(rows))
            plots.append(transfer_bars(rows, out / f"{protocol}.png", TITLES[protocol]))
    markdown = "\n".join(md)
    atomic.write_text(out / "report.md", markdown)
    atomic.write_text(
        out / "report.csv", records_csv(b2n, [r for rows in transfer.values() for r in rows])
    )
    atomic.write_text(out / "report.tex", "\n".join(tex))
    return {
        "markdown": markdown,
        "records": len(records),
        "files": [out / "report.md", out / "report.csv", out / "report.tex", *plots],
    }
