"""The few-shot draw of CoOp's linear probe (``lpclip/``), re-implemented for exact reproduction.

CoOp's linear-probe baseline does not use Dassl's draw: ``lpclip/feat_extractor.py``
saves features of the *whole* train, val and test parts, and
``lpclip/linear_probe.py`` then draws, for each seed:

1. ``np.random.seed(seed)`` (numpy's legacy global ``RandomState``);
2. for each label in ascending order (``np.unique``), the positions of that
   label in the part in file order (``np.where``), and
   ``np.random.choice(positions, size=k, replace=False)``;
3. the validation part the same way with ``{1: 1, 2: 2, 4: 4, 8: 4, 16: 4}[k]``
   (``min(k, 4)``) images a class, from the same stream, right after training.

So it overlaps the Dassl draw for the same seed only by chance. A class with
fewer than ``k`` images makes numpy refuse the draw; so does this sampler.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bimors.core.errors import DataError
from bimors.data.split import Sample


def lpclip_draw(rng: np.random.RandomState, samples: Sequence[Sample], shots: int) -> list[int]:
    """Positions in ``samples`` that one part's sampling loop of ``linear_probe.py`` picks."""
    if shots < 1:
        return list(range(len(samples)))
    labels = np.array([s.label for s in samples])
    chosen: list[int] = []
    for label in np.unique(labels):
        positions = np.where(labels == label)[0]
        if len(positions) < shots:
            raise DataError(
                f"data.fewshot_sampler=lpclip: class {int(label)} has {len(positions)} images, "
                f"fewer than {shots} (CoOp's lpclip draws without replacement); lower data.shots "
                "or use the dassl sampler"
            )
        chosen.extend(int(i) for i in rng.choice(positions, size=shots, replace=False))
    return chosen


def lpclip_fewshot(
    parts: dict[str, tuple[Sequence[Sample], int]], seed: int
) -> dict[str, list[int]]:
    """Each part's draw, in the order given, from one ``RandomState(seed)`` stream.

    Pass ``{"train": (train, k), "val": (val, min(k, 4))}`` over all classes.
    """
    rng = np.random.RandomState(seed)  # the stream np.random.seed(seed) gives the global one
    return {name: lpclip_draw(rng, samples, k) for name, (samples, k) in parts.items()}
