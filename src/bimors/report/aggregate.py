"""Mean and spread over seeds, and the harmonic mean the base-to-new tables report.

The standard HM (CoCoOp, APPLeNet, BiMoRS) is computed from the seed-averaged
base and new accuracies, not averaged over per-seed HMs. Averages over
datasets are means of the per-dataset seed means.

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


@dataclasses.dataclass
class Stat:
    mean: float
    std: float  # sample standard deviation over seeds (0 for one seed)
    n: int
    fallback: str = ""  # what scored (some of) these records instead of the method, if any

    @classmethod
    def of(cls, values: list[float], fallbacks: Iterable[str | None] = ()) -> Stat:
        used = ",".join(sorted({f for f in fallbacks if f}))
        if not values:
            return cls(math.nan, math.nan, 0, used)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), std, len(values), used)


@dataclasses.dataclass
class Base2NewRow:
    method: str
    dataset: str
    base: Stat
    new: Stat

    @property
    def hm(self) -> float:
        return harmonic_mean(self.base.mean, self.new.mean)


def _latest(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (protocol, method, train dataset, dataset, split, seed): the last seen."""
    out: dict[tuple, dict[str, Any]] = {}
    for r in records:
        key = (
            r.get("protocol"),
            r["method"],
            r.get("train_dataset", r["dataset"]),
            r["dataset"],
            r["split"],
            r["seed"],
        )
        out[key] = r
    return list(out.values())


def base2new_rows(records: Iterable[dict[str, Any]]) -> list[Base2NewRow]:
    """One row per (method, dataset) from base2new records, plus an ``average`` dataset row
    per method (mean over datasets of the seed-averaged accuracies)."""
    acc: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    fell: dict[tuple[str, str, str], list[str | None]] = defaultdict(list)
    for r in _latest(records):
        if r.get("protocol") != "base2new":
            continue
        key = (r["method"], r["dataset"], r["split"])
        acc[key].append(float(r["accuracy"]))
        fell[key].append(r.get("fallback"))
    pairs = list(dict.fromkeys((m, d) for m, d, _ in acc))  # order of first appearance

    def stat(m: str, d: str, split: str) -> Stat:
        return Stat.of(acc[(m, d, split)], fell[(m, d, split)])

    rows = [Base2NewRow(m, d, stat(m, d, "base"), stat(m, d, "new")) for m, d in pairs]
    by_method: dict[str, list[Base2NewRow]] = defaultdict(list)
    for row in rows:
        by_method[row.method].append(row)
    out: list[Base2NewRow] = []
    for method, mrows in by_method.items():
        out.extend(mrows)
        if len(mrows) > 1:
            out.append(
                Base2NewRow(
                    method,
                    "average",
                    Stat.of([r.base.mean for r in mrows], [r.base.fallback for r in mrows]),
                    Stat.of([r.new.mean for r in mrows], [r.new.fallback for r in mrows]),
                )
            )
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
    def target_average(self) -> float:
        means = [self.cells[d].mean for d in self.targets]
        return statistics.fmean(means) if means else math.nan


def transfer_rows(records: Iterable[dict[str, Any]], protocol: str) -> list[TransferRow]:
    """Rows of a cross-dataset or domain-generalisation table."""
    acc: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    fell: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in _latest(records):
        if r.get("protocol") != protocol:
            continue
        source = r.get("train_dataset", r["dataset"])
        acc[(r["method"], source)][r["dataset"]].append(float(r["accuracy"]))
        fell[(r["method"], source)][r["dataset"]].append(r.get("fallback"))
    rows = []
    for (method, source), cells in acc.items():
        order = [source] + [d for d in cells if d != source] if source in cells else list(cells)
        stats = {d: Stat.of(cells[d], fell[(method, source)][d]) for d in order}
        rows.append(TransferRow(protocol, method, source, stats))
    return rows
