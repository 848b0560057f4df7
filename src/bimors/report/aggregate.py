"""Mean and spread over seeds, and the harmonic mean the base-to-new tables report.

The standard HM (CoCoOp, APPLeNet, BiMoRS) is computed from the seed-averaged
base and new accuracies, not averaged over per-seed HMs. Averages over
datasets are means of the per-dataset seed means, as the papers print them;
their spread is the standard deviation over seeds of the per-seed average over
datasets (seeds every dataset has), so every ``±`` in a report is a spread
over seeds, never one across datasets.

A cell whose records carry ``fallback`` (a method that scored those classes
with another classifier, e.g. the linear probe's zero-shot CLIP on unseen
classes) keeps that name in :attr:`Stat.fallback`, so tables can mark it.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any


def harmonic_mean(base: float, new: float) -> float:
    """2 * base * new / (base + new); 0 when both are 0."""
    return 0.0 if base + new == 0 else 2.0 * base * new / (base + new)


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


@dataclasses.dataclass
class Stat:
    """One table cell: mean and sample std over ``n`` seeds, over ``datasets`` datasets."""

    mean: float
    std: float  # sample standard deviation over seeds (0 for one seed)
    n: int  # seeds behind ``std`` (for an average: seeds every dataset has)
    fallback: str = ""  # what scored (some of) these records instead of the method, if any
    by_seed: dict[Any, float] = dataclasses.field(default_factory=dict)
    datasets: int = 1  # datasets averaged into ``mean``

    @classmethod
    def of(cls, values: list[float], fallbacks: Iterable[str | None] = ()) -> Stat:
        """A cell from one value per seed (seeds numbered by position)."""
        return cls.from_seeds(dict(enumerate(values)), fallbacks)

    @classmethod
    def from_seeds(cls, by_seed: dict[Any, float], fallbacks: Iterable[str | None] = ()) -> Stat:
        """A cell from ``{seed: accuracy}``."""
        used = ",".join(sorted({f for f in fallbacks if f}))
        values = list(by_seed.values())
        if not values:
            return cls(math.nan, math.nan, 0, used)
        return cls(statistics.fmean(values), _std(values), len(values), used, dict(by_seed))

    @classmethod
    def average(cls, stats: list[Stat]) -> Stat:
        """The mean over datasets of per-dataset means; ± over seeds of the per-seed average.

        Only seeds present in every dataset enter the spread (and ``n``); the mean
        uses every seed of every dataset, as the per-dataset columns do.
        """
        stats = [s for s in stats if s.n > 0]
        used = ",".join(sorted({f for s in stats if s.fallback for f in s.fallback.split(",")}))
        if not stats:
            return cls(math.nan, math.nan, 0, used, {}, 0)
        common = [k for k in stats[0].by_seed if all(k in s.by_seed for s in stats)]
        per_seed = {k: statistics.fmean(s.by_seed[k] for s in stats) for k in common}
        mean = statistics.fmean(s.mean for s in stats)
        std = _std(list(per_seed.values())) if per_seed else math.nan
        return cls(mean, std, len(per_seed), used, per_seed, len(stats))


def hm_stat(base: Stat, new: Stat) -> Stat:
    """HM of the seed means, with the std over seeds of the per-seed HMs as its spread."""
    common = [k for k in base.by_seed if k in new.by_seed]
    per_seed = {k: harmonic_mean(base.by_seed[k], new.by_seed[k]) for k in common}
    fallback = ",".join(sorted({f for f in (base.fallback, new.fallback) if f}))
    mean = harmonic_mean(base.mean, new.mean) if base.n and new.n else math.nan
    std = _std(list(per_seed.values())) if per_seed else math.nan
    return Stat(mean, std, len(per_seed), fallback, per_seed, min(base.datasets, new.datasets))


@dataclasses.dataclass
class Base2NewRow:
    method: str
    dataset: str  # a dataset name, or ``average`` (over this method's datasets)
    base: Stat
    new: Stat

    @property
    def hm(self) -> float:
        return harmonic_mean(self.base.mean, self.new.mean)

    @property
    def hm_stat(self) -> Stat:
        return hm_stat(self.base, self.new)


def latest(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (protocol, method, train dataset, dataset, split, seed, sweep point):
    the last seen."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in records:
        key = (
            r.get("protocol"),
            r["method"],
            r.get("train_dataset", r["dataset"]),
            r["dataset"],
            r["split"],
            r["seed"],
            tuple((k, repr(v)) for k, v in (r.get("sweep") or {}).items()),
        )
        out[key] = r
    return list(out.values())


def base2new_rows(records: Iterable[dict[str, Any]]) -> list[Base2NewRow]:
    """One row per (method, dataset) from base2new records, plus an ``average`` dataset row
    per method with more than one dataset (see :meth:`Stat.average`)."""
    acc: dict[tuple[str, str, str], dict[Any, float]] = defaultdict(dict)
    fell: dict[tuple[str, str, str], list[str | None]] = defaultdict(list)
    for r in latest(records):
        if r.get("protocol") != "base2new":
            continue
        key = (r["method"], r["dataset"], r["split"])
        acc[key][r["seed"]] = float(r["accuracy"])
        fell[key].append(r.get("fallback"))
    pairs = list(dict.fromkeys((m, d) for m, d, _ in acc))  # order of first appearance

    def stat(m: str, d: str, split: str) -> Stat:
        return Stat.from_seeds(acc.get((m, d, split), {}), fell.get((m, d, split), []))

    rows = [Base2NewRow(m, d, stat(m, d, "base"), stat(m, d, "new")) for m, d in pairs]
    by_method: dict[str, list[Base2NewRow]] = defaultdict(list)
    for row in rows:
        by_method[row.method].append(row)
    out: list[Base2NewRow] = []
    for method, mrows in by_method.items():
        out.extend(mrows)
        if len(mrows) > 1:
            base = Stat.average([r.base for r in mrows])
            new = Stat.average([r.new for r in mrows])
            out.append(Base2NewRow(method, "average", base, new))
    return out


@dataclasses.dataclass
class TransferRow:
    """Cross-dataset or domain generalisation: one method trained on ``source``."""

    protocol: str
    method: str
    source: str
    cells: dict[str, Stat]  # dataset -> accuracy over seeds (source first)

    @property
    def targets(self) -> list[str]:
        return [d for d in self.cells if d != self.source]

    @property
    def average(self) -> Stat:
        """Mean over the targets (the source is not averaged in), ± over seeds."""
        return Stat.average([self.cells[d] for d in self.targets])

    @property
    def target_average(self) -> float:
        return self.average.mean


def transfer_rows(records: Iterable[dict[str, Any]], protocol: str) -> list[TransferRow]:
    """Rows of a cross-dataset or domain-generalisation table."""
    acc: dict[tuple[str, str], dict[str, dict[Any, float]]] = defaultdict(lambda: defaultdict(dict))
    fell: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in latest(records):
        if r.get("protocol") != protocol:
            continue
        source = r.get("train_dataset", r["dataset"])
        acc[(r["method"], source)][r["dataset"]][r["seed"]] = float(r["accuracy"])
        fell[(r["method"], source)][r["dataset"]].append(r.get("fallback"))
    rows = []
    for (method, source), cells in acc.items():
        order = [source] + [d for d in cells if d != source] if source in cells else list(cells)
        stats = {d: Stat.from_seeds(cells[d], fell[(method, source)][d]) for d in order}
        rows.append(TransferRow(protocol, method, source, stats))
    return rows
