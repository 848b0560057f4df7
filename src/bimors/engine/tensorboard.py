"""The run's final test accuracies in its TensorBoard log, beside the per-epoch curves.

The trainer writes loss, learning rate, train and (with ``train.selection=val``)
validation accuracy per epoch to ``<run>/tb``; this adds what the report
prints for the run: ``test/<dataset>/<split>`` (base, new, or all for a
transfer target) and ``test/<dataset>/hm`` where base and new both exist, at
the run's last epoch, so TensorBoard and ``bimors report`` show the same numbers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def final_scalars(records: list[dict[str, Any]]) -> dict[str, float]:
    """Tag -> accuracy for ``records`` of one run (HM added per dataset with base and new)."""
    tags = {f"test/{r['dataset']}/{r['split']}": float(r["accuracy"]) for r in records}
    for r in records:
        base, new = f"test/{r['dataset']}/base", f"test/{r['dataset']}/new"
        if base in tags and new in tags:
            b, n = tags[base], tags[new]
            tags[f"test/{r['dataset']}/hm"] = 0.0 if b + n == 0 else 2 * b * n / (b + n)
    return tags


def log_final_accuracies(run_dir: str | Path, records: list[dict[str, Any]], step: int) -> bool:
    """Append the final accuracies to ``run_dir/tb``; False when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional at run time, as for the trainer's curves
        logger.warning("tensorboard is not installed; final accuracies are in results.jsonl only")
        return False
    writer = SummaryWriter(str(Path(run_dir) / "tb"))
    try:
        for tag, value in final_scalars(records).items():
            writer.add_scalar(tag, value, step)
    finally:
        writer.close()
    return True
