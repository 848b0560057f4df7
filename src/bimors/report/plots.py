"""Plots with matplotlib (headless backend; no display needed)."""

from __future__ import annotations

from pathlib import Path

from bimors import atomic
from bimors.report.aggregate import Base2NewRow, TransferRow


def base2new_bars(rows: list[Base2NewRow], path: str | Path, title: str = "Base-to-new") -> Path:
    """Grouped bars of base, new and HM accuracy per method (one dataset or the average)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [
        r.method
        if r.dataset in ("average",) or len({x.dataset for x in rows}) == 1
        else f"{r.method}\n{r.dataset}"
        for r in rows
    ]
    series = {
        "base": [r.base.mean for r in rows],
        "new": [r.new.mean for r in rows],
        "HM": [r.hm for r in rows],
    }
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 1), 3.2), dpi=120)
    for k, (name, values) in enumerate(series.items()):
        ax.bar(x + (k - 1) * 0.27, values, 0.27, label=name)
    ax.set_xticks(x, labels)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(ncols=3, fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def transfer_bars(rows: list[TransferRow], path: str | Path, title: str) -> Path:
    """Bars of accuracy per target dataset for each method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    datasets = list(dict.fromkeys(d for r in rows for d in r.cells))
    x = np.arange(len(datasets))
    width = 0.8 / max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(datasets) + 1), 3.2), dpi=120)
    for k, r in enumerate(rows):
        values = [r.cells[d].mean if d in r.cells else 0.0 for d in datasets]
        ax.bar(
            x + (k - (len(rows) - 1) / 2) * width, values, width, label=f"{r.method} ({r.source})"
        )
    ax.set_xticks(x, datasets)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
