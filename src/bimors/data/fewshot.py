"""Seeded few-shot sampling and base/new class subsets.

Sampling depends only on (dataset, shots, seed) and the sorted sample list,
never on Python's per-process hash seed or on file-system order, so the same
call gives the same images on every machine.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict

from bimors.data.split import Sample, stable_seed


def fewshot_indices(samples: list[Sample], shots: int, seed: int, tag: str) -> list[int]:
    """Indices into ``samples`` of ``shots`` images per class (all of a smaller class).

    ``shots <= 0`` keeps every sample. ``tag`` names the dataset and part so that
    different datasets draw independently.
    """
    if shots <= 0:
        return list(range(len(samples)))
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_label[s.label].append(i)
    chosen: list[int] = []
    for label in sorted(by_label):
        idx = sorted(by_label[label], key=lambda i: samples[i].relpath)
        rng = random.Random(stable_seed("fewshot", tag, shots, seed, label))
        chosen.extend(rng.sample(idx, shots) if len(idx) > shots else idx)
    return sorted(chosen)


def base_new_labels(num_classes: int) -> tuple[list[int], list[int]]:
    """Base = the first ceil(n/2) labels in label order, new = the rest (APPLeNet/CoCoOp)."""
    n_base = math.ceil(num_classes / 2)
    return list(range(n_base)), list(range(n_base, num_classes))


def subsample_classes(samples: list[Sample], labels: list[int]) -> list[Sample]:
    """Samples of ``labels`` only, relabelled 0..len(labels)-1 in the order given."""
    remap = {old: new for new, old in enumerate(labels)}
    return [Sample(s.relpath, remap[s.label], s.classname) for s in samples if s.label in remap]
