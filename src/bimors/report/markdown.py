"""A :class:`~bimors.report.grid.Table` as a Markdown table with its footnotes.

Under each of our methods with published numbers come a ``published`` line
and a ``Δ`` line (ours − published); a method with published numbers only
gets one ``(published)`` line.
"""

from __future__ import annotations

from bimors.report import cellfmt
from bimors.report.grid import METRIC_LABELS, Line, Table
from bimors.report.notes import table_notes

M = cellfmt.MARKDOWN


def _escape(text: str) -> str:
    """A pipe would end a Markdown cell."""
    return text.replace("|", "\\|")


def _header(table: Table) -> list[str]:
    names = [
        _escape(f"{table.group_label(g)} {METRIC_LABELS[m]}".strip()) for g, m in table.columns
    ]
    return ["| Method | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]


def _lines(table: Table, line: Line) -> list[str]:
    cols = table.columns
    best = [table.best(col) for col in cols]
    cells = [line.cells[col] for col in cols]
    pub = " | ".join(
        cellfmt.published(c.published, b[1], M) for c, b in zip(cells, best, strict=True)
    )
    if not line.has_ours:
        return [f"| {_escape(line.label)} (published) | {pub} |"]
    ours = " | ".join(cellfmt.ours(c.ours, b[0], M) for c, b in zip(cells, best, strict=True))
    out = [f"| {_escape(line.label)} | {ours} |"]
    if line.has_published:
        out.append(f"| ↳ published | {pub} |")
        out.append("| ↳ Δ | " + " | ".join(cellfmt.diff(c.diff, M) for c in cells) + " |")
    return out


def table_markdown(table: Table) -> str:
    """The table, a blank line, and its notes as a list."""
    rows = _header(table)
    for line in table.lines:
        rows += _lines(table, line)
    notes = [f"- {n}" for n in table_notes(table) + table.notes]
    return "\n".join(rows) + "\n\n" + "\n".join(notes) + "\n"
