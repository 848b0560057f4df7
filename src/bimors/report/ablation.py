"""Ablation tables of swept grids: a row per (method, swept value combination).

Records of a swept run carry ``record["sweep"]`` (``{"data.shots": 4,
"method.n_ctx": 2}``, see :mod:`bimors.grid.sweep`). Records are grouped
by protocol, training dataset (transfer protocols) and the set of swept keys;
each point gets the protocol's own aggregation (:func:`base2new_rows`,
:func:`transfer_rows`: mean ± std over seeds, HM of the seed means), so an
ablation row reads like a line of the main table, with the swept values in
columns of their own. Published numbers are not shown: they belong to one
configuration, not to each point of a sweep.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import Any

from bimors.report import cellfmt
from bimors.report.aggregate import Stat, base2new_rows, transfer_rows
from bimors.report.grid import METRIC_LABELS, TITLES
from bimors.report.latex import MAX_NUMBERS, column_parts, escape
from bimors.report.names import dataset_label, method_label, order_methods
from bimors.report.shortnames import legend, short_names

Column = tuple[str, str]  # (dataset or "average", metric)


@dataclasses.dataclass
class AblationRow:
    method: str
    point: dict[str, Any]  # swept key -> value
    cells: dict[Column, Stat]


@dataclasses.dataclass
class AblationTable:
    protocol: str
    keys: list[str]  # the swept keys, in sweep order
    groups: list[str]
    metrics: list[str]
    rows: list[AblationRow]
    source: str | None = None  # training dataset of a transfer table

    @property
    def columns(self) -> list[Column]:
        return [(g, m) for g in self.groups for m in self.metrics]

    @property
    def subject(self) -> str:
        """The protocol (and source) the table is about."""
        base = TITLES.get(self.protocol, self.protocol)
        return base + (f", trained on {dataset_label(self.source)}" if self.source else "")

    @property
    def title(self) -> str:
        return f"Ablation over {' × '.join(self.keys)}: {self.subject}"

    @property
    def slug(self) -> str:
        """A file-name stem: protocol, source and the swept keys."""
        parts = [self.protocol, *([self.source] if self.source else [])]
        return "_".join([*parts, *(k.replace(".", "-") for k in self.keys)])

    def best(self, column: Column) -> float | None:
        means = [r.cells[column].mean for r in self.rows if _has(r.cells.get(column))]
        return max(means) if means else None

    def seeds(self) -> list[int]:
        return sorted({s.n for r in self.rows for s in r.cells.values() if _has(s)})


def _has(stat: Stat | None) -> bool:
    return stat is not None and not math.isnan(stat.mean)


def _point(record: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(record["sweep"].items())


def swept(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of swept runs (those the main tables leave out)."""
    return [r for r in records if r.get("sweep")]


