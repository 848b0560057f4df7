"""Per run: the confusion matrix and per-class accuracy, as CSV and PNG.

In RS the interesting question is which scene classes get confused (dense
vs. medium residential, runway vs. freeway), so every evaluation record with
a ``confusion`` matrix (rows: true class, columns: predicted, in the split's
label order, see :func:`bimors.engine.evaluator.evaluate`) gets four files
under ``per_run/<protocol>/<train dataset>/<method>/seed<seed>/``. Records
written before the matrix was recorded are skipped with a log line; re-run
``bimors eval`` on such a run to add it.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from bimors.core import atomic
from bimors.report.names import dataset_label, method_label

logger = logging.getLogger(__name__)

ANNOTATE_UP_TO = 20  # classes; beyond that counts in cells are unreadable at any paper size


def _check(record: dict[str, Any]) -> tuple[list[str], list[list[int]]]:
    names, matrix = record.get("class_names"), record.get("confusion")
    n = len(names or [])
    if not names or len(matrix) != n or any(len(row) != n for row in matrix):
        raise ValueError(
            f"record of {record.get('run', '?')} ({record.get('dataset')}, {record.get('split')}): "
            f"'confusion' must be a {n} x {n} matrix matching 'class_names'; re-run bimors eval"
        )
    return list(names), [[int(v) for v in row] for row in matrix]


def confusion_csv(names: list[str], matrix: list[list[int]]) -> str:
    """Counts, one line per true class, one column per predicted class."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["true \\ predicted", *names])
    for name, row in zip(names, matrix, strict=True):
        w.writerow([name, *row])
    return buf.getvalue()


def per_class_csv(names: list[str], matrix: list[list[int]]) -> str:
    """Correct, total and accuracy per class, plus the class each is most confused with."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "correct", "total", "accuracy", "most_confused_with", "count"])
    for i, (name, row) in enumerate(zip(names, matrix, strict=True)):
        total = sum(row)
        others = [(v, j) for j, v in enumerate(row) if j != i]
        count, j = max(others) if others else (0, i)
        acc = f"{100.0 * row[i] / total:.2f}" if total else ""
        w.writerow([name, row[i], total, acc, names[j] if count else "", count])
    return buf.getvalue()


def _title(record: dict[str, Any]) -> str:
    return (
        f"{method_label(record['method'])}, {dataset_label(record['dataset'])} "
        f"({record['split']}), seed {record['seed']}"
    )


def confusion_figure(names, matrix, path: Path, title: str) -> Path:
    """Row-normalised confusion (recall per true class); counts written when few classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(100 * counts, rows, out=np.zeros_like(counts), where=rows > 0)
    n = len(names)
    side = min(max(4.0, 1.6 + 0.2 * n), 12.0)
    fontsize = 7 if n <= 30 else 6
    fig, ax = plt.subplots(figsize=(side + 1.0, side), layout="constrained")
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(n), names, rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), names, fontsize=fontsize)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    if n <= ANNOTATE_UP_TO:
        for i in range(n):
            for j in range(n):
                if counts[i, j]:
                    colour = "white" if share[i, j] > 60 else "black"
                    ax.text(
                        j, i, int(counts[i, j]), ha="center", va="center", fontsize=6, color=colour
                    )
    fig.colorbar(image, ax=ax, shrink=0.6, label="% of true class")
    ax.set_title(title, fontsize=9)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)
    return path


def per_class_figure(names, matrix, path: Path, title: str) -> Path:
    """Horizontal bars of accuracy per class, in label order, with the overall accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    totals = [sum(row) for row in matrix]
    acc = [
        100.0 * row[i] / t if t else 0.0
        for i, (row, t) in enumerate(zip(matrix, totals, strict=True))
    ]
    overall = 100.0 * sum(row[i] for i, row in enumerate(matrix)) / max(sum(totals), 1)
    n = len(names)
    fig, ax = plt.subplots(figsize=(5.0, 1.0 + 0.18 * n), layout="constrained")
    ax.barh(range(n), acc, color="#4C72B0")
    ax.axvline(overall, color="black", linewidth=1, linestyle="--", label=f"overall {overall:.1f}%")
    ax.set_yticks(range(n), names, fontsize=7 if n <= 30 else 6)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy (%)", fontsize=8)
    fig.legend(loc="outside lower center", fontsize=7, frameon=False)
    ax.set_title(title, fontsize=9, loc="left")
    ax.grid(axis="x", alpha=0.3)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)
    return path


def run_folder(record: dict[str, Any]) -> Path:
    """Where a record's per-run files go, relative to the report folder."""
    from bimors.grid.sweep import point_folder

    train = record.get("train_dataset", record["dataset"])
    folder = Path("per_run", str(record.get("protocol")), train, record["method"])
    if record.get("sweep"):  # as the run folder: .../<method>/<k1=v1,...>/seed<k>
        folder = folder / point_folder(tuple(record["sweep"].items()))
    return folder / f"seed{record['seed']}"


def write_per_run(records: list[dict[str, Any]], out: Path) -> list[Path]:
    """Confusion and per-class CSV + PNG for every record that has a confusion matrix."""
    written, missing = [], 0
    for r in records:
        if "confusion" not in r:
            missing += 1
            continue
        names, matrix = _check(r)
        folder = out / run_folder(r)
        stem = f"{r['dataset']}_{r['split']}"
        atomic.write_text(folder / f"{stem}_confusion.csv", confusion_csv(names, matrix))
        atomic.write_text(folder / f"{stem}_per_class.csv", per_class_csv(names, matrix))
        title = _title(r)
        written += [
            folder / f"{stem}_confusion.csv",
            folder / f"{stem}_per_class.csv",
            confusion_figure(names, matrix, folder / f"{stem}_confusion.png", title),
            per_class_figure(names, matrix, folder / f"{stem}_per_class.png", title),
        ]
    if missing:
        logger.info(
            "%d records carry no confusion matrix (older runs): no per-run figures", missing
        )
    return written
