"""Figures of a :class:`~bimors.report.grid.Table`, ready for a paper (matplotlib, headless).

They show what the tables show, in the same method order: bars are our means
with error bars of the std over seeds, a black tick on a bar is the published
value of that cell, a hatched bar was scored by a fallback (the linear probe's
zero-shot CLIP on unseen classes). Legends sit outside the axes, above them,
so they never cover data (below the axes). Base-to-new gets one panel per dataset and one for
the average; transfer tables one panel with the source, targets and average.
"""

from __future__ import annotations

from pathlib import Path

from bimors.core import atomic
from bimors.report.grid import METRIC_LABELS, Line, Table
from bimors.report.names import method_label

WIDTH_IN = 7.0  # a two-column paper's text width
PANEL_IN = 1.8
METRIC_COLOURS = {"base": "#4C72B0", "new": "#DD8452", "hm": "#55A868"}
HATCH = "////"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bar(ax, x: float, width: float, cell, colour: str) -> None:
    """One of our bars with its error bar and published tick (nothing if we have no run)."""
    if cell.has_ours:
        s = cell.ours
        err = s.std if s.n > 1 and s.std == s.std else None
        ax.bar(
            x,
            s.mean,
            width,
            color=colour,
            hatch=HATCH if s.fallback else None,
            edgecolor="white" if s.fallback else None,
            linewidth=0,
            yerr=err,
            error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "#222222"},
        )
    if cell.published is not None:
        ax.hlines(cell.published, x - width / 2, x + width / 2, colors="black", linewidth=1.6)


def _legend(fig, handles: list, ncols: int) -> None:
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize=7, frameon=False)


def _proxies(plt, table: Table) -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    extra = []
    if any(c.published is not None for line in table.lines for c in line.cells.values()):
        extra.append(Line2D([], [], color="black", linewidth=1.6, label="published"))
    if any(s.fallback for s in table.stats):
        extra.append(
            Patch(facecolor="#999999", hatch=HATCH, edgecolor="white", label="zero-shot fallback")
        )
    return extra


def _save(plt, fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=200)
    plt.close(fig)
    return path


def _ours(table: Table) -> list[Line]:
    return [line for line in table.lines if line.has_ours]


def _drawn_groups(table: Table) -> list[str]:
    """The groups (datasets) where some method has our results: no panel of ticks only."""
    return [
        g
        for g in table.groups
        if any(line.cells[(g, m)].has_ours for line in _ours(table) for m in table.metrics)
    ]


def draw_base2new(table: Table, title: str | None = None):
    """One panel per dataset with our runs (and the average): Base, New and H bars per method."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    lines = _ours(table)
    groups = _drawn_groups(table)
    n = len(groups)
    fig, axes = plt.subplots(
        n, 1, figsize=(WIDTH_IN, 0.9 + PANEL_IN * n), squeeze=False, layout="constrained"
    )
    width = 0.8 / len(table.metrics)
    for ax, group in zip(axes[:, 0], groups, strict=True):
        for i, line in enumerate(lines):
            for k, metric in enumerate(table.metrics):
                x = i + (k - (len(table.metrics) - 1) / 2) * width
                _bar(ax, x, width, line.cells[(group, metric)], METRIC_COLOURS[metric])
        ax.set_title(table.group_label(group), fontsize=9, loc="left")
        ax.set_xticks(range(len(lines)), [line.label for line in lines], fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_xlim(-0.6, len(lines) - 0.4)
        ax.set_ylabel("accuracy (%)", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    handles = [Patch(color=METRIC_COLOURS[m], label=METRIC_LABELS[m]) for m in table.metrics]
    _legend(fig, handles + _proxies(plt, table), 6)
    fig.suptitle(title or table.title, fontsize=10)
    return fig


def draw_transfer(table: Table, title: str | None = None):
    """Source, targets and their average on the x axis; one bar per method."""
    from matplotlib.patches import Patch

    plt = _pyplot()
    lines = _ours(table)
    colours = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(WIDTH_IN, 3.4), layout="constrained")
    width = 0.84 / max(len(lines), 1)
    groups = _drawn_groups(table)
    for i, line in enumerate(lines):
        for j, group in enumerate(groups):
            x = j + (i - (len(lines) - 1) / 2) * width
            _bar(ax, x, width, line.cells[(group, "acc")], colours[i % len(colours)])
    labels = [table.group_label(g).replace(" (source)", "\n(source)") for g in groups]
    ax.set_xticks(range(len(groups)), labels, fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    handles = [
        Patch(color=colours[i % len(colours)], label=method_label(line.method))
        for i, line in enumerate(lines)
    ]
    _legend(fig, handles + _proxies(plt, table), 5)
    fig.suptitle(title or table.title, fontsize=10)
    return fig


def draw_figure(table: Table, title: str | None = None):
    """The matplotlib figure that matches ``table``'s protocol (caller closes or saves it)."""
    return (
        draw_base2new(table, title) if table.protocol == "base2new" else draw_transfer(table, title)
    )


def table_figure(table: Table, path: str | Path, title: str | None = None) -> Path:
    """:func:`draw_figure` saved as a PNG at ``path``."""
    return _save(_pyplot(), draw_figure(table, title), path)


def base2new_figure(table: Table, path: str | Path, title: str | None = None) -> Path:
    """The base-to-new figure saved at ``path`` (the demo's plot)."""
    return _save(_pyplot(), draw_base2new(table, title), path)
