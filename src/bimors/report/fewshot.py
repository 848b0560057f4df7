"""The few-shot protocol's report: methods x shots per dataset, the average, and curves.

One table per (backbone, dataset) of ``fewshot`` records: a row per method, a
column per shot count, mean ± std over seeds; then the average over datasets
(only over the datasets a method has at that shot count). Backbones are never
merged: each gets its own tables and figure.

Published lines: no published few-shot table could be transcribed here, so
they are read from a reference file a user fills, ``fewshot_published.json``
in the runs folder (or the path given). Its format::

    {"lines": [
        {"method": "coop", "dataset": "eurosat", "backbone": "hf:openai/clip-vit-base-patch16",
         "source": "fewshot_RSVLMs Table 3",
         "accuracy": {"1": 52.1, "2": 60.3, "4": 70.0, "8": 78.2, "16": 83.5}}
    ]}

``backbone`` is optional (a line without it is shown beside every backbone);
``accuracy`` maps shot counts to top-1 in percent.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bimors.core.errors import ConfigError
from bimors.report.aggregate import latest
from bimors.report.names import method_label

PUBLISHED_FILE = "fewshot_published.json"


@dataclasses.dataclass
class Cell:
    mean: float
    std: float
    seeds: int


@dataclasses.dataclass
class FewshotTable:
    """``cells[method][shots]`` on ``dataset`` (``average``: over datasets) for ``backbone``."""

    backbone: str
    dataset: str
    shots: list[int]
    cells: dict[str, dict[int, Cell]]
    published: dict[str, dict[int, float]] = dataclasses.field(default_factory=dict)


def _stat(values: list[float]) -> Cell:
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return Cell(mean, std, n)


def load_published(path: str | Path) -> list[dict[str, Any]]:
    """The lines of a reference file (see the module docstring), checked field by field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not JSON ({e})") from None
    lines = data.get("lines") if isinstance(data, dict) else None
    if not isinstance(lines, list):
        raise ConfigError(f"{path}: needs a top-level 'lines' list (see bimors.report.fewshot)")
    for i, line in enumerate(lines):
        for key in ("method", "dataset", "accuracy"):
            if key not in line:
                raise ConfigError(f"{path}: lines[{i}] lacks {key!r}")
        if not isinstance(line["accuracy"], dict):
            raise ConfigError(f"{path}: lines[{i}].accuracy must map shot counts to percents")
        try:
            line["accuracy"] = {int(k): float(v) for k, v in line["accuracy"].items()}
        except (TypeError, ValueError):
            raise ConfigError(
                f"{path}: lines[{i}].accuracy: keys must be shot counts, values numbers"
            ) from None
    return lines


def fewshot_tables(
    records: list[dict[str, Any]], published: list[dict[str, Any]] = ()
) -> list[FewshotTable]:
    """Per backbone: one table per dataset, then ``average`` when there are two or more."""
    acc: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    mine: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("protocol") == "fewshot":
            mine[r.get("backbone", "?")].append(r)
    for backbone, recs in mine.items():  # latest per backbone: two backbones never collide
        for r in latest(recs):
            acc[(backbone, r["dataset"], r["method"])][int(r["shots"])].append(float(r["accuracy"]))
    tables = []
    for backbone in sorted({k[0] for k in acc}):
        datasets = sorted({k[1] for k in acc if k[0] == backbone})
        per: dict[str, FewshotTable] = {}
        for dataset in datasets:
            cells = {
                m: {k: _stat(v) for k, v in sorted(acc[(b, d, m)].items())}
                for (b, d, m) in sorted(acc)
                if b == backbone and d == dataset
            }
            shots = sorted({k for c in cells.values() for k in c})
            pub = {
                line["method"]: line["accuracy"]
                for line in published
                if line["dataset"] == dataset and line.get("backbone") in (None, backbone)
            }
            per[dataset] = FewshotTable(backbone, dataset, shots, cells, pub)
        tables += per.values()
        if len(datasets) > 1:
            avg: dict[str, dict[int, Cell]] = {}
            for method in sorted({m for t in per.values() for m in t.cells}):
                for k in sorted({k for t in per.values() for k in t.cells.get(method, {})}):
                    got = [t.cells[method][k] for t in per.values() if k in t.cells.get(method, {})]
                    avg.setdefault(method, {})[k] = Cell(
                        sum(c.mean for c in got) / len(got),
                        sum(c.std for c in got) / len(got),
                        min(c.seeds for c in got),
                    )
            shots = sorted({k for c in avg.values() for k in c})
            tables.append(FewshotTable(backbone, "average", shots, avg))
    return tables


def fewshot_markdown(table: FewshotTable) -> str:
    """Methods x shots, mean ± std over seeds; published lines as ``<method> (published)``."""
    heads = ["Method", *(f"{k}-shot" for k in table.shots)]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for method, cells in table.cells.items():
        row = [
            f"{cells[k].mean:.2f} ± {cells[k].std:.2f}" if k in cells else "–" for k in table.shots
        ]
        lines.append("| " + " | ".join([method_label(method), *row]) + " |")
    for method, pub in table.published.items():
        row = [f"{pub[k]:.2f}" if k in pub else "–" for k in table.shots]
        lines.append("| " + " | ".join([f"{method_label(method)} (published)", *row]) + " |")
    return "\n".join(lines) + "\n"


def fewshot_figure(tables: list[FewshotTable], path: str | Path) -> Path:
    """Curves of one backbone: a panel per dataset plus the average; std bars over seeds
    clipped to [0, 100]; markers and a small x offset per method so equal series stay seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = [t for t in tables if t.cells]  # no empty panels
    n = len(tables)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    markers = "osD^vP*X"
    for ax, table in zip(axes.flat, tables, strict=False):
        methods = list(table.cells)
        for i, method in enumerate(methods):
            cells = table.cells[method]
            ks = sorted(cells)
            off = 1 + 0.04 * (i - (len(methods) - 1) / 2)  # multiplicative: log x axis
            x = [k * off for k in ks]
            y = [cells[k].mean for k in ks]
            lo = [y_ - max(0.0, y_ - cells[k].std) for k, y_ in zip(ks, y, strict=True)]
            hi = [min(100.0, y_ + cells[k].std) - y_ for k, y_ in zip(ks, y, strict=True)]
            ax.errorbar(
                x,
                y,
                yerr=[lo, hi],
                marker=markers[i % len(markers)],
                capsize=3,
                label=method_label(method),
            )
        for method, pub in table.published.items():
            ks = sorted(pub)
            ax.plot(
                ks,
                [pub[k] for k in ks],
                "--",
                marker="x",
                color="grey",
                label=f"{method_label(method)} (published)",
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(table.shots, [str(k) for k in table.shots])
        ax.set_ylim(0, 100)
        ax.set_title(table.dataset)
        ax.set_xlabel("shots per class")
        ax.set_ylabel("top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.remove()
    fig.suptitle(f"Few-shot: {tables[0].backbone}" if tables else "Few-shot")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
