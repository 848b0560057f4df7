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
from typing import Any

from bimors.report.ablation import AblationTable, _column_label, _value
from bimors.report.names import method_label
from bimors.report.plots import WIDTH_IN, _pyplot, _save

logger = logging.getLogger(__name__)

SHOTS = "data.shots"


def has_curve(table: AblationTable) -> bool:
    """Whether ``table`` sweeps shots and has a point with shots > 0 to draw."""
    return SHOTS in table.keys and any(
        cells[c].n > 0
        for points in curve_series(table).values()
        for _, cells in points
        for c in cells
    )


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


#: One marker per line (cycled), so lines that coincide stay told apart.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
#: Horizontal spread of the lines around each shot count, in log2 units (shots x 2**offset).
SPREAD = 0.12


def offsets(n: int) -> list[float]:
    """Multiplicative x offsets for ``n`` lines, symmetric around 1 (one line: none)."""
    if n <= 1:
        return [1.0] * n
    step = SPREAD / (n - 1)
    return [2 ** (-SPREAD / 2 + i * step) for i in range(n)]


def clipped_errors(means: list[float], stds: list[float]) -> tuple[list[float], list[float]]:
    """Lower and upper error bar lengths, so that mean -/+ std stays within [0, 100]."""
    low = [min(s, max(m, 0.0)) for m, s in zip(means, stds, strict=True)]
    high = [min(s, max(100.0 - m, 0.0)) for m, s in zip(means, stds, strict=True)]
    return low, high


def curve_figure(table: AblationTable, path: str | Path) -> Path:
    """The few-shot curve figure of ``table`` as a PNG at ``path``.

    Only columns with at least one point get a panel; each line has its own
    marker and a small x offset, and error bars are clipped to [0, 100].
    """
    plt = _pyplot()
    series = curve_series(table)
    columns = [
        c
        for c in table.columns
        if any(c in cells and cells[c].n > 0 for points in series.values() for _, cells in points)
    ]
    if not columns:
        raise ValueError(f"{table.title}: no few-shot point to draw")
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
    shift = dict(zip(series, offsets(len(series)), strict=True))
    handles: dict[str, Any] = {}
    for i, column in enumerate(columns):
        ax = axes[i // ncols][i % ncols]
        for k, (label, points) in enumerate(series.items()):
            have = [(s, c[column]) for s, c in points if column in c and c[column].n > 0]
            if not have:
                continue
            xs = [s * shift[label] for s, _ in have]
            ys = [st.mean for _, st in have]
            errs = [st.std if st.n > 1 and st.std == st.std else 0.0 for _, st in have]
            line = ax.errorbar(
                xs,
                ys,
                yerr=clipped_errors(ys, errs),
                marker=MARKERS[k % len(MARKERS)],
                markersize=4,
                linewidth=1.2,
                capsize=2,
                label=label,
                color=f"C{k % 10}",
            )
            handles.setdefault(label, line)
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
        handles=list(handles.values()),
        loc="outside lower center",
        ncols=min(4, max(1, len(handles))),
        fontsize=7,
        frameon=False,
    )
    return _save(plt, fig, path)
