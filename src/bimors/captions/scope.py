"""Which images a protocol grid reads: the only ones worth captioning for it.

A base-to-new grid reads each dataset's test split (30% of it), a few-shot
draw of train and of val per seed, and nothing else; a transfer grid reads the
source's test split and draws, and only the test split of each target. On a
GPU, captioning is the cost of reproducing a table, so ``bimors run --caption``
and ``bimors caption --protocol`` caption exactly this set, found by building
the very :class:`~bimors.protocols.plan.Plan` objects the runner builds (same
draw functions, same split), never by re-deriving the protocols' rules.

The set comes in groups per dataset: the evaluated images (the whole test
split, the same for every grid), then each run's few-shot draw (train and val)
in the order of :meth:`Cell.order`, an image in the first group naming it. The
caption job cuts its batches from each group separately (see
:func:`bimors.captions.plan.plan_batches`), so the batches of a group do not
depend on what else a job captions: a store filled for grid A and then for a
larger grid B (more seeds, or more shots) holds bit-for-bit the rows one fill
for B would, since A's groups are B's first groups. A later grid whose new
draws sort before old ones still gets every image it reads; only those
images' vectors may then differ in the last bits (their batches are gathered
anew, see :mod:`bimors.captions.plan`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Protocol

from bimors.data.split import Split


class HasSplit(Protocol):
    """What a plan needs of a dataset: its name and split (a SceneDataset, or a listing)."""

    name: str

    def split(self) -> Split: ...


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training run's draw: seed, shots per class and few-shot sampler."""

    seed: int
    shots: int
    sampler: str = "hash"

    def order(self) -> tuple[str, int, int]:
        """Batching order: by sampler, then shots, then seed, so that the usual ways a
        grid grows (more seeds, larger shots) add draws after the existing ones."""
        return (self.sampler, self.shots, self.seed)


@dataclasses.dataclass
class ImagePlan:
    """The images of one dataset a grid reads: evaluated ones, and each run's draw."""

    eval: set[str] = dataclasses.field(default_factory=set)
    draws: dict[Cell, set[str]] = dataclasses.field(default_factory=dict)

    def relpaths(self) -> set[str]:
        return self.eval.union(*self.draws.values())

    def groups(self) -> list[list[str]]:
        """Sorted groups the caption job batches one after the other (test split first)."""
        cells = sorted(self.draws, key=Cell.order)
        return [sorted(self.eval), *(sorted(self.draws[c]) for c in cells)]

    def __len__(self) -> int:
        return len(self.relpaths())


@dataclasses.dataclass(frozen=True)
class SplitListing:
    """A dataset known only by its split file: enough to plan, no images needed."""

    name: str
    listing: Split

    def split(self) -> Split:
        return self.listing


def plan_images(
    protocol: str,
    source: HasSplit,
    targets: Sequence[HasSplit],
    cells: Iterable[Cell],
) -> dict[str, ImagePlan]:
    """{dataset name: images read} by the runs of ``cells`` on ``source`` under ``protocol``.

    Builds each cell's plan with the protocol's own builder, as
    :func:`bimors.grid.runner.run_grid` does, and collects the relpaths of
    what :func:`bimors.run.experiment.run_plan` reads: the plan's train and val
    tasks (from the training dataset) and every evaluation's task.
    """
    from bimors.protocols.plans import PROTOCOLS

    proto = PROTOCOLS.get(protocol)
    out: dict[str, ImagePlan] = {}
    for cell in sorted(set(cells), key=Cell.order):
        plan = proto.build(source, cell.shots, cell.seed, list(targets), sampler=cell.sampler)
        mine = out.setdefault(plan.train_dataset.name, ImagePlan())
        drawn = mine.draws.setdefault(cell, set())
        drawn.update(s.relpath for s in (*plan.train.samples, *plan.val.samples))
        for spec in plan.evals:
            out.setdefault(spec.dataset.name, ImagePlan()).eval.update(
                s.relpath for s in spec.task.samples
            )
    return out


def target_images(dataset: HasSplit) -> ImagePlan:
    """What a transfer grid reads of a target dataset: its test split, nothing else."""
    return ImagePlan(eval={s.relpath for s in dataset.split().test})


def plan_options(protocol: str, source: str, cell: Cell, targets: Sequence[str] = ()) -> str:
    """The ``bimors caption`` options that caption what one run (``cell``) reads."""
    args = f" --protocol {protocol} --source {source}"
    if targets:
        return args + " --targets " + " ".join(targets)
    return args + f" --seeds {cell.seed} --shots {cell.shots} --fewshot-sampler {cell.sampler}"