def _group_by_point(records: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    by_point: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_point[_point(r)].append(r)
    return by_point


def _sorted_points(points: list[tuple]) -> list[tuple]:
    """Per key left to right: numbers ascending, then other values alphabetically (as
    YAML writes them), so a report does not depend on the order runs were found."""
    from bimors.grid.sweep import yaml_text

    def key(point: tuple) -> tuple:
        out = []
        for _, v in point:
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            out.append((0, float(v), "") if number else (1, 0.0, yaml_text(v)))
        return tuple(out)

    return sorted(points, key=key)


def ablation_tables(records: list[dict[str, Any]]) -> list[AblationTable]:
    """One table per (protocol, training dataset of a transfer protocol, swept keys)."""
    families: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in swept(records):
        families[(r.get("protocol"), tuple(r["sweep"]))].append(r)
    tables = []
    for (protocol, keys), recs in families.items():
        if protocol == "base2new":
            tables.append(_base2new(list(keys), recs))
        elif protocol in ("cross_dataset", "domain_gen"):
            tables += _transfer(protocol, list(keys), recs)
    return tables


def _base2new(keys: list[str], records: list[dict[str, Any]]) -> AblationTable:
    by_point = _group_by_point(records)
    found: dict[tuple[str, tuple], dict[Column, Stat]] = {}
    datasets: list[str] = []
    for point in _sorted_points(list(by_point)):
        for row in base2new_rows(by_point[point]):
            if row.dataset != "average" and row.dataset not in datasets:
                datasets.append(row.dataset)
            cells = found.setdefault((row.method, point), {})
            cells.update(
                {
                    (row.dataset, "base"): row.base,
                    (row.dataset, "new"): row.new,
                    (row.dataset, "hm"): row.hm_stat,
                }
            )
    groups = datasets + (["average"] if len(datasets) > 1 else [])
    return AblationTable("base2new", keys, groups, ["base", "new", "hm"], _rows(found))


def _transfer(protocol: str, keys: list[str], records: list[dict[str, Any]]) -> list[AblationTable]:
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_source[r.get("train_dataset", r["dataset"])].append(r)
    tables = []
    for source, recs in by_source.items():
        by_point = _group_by_point(recs)
        found: dict[tuple[str, tuple], dict[Column, Stat]] = {}
        targets: list[str] = []
        for point in _sorted_points(list(by_point)):
            for row in transfer_rows(by_point[point], protocol):
                targets += [d for d in row.targets if d not in targets]
                cells = {(d, "acc"): s for d, s in row.cells.items()}
                cells[("average", "acc")] = row.average
                found[(row.method, point)] = cells
        groups = [source, *targets, "average"]
        tables.append(AblationTable(protocol, keys, groups, ["acc"], _rows(found), source))
    return tables


def _rows(found: dict[tuple[str, tuple], dict[Column, Stat]]) -> list[AblationRow]:
    """Methods in the papers' order, each method's points in sorted order."""
    rows = []
    for method in order_methods(m for m, _ in found):
        for (m, point), cells in found.items():
            if m == method:
                rows.append(AblationRow(method, dict(point), cells))
    return rows


# -- rendering ---------------------------------------------------------------------------------
def _column_label(table: AblationTable, column: Column) -> str:
    group, metric = column
    label = dataset_label(group) + (" (source)" if group == table.source else "")
    return f"{label} {METRIC_LABELS[metric]}".strip()


def _note(table: AblationTable) -> str:
    seeds = table.seeds()
    counts = ", ".join(map(str, seeds)) if seeds else "0"
    return (
        f"Mean ± std over seeds ({counts} seed(s) per cell); one row per method and swept "
        "value; bold: the best in each column. Published numbers are for one configuration "
        "and are not shown here."
    )


def _value(value: Any) -> str:
    from bimors.grid.sweep import yaml_text

    return yaml_text(value)


def _shortened(table: AblationTable) -> dict[str, dict[str, str]]:
    """Per swept key, the short names of its long path values (see report.shortnames)."""
    return {k: short_names(_value(row.point.get(k)) for row in table.rows) for k in table.keys}


def _cell_value(table: AblationTable, key: str, value: Any, names: dict) -> str:
    text = _value(value)
    return names.get(key, {}).get(text, text)


def _legend_note(names: dict[str, dict[str, str]]) -> str:
    text = legend(names)
    return f"Full values: {text}." if text else ""


def ablation_markdown(table: AblationTable) -> str:
    """The table as Markdown, with its note."""
    m = cellfmt.MARKDOWN
    heads = ["Method", *table.keys, *(_column_label(table, c) for c in table.columns)]
    lines = [
        "| " + " | ".join(h.replace("|", "\\|") for h in heads) + " |",
        "|---|" + "---|" * len(table.keys) + "---:|" * len(table.columns),
    ]
    best = {c: table.best(c) for c in table.columns}
    names = _shortened(table)
    for row in table.rows:
        values = [
            _cell_value(table, k, row.point.get(k), names).replace("|", "\\|") for k in table.keys
        ]
        cells = [cellfmt.ours(row.cells.get(c), best[c], m) for c in table.columns]
        lines.append("| " + " | ".join([method_label(row.method), *values, *cells]) + " |")
    notes = [_note(table), _legend_note(names)]
    return "\n".join(lines) + "\n\n" + "".join(f"- {n}\n" for n in notes if n)


def ablation_latex(table: AblationTable) -> str:
    """Booktabs ``table`` environments at the document's font size: a table wider than
    :data:`~bimors.report.latex.MAX_NUMBERS` numbers is split into parts by columns."""
    ll = cellfmt.LATEX
    best = {c: table.best(c) for c in table.columns}
    names = _shortened(table)
    parts = column_parts(table.columns, max(1, MAX_NUMBERS - len(table.keys)))
    out = []
    for i, columns in enumerate(parts, 1):
        heads = ["Method", *table.keys, *(_column_label(table, c) for c in columns)]
        title = table.title + (f" (part {i} of {len(parts)})" if len(parts) > 1 else "")
        body = [
            r"\begin{table}[htbp]",
            r"\centering",
            rf"\caption{{{escape(title)}}}",
            r"\begin{tabular}{l" + "l" * len(table.keys) + "r" * len(columns) + "}",
            r"\toprule",
            " & ".join(escape(h) for h in heads) + r" \\",
            r"\midrule",
        ]
        for row in table.rows:
            values = [escape(_cell_value(table, k, row.point.get(k), names)) for k in table.keys]
            cells = [cellfmt.ours(row.cells.get(c), best[c], ll) for c in columns]
            body.append(" & ".join([escape(method_label(row.method)), *values, *cells]) + r" \\")
        body += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip\footnotesize"]
        if i == len(parts):
            notes = [n for n in (_note(table), _legend_note(names)) if n]
            body += [escape(n) + r"\par" for n in notes]
        body += [r"\end{table}", ""]
        out.append("\n".join(body))
    return "\n".join(out)


def ablation_csv(tables: list[AblationTable]) -> str:
    """Every cell of every ablation table: one line per (row, column)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["protocol", "source", "method", "sweep", "dataset", "metric", "mean", "std", "seeds"]
    )
    for t in tables:
        for row in t.rows:
            point = ",".join(f"{k}={_value(v)}" for k, v in row.point.items())
            for (group, metric), s in row.cells.items():
                where = [t.protocol, t.source or "", row.method, point, group, metric]
                writer.writerow([*where, f"{s.mean:.4f}", f"{s.std:.4f}", s.n])
    return buf.getvalue()
