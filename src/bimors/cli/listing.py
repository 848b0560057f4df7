"""``bimors list``: the registered methods, backbones and datasets."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered methods, backbones and datasets")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bimors.backbones import BACKBONES
    from bimors.config import preset_names
    from bimors.data import DATASETS
    from bimors.methods import METHODS

    print("methods:   " + ", ".join(METHODS.names()))
    print("backbones: " + ", ".join(BACKBONES.names()))
    print("datasets:  " + ", ".join(DATASETS.names()))
    print("presets:   " + ", ".join(preset_names()))
    print()
    print(backbone_presets_table())
    return 0


def backbone_presets_table() -> str:
    """The backbone presets, one line each: what ``--set backbone.preset=NAME`` loads."""
    from bimors.backbones.presets import PRESETS

    rows = [("backbone preset", "family", "adapter", "architecture / model", "GELU", "weights")]
    for p in PRESETS.values():
        act = "quick" if p.quick_gelu else "plain"
        rows.append((p.name, p.family, p.adapter, p.model, act, p.pretrained or p.model))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    ]
    return "\n".join(lines) + "\n(select with --set backbone.preset=NAME; README: Backbones)"
