"""Every table cell as one CSV line: ours, its spread and counts, published, difference.

Long format so a spreadsheet or pandas can pivot it any way: one line per
(protocol, training dataset, method, dataset or ``average``, metric). Empty
fields mean "none" (no run of ours, no published number, no comparable Δ).
"""

from __future__ import annotations

import csv
import io
import math

from bimors.report.grid import Table

HEADER = [
    "protocol",
    "train_dataset",
    "method",
    "dataset",
    "metric",
    "mean",
    "std",
    "seeds",
    "datasets",
    "fallback",
    "published",
    "difference",
    "best",
    "seed_list",  # the seeds behind the cell, ";"-separated
    "setting",  # what the table's runs share (backbone, weights, shots, sampler, version)
]


def _num(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.4f}"


def tables_csv(tables: list[Table]) -> str:
    """All cells of ``tables``; ``best`` is 1 in the cell of our best mean per column."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for table in tables:
        for line in table.lines:
            for (group, metric), cell in line.cells.items():
                if not cell.has_ours and cell.published is None:
                    continue
                best = table.best((group, metric))[0]
                s = cell.ours if cell.has_ours else None
                is_best = s is not None and best is not None and round(s.mean, 2) == round(best, 2)
                train = table.source or ("average" if group == "average" else group)
                w.writerow(
                    [
                        table.protocol,
                        train,
                        line.method,
                        group,
                        metric,
                        _num(s.mean if s else None),
                        _num(s.std if s and s.n > 1 else None),
                        s.n if s else "",
                        s.datasets if s else "",
                        s.fallback if s else "",
                        _num(cell.published),
                        _num(cell.diff),
                        int(is_best),
                        ";".join(map(str, s.by_seed)) if s else "",
                        table.setting,
                    ]
                )
    return buf.getvalue()
