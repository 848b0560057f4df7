"""Markdown tables of aggregated results."""

from __future__ import annotations

import math

from bimors.report.aggregate import Base2NewRow, Stat


def _fmt(stat: Stat) -> str:
    if math.isnan(stat.mean):
        return "-"
    return f"{stat.mean:.2f}" if stat.n <= 1 else f"{stat.mean:.2f} ± {stat.std:.2f}"


def base2new_markdown(rows: list[Base2NewRow]) -> str:
    """A Markdown table: method, dataset, base, new, HM (mean ± std over seeds)."""
    lines = [
        "| method | dataset | base | new | HM | seeds |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.dataset} | {_fmt(r.base)} | {_fmt(r.new)} | {r.hm:.2f} | "
            f"{max(r.base.n, r.new.n)} |"
        )
    return "\n".join(lines) + "\n"
