"""Domain generalisation (APPLeNet): train on PatternNetv2, test on the other v2 datasets.

The four v2 datasets share 16 classes with identical names and label order;
only the imaging domain changes. Training is few-shot on PatternNetv2; each
target's test split is evaluated with the same 16 class names. A target whose
classes or order differ is refused: its accuracies would be meaningless.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bimors.core.errors import DataError
from bimors.data.split import Split
from bimors.protocols.transfer import TransferTasks, transfer_tasks

SOURCE = "patternnetv2"
TARGETS = ("rsicdv2", "resisc45v2", "mlrsnetv2")


def check_label_order(source: str, source_split: Split, target_splits: Mapping[str, Split]) -> None:
    """Refuse a target whose classes or label order differ from the source's.

    The protocol's 16 labels are one label set seen in four domains: a head
    indexed by label (the linear probe) would score a reordered target wrongly
    without any error, and per-class results would not line up, so the order
    is checked, not only the set.
    """
    for name, split in target_splits.items():
        if split.classnames != source_split.classnames:
            raise DataError(
                f"domain generalisation needs the source's classes in the same label order; "
                f"{name} has {split.classnames}, {source} has {source_split.classnames}: "
                "use the published v2 split files"
            )


def domain_generalisation_tasks(
    source_split: Split,
    target_splits: Mapping[str, Split],
    shots: int,
    seed: int,
    source: str = SOURCE,
    index_file: str | Path | None = None,
    sampler: str = "hash",
) -> TransferTasks:
    """Train/val on ``source``; test on each target, which must share the label order."""
    check_label_order(source, source_split, target_splits)
    return transfer_tasks(source_split, target_splits, shots, seed, source, index_file, sampler)
