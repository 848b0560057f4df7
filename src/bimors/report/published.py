"""The published numbers of the APPLeNet paper's three tables, printed beside ours.

They live in ``published_results.json`` next to this module (package data), a
transcription of the result images of the APPLeNet repository; its ``source``
field (:data:`SOURCE`) says exactly where from. The numbers are facts carried
so that a report needs no network and no file outside the package.

Base-to-new cells are ``(base, new, hm)`` per dataset plus the paper's own
``average``; cross-dataset and domain-generalisation cells are one accuracy
per dataset (the paper's source dataset first). The paper prints no average
over targets for those two tables: :func:`published_value` derives it as the
plain mean of the published targets, and :data:`DERIVED_AVERAGE_NOTE` says so.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from importlib import resources
from typing import Any

#: The metric names of a base-to-new cell, in the JSON's order.
BASE2NEW_METRICS = ("base", "new", "hm")

DERIVED_AVERAGE_NOTE = (
    "the paper prints no target average for this table: the published average shown is "
    "the mean of its published target accuracies, computed here"
)


@functools.cache
def _data() -> dict[str, Any]:
    text = resources.files("bimors.report").joinpath("published_results.json").read_text("utf-8")
    return json.loads(text)


def source() -> str:
    """Where the numbers come from (paper, repository, commit, result images)."""
    return str(_data()["source"])


def paper_datasets(protocol: str) -> tuple[str, ...]:
    """The datasets of a published table in the paper's column order (source first)."""
    section = _data().get(protocol)
    if section is None:
        return ()
    first = next(iter(section["results"].values()))
    return tuple(d for d in first if d != "average")


def paper_source(protocol: str) -> str | None:
    """The training dataset of a published transfer table (``None`` for base-to-new)."""
    section = _data().get(protocol) or {}
    return section.get("source_dataset")


def published_methods(protocol: str) -> tuple[str, ...]:
    """Methods with published numbers for ``protocol``, as our registry names them."""
    section = _data().get(protocol)
    return tuple(section["results"]) if section else ()


def published_value(protocol: str, method: str, dataset: str, metric: str) -> float | None:
    """The published number of one cell, or ``None`` where the paper has none.

    ``dataset`` may be ``"average"``: the paper's average for base-to-new, the
    mean of the published targets for the transfer tables (see module doc).
    ``metric`` is ``base``/``new``/``hm`` for base-to-new and ``acc`` otherwise.
    """
    section = _data().get(protocol)
    if section is None or method not in section["results"]:
        return None
    cells = section["results"][method]
    if protocol == "base2new":
        if dataset not in cells or metric not in BASE2NEW_METRICS:
            return None
        return float(cells[dataset][BASE2NEW_METRICS.index(metric)])
    if metric != "acc":
        return None
    if dataset == "average":
        targets = [float(v) for d, v in cells.items() if d != section["source_dataset"]]
        return statistics.fmean(targets) if targets else None
    value = cells.get(dataset)
    return None if value is None or math.isnan(float(value)) else float(value)
