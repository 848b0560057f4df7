"""Arguments shared by several sub-commands."""

from __future__ import annotations

import argparse
import logging


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file applied on top of the method's preset")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dotted override, e.g. --set train.lr=0.002 (repeatable)",
    )


def add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        action="append",
        default=[],
        metavar="DATASET=PATH",
        help=(
            "caption store of a dataset (default: the one `bimors caption` made under "
            "<dataset root>/.bimors/captions/ for the configured models); repeatable"
        ),
    )


def pairs(items: list[str], flag: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` -> ``{"a": "1", "b": "2"}`` with an error naming the flag."""
    from bimors.core.errors import ConfigError

    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{flag} {item!r} must look like NAME=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def progress_enabled() -> bool:
    """Progress bars unless --quiet."""
    return logging.getLogger().getEffectiveLevel() <= logging.INFO


def format_record(r: dict) -> str:
    """One line per evaluation record."""
    return (
        f"{r['method']} {r['dataset']} {r['split']}: {r['accuracy']:.2f}% "
        f"({r['correct']}/{r['total']})"
    )


def main_process() -> bool:
    """Whether this process reports: under ``accelerate launch`` only rank 0 prints."""
    import os

    return os.environ.get("RANK", "0") == "0"
