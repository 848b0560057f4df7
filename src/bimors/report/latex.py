"""A :class:`~bimors.report.grid.Table` as a booktabs LaTeX table, and the whole report.tex.

Every piece of text (method, dataset, notes) goes through :func:`escape`, so a
method called ``clip_adapter`` or a note with ``%`` or ``±`` compiles. The
document needs only ``booktabs``, ``graphicx`` and ``geometry``; each
``table`` environment can be pasted into a paper on its own.
"""

from __future__ import annotations

from bimors.report import cellfmt
from bimors.report.grid import METRIC_LABELS, Line, Table
from bimors.report.notes import table_notes

L = cellfmt.LATEX

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


def table_latex(table: Table) -> str:
    """One ``table`` environment: caption, booktabs tabular scaled to the line, notes."""
    body = [
        r"\begin{table}[htbp]",
        r"\centering",
        rf"\caption{{{escape(table.title)}}}",
        r"\resizebox{\linewidth}{!}{%",
        r"\begin{tabular}{l" + "r" * len(table.columns) + "}",
        r"\toprule",
        *_header(table),
        r"\midrule",
    ]
    for line in table.lines:
        body += _lines(table, line)
    body += [r"\bottomrule", r"\end{tabular}}", r"\par\smallskip\footnotesize"]
    body += [escape(n) + r"\par" for n in table_notes(table) + table.notes]
    body += [r"\end{table}", ""]
    return "\n".join(body)


def latex_document(tables: list[Table], intro: list[str] = (), extra: list[str] = ()) -> str:
    """A complete document that pdflatex compiles: every table, after ``intro`` paragraphs,
    then the ``extra`` LaTeX blocks (ablation tables)."""
    head = [
        r"\documentclass{article}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage[utf8]{inputenc}",
        r"\usepackage[landscape,margin=1.5cm]{geometry}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        r"\begin{document}",
    ]
    paras = [escape(p) + "\n" for p in intro]
    return "\n".join(
        head + paras + [table_latex(t) for t in tables] + list(extra) + [r"\end{document}", ""]
    )
