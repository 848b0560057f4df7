"""Few-shot curves: accuracy against shots per method, as CoOp's figure draws them.

Drawn from an :class:`~bimors.report.ablation.AblationTable` whose sweep has
``data.shots``: one panel per table column (Base, New and H per dataset for
base-to-new; each dataset and the average for transfer), one line per method
(and per value of any other swept key), mean over seeds with error bars of
the std over seeds, shots on a log2 axis. ``shots <= 0`` (every training
image) has no place on a log axis and is left out of the curves.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from bimors.report.ablation import AblationTable, _column_label, _value
from bimors.report.names import method_label
from bimors.report.plots import WIDTH_IN, _pyplot, _save

logger = logging.getLogger(__name__)

SHOTS = "data.shots"


def has_curve(table: AblationTable) -> bool:
    return SHOTS in table.keys


def curve_series(table: AblationTable) -> dict[str, list[tuple[int, dict]]]:
    """Per line label: [(shots, {column: Stat}), ...] sorted by shots (shots > 0 only)."""
    others = [k for k in table.keys if k != SHOTS]
    series: dict[str, list[tuple[int, dict]]] = {}
    dropped = 0
    for row in table.rows:
        shots = row.point[SHOTS]
        if not isinstance(shots, int) or shots <= 0:
            dropped += 1
            continue
        extra = ", ".join(f"{k.rsplit('.', 1)[-1]}={_value(row.point[k])}" for k in others)
        label = method_label(row.method) + (f" ({extra})" if extra else "")
        series.setdefault(label, []).append((shots, row.cells))
    if dropped:
        logger.info("%d ablation rows with data.shots <= 0 are not on the few-shot curve", dropped)
    return {k: sorted(v, key=lambda p: p[0]) for k, v in series.items()}


def curve_figure(table: AblationTable, path: str | Path) -> Path:
    """The few-shot curve figure of ``table`` as a PNG at ``path``."""
    plt = _pyplot()
    series = curve_series(table)
    columns = table.columns
    ncols = min(3, len(columns))
    nrows = math.ceil(len(columns) / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(WIDTH_IN, 2.3 * nrows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    shots = sorted({s for points in series.values() for s, _ in points})
    handles = []
    for i, column in enumerate(columns):
        ax = axes[i // ncols][i % ncols]
        for label, points in series.items():
            have = [(s, c[column]) for s, c in points if column in c and c[column].n > 0]
            if not have:
                continue
            xs = [s for s, _ in have]
            ys = [st.mean for _, st in have]
            errs = [st.std if st.n > 1 and st.std == st.std else 0.0 for _, st in have]
            line = ax.errorbar(
                xs, ys, yerr=errs, marker="o", markersize=3, linewidth=1.2, capsize=2, label=label
            )
            if i == 0:
                handles.append(line)
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots, [str(s) for s in shots])
        ax.minorticks_off()
        ax.set_title(_column_label(table, column), fontsize=8)
        ax.set_xlabel("shots per class", fontsize=7)
        ax.set_ylabel("accuracy (%)", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for j in range(len(columns), nrows * ncols):
        axes[j // ncols][j % ncols].axis("off")
    others = [k.rsplit(".", 1)[-1] for k in table.keys if k != SHOTS]
    lines = "method" + "".join(f", {k}" for k in others)
    fig.suptitle(f"Few-shot curves: {table.subject} (one line per {lines})", fontsize=9)
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(4, max(1, len(handles))),
        fontsize=7,
        frameon=False,
    )
    return _save(plt, fig, path)
