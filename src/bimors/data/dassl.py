"""The few-shot draw of the official Dassl-based codes, re-implemented for exact reproduction.

APPLeNet, BiMoRS, CoOp, CoCoOp, MaPLe and ProGrad all pick their few-shot
images the same way (``DatasetBase.generate_fewshot_dataset`` of
KaiyangZhou/Dassl.pytorch, called from each dataset's ``__init__``):

1. ``train.py`` seeds Python's ``random`` with the run seed
   (``set_random_seed`` also seeds numpy and torch, which leave ``random``
   alone), and nothing draws from ``random`` before the dataset is built when
   the split file exists (only a missing split file is shuffled first);
2. the training part is grouped by label, the groups in the order their
   labels first appear in the split file, each group's items in file order;
   each group gives ``random.sample(items, k)``, or all its items, in file
   order and drawing nothing, when it has fewer than ``k`` (every official
   call passes ``repeat=False``);
3. the validation part is drawn the same way with ``min(k, 4)``, from the
   same stream, right after the training part;
4. only then are the classes cut into base and new.

So the draw depends on the interpreter's ``random`` algorithms (stable across
CPython 3 releases for ``seed`` and ``sample``), on the order of
the split file, and on the whole class set: which base images a base-to-new
run sees depends on the new classes too. The hash-ranked default sampler
(:mod:`bimors.data.fewshot`) has none of these dependencies; this one exists
to see the same images as an official run.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from bimors.data.split import Sample


def dassl_draw(rng: random.Random, samples: Sequence[Sample], shots: int) -> list[int]:
    """Positions in ``samples`` that one ``generate_fewshot_dataset`` call picks, in its order.

    ``shots < 1`` keeps everything (as Dassl returns the part unchanged) and
    draws nothing. A class with fewer than ``shots`` items gives all of them in
    file order and draws nothing from ``rng``, as Dassl with ``repeat=False``
    (what every official call passes), so no image repeats.
    """
    if shots < 1:
        return list(range(len(samples)))
    groups: dict[int, list[int]] = defaultdict(list)  # insertion order = first appearance
    for i, s in enumerate(samples):
        groups[s.label].append(i)
    chosen: list[int] = []
    for positions in groups.values():
        if len(positions) >= shots:
            chosen.extend(rng.sample(positions, shots))
        else:
            chosen.extend(positions)
    return chosen


def dassl_fewshot(
    parts: dict[str, tuple[Sequence[Sample], int]], seed: int
) -> dict[str, list[int]]:
    """Each part's draw, the parts drawn in the order given from one stream seeded with ``seed``.

    Pass ``{"train": (train, k), "val": (val, min(k, 4))}`` over *all* classes,
    in that order, to get what the official codes draw for ``seed``.
    """
    rng = random.Random(seed)  # the same stream as random.seed(seed) on the global instance
    return {name: dassl_draw(rng, samples, k) for name, (samples, k) in parts.items()}
