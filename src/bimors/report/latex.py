"""A :class:`~bimors.report.grid.Table` as a booktabs LaTeX table, and the whole report.tex.

Every piece of text (method, dataset, notes) goes through :func:`escape`, so a
method called ``clip_adapter`` or a note with ``%`` or ``±`` compiles. The
document needs only ``booktabs``, ``graphicx`` and ``geometry``; each
``table`` environment can be pasted into a paper on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TypeVar

from bimors.report import cellfmt
from bimors.report.grid import METRIC_LABELS, Line, Table
from bimors.report.notes import table_notes

L = cellfmt.LATEX
T = TypeVar("T")

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
    "±": r"$\pm$",
    "†": r"$^\dagger$",
    "Δ": r"$\Delta$",
    "×": r"$\times$",
    "−": "$-$",
    "–": "--",
    "—": "---",
    "↳": "",
    "…": r"\dots{}",
    "\n": " ",
}


def escape(text: str) -> str:
    """``text`` as LaTeX that typesets it literally (T1 covers Latin-1 letters; other
    characters a default pdflatex cannot set become ``?``)."""
    out = []
    for ch in text:
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
        elif ord(ch) < 32:
            out.append(" ")
        elif ord(ch) > 0xFF:
            out.append("?")
        else:
            out.append(ch)
    return "".join(out)


def _header(table: Table) -> list[str]:
    k = len(table.metrics)
    if k == 1:
        names = " & ".join(escape(table.group_label(g)) for g in table.groups)
        return [f"Method & {names} \\\\"]
    groups = " & ".join(
        rf"\multicolumn{{{k}}}{{c}}{{{escape(table.group_label(g))}}}" for g in table.groups
    )
    rules = " ".join(
        rf"\cmidrule(lr){{{2 + i * k}-{1 + (i + 1) * k}}}" for i in range(len(table.groups))
    )
    metrics = " & ".join(METRIC_LABELS[m] for _, m in table.columns)
    return [f" & {groups} \\\\", rules, f"Method & {metrics} \\\\"]


def _lines(table: Table, line: Line) -> list[str]:
    best = [table.best(col) for col in table.columns]
    cells = [line.cells[col] for col in table.columns]
    pub = " & ".join(
        cellfmt.published(c.published, b[1], L) for c, b in zip(cells, best, strict=True)
    )
    name = escape(line.label)
    if not line.has_ours:
        return [f"{name} (published) & {pub} \\\\"]
    ours = " & ".join(cellfmt.ours(c.ours, b[0], L) for c, b in zip(cells, best, strict=True))
    out = [f"{name} & {ours} \\\\"]
    if line.has_published:
        out.append(rf"\quad published & {pub} \\")
        out.append(
            r"\quad $\Delta$ & " + " & ".join(cellfmt.diff(c.diff, L) for c in cells) + r" \\"
        )
    return out


#: Numeric columns one table holds at the document's font size on a landscape page
#: ("**78.50** ± 0.71" is about 2.3 cm wide); wider tables are split, never shrunk.
MAX_NUMBERS = 9


def column_parts(columns: Sequence[T], per_part: int) -> list[list[T]]:
    """``columns`` in consecutive parts of at most ``per_part`` (at least one part)."""
    per_part = max(1, per_part)
    return [list(columns[i : i + per_part]) for i in range(0, len(columns), per_part)] or [[]]


def table_latex(table: Table) -> str:
    """``table`` environments at the document's font size: booktabs tabulars of at most
    :data:`MAX_NUMBERS` numbers, split by dataset group; the notes under the last part."""
    parts = column_parts(table.groups, MAX_NUMBERS // max(1, len(table.metrics)))
    out = []
    for i, groups in enumerate(parts, 1):
        part = dataclasses.replace(table, groups=groups)
        title = table.title + (f" (part {i} of {len(parts)})" if len(parts) > 1 else "")
        body = [
            r"\begin{table}[htbp]",
            r"\centering",
            rf"\caption{{{escape(title)}}}",
            r"\begin{tabular}{l" + "r" * len(part.columns) + "}",
            r"\toprule",
            *_header(part),
            r"\midrule",
        ]
        for line in table.lines:
            body += _lines(part, line)
        body += [r"\bottomrule", r"\end{tabular}"]
        if i == len(parts):
            body += [r"\par\smallskip\footnotesize"]
            body += [escape(n) + r"\par" for n in table_notes(table) + table.notes]
        body += [r"\end{table}", ""]
        out.append("\n".join(body))
    return "\n".join(out)


def figure_latex(path: str, caption: str) -> str:
    """A ``figure`` environment for a PNG beside report.tex."""
    return "\n".join(
        [
            r"\begin{figure}[htbp]",
            r"\centering",
            rf"\includegraphics[width=\linewidth,height=0.8\textheight,keepaspectratio]{{{path}}}",
            rf"\caption{{{escape(caption)}}}",
            r"\end{figure}",
            "",
        ]
    )


def latex_document(
    tables: list[Table],
    intro: Sequence[str] = (),
    extra: Sequence[str] = (),
    figures: Sequence[tuple[str, str]] = (),
) -> str:
    """A complete document that pdflatex compiles: every table, after ``intro`` paragraphs,
    then the ``extra`` LaTeX blocks (ablation tables), then ``figures`` (file, caption)."""
    head = [
        r"\documentclass{article}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage[utf8]{inputenc}",
        r"\usepackage[landscape,margin=1.2cm]{geometry}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        r"\begin{document}",
    ]
    paras = [escape(p) + "\n" for p in intro]
    return "\n".join(
        head
        + paras
        + [table_latex(t) for t in tables]
        + list(extra)
        + [figure_latex(f, c) for f, c in figures]
        + [r"\end{document}", ""]
    )
