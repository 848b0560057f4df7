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
    return 0
