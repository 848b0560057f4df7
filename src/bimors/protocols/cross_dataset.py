"""Cross-dataset transfer (APPLeNet): train on all PatternNet classes, test on others.

The model is trained few-shot on PatternNet's 38 classes and evaluated,
without further training, on the test split of each target (RSICD, RESISC45,
MLRSNet) with the target's own class names: most target classes are unseen.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bimors.data.split import Split
from bimors.protocols.transfer import TransferTasks, transfer_tasks

SOURCE = "patternnet"
TARGETS = ("rsicd", "resisc45", "mlrsnet")


def cross_dataset_tasks(
    source_split: Split,
    target_splits: Mapping[str, Split],
    shots: int,
    seed: int,
    source: str = SOURCE,
    index_file: str | Path | None = None,
    sampler: str = "hash",
) -> TransferTasks:
    """Train/val on every class of ``source``; one test task per target with its class names."""
    return transfer_tasks(source_split, target_splits, shots, seed, source, index_file, sampler)
