"""``bimors run``: a whole protocol grid over methods, datasets and seeds, then its tables."""

from __future__ import annotations

import argparse
from pathlib import Path

from bimors.cli.common import (
    add_config_args,
    add_store_args,
    main_process,
    pairs,
    progress_enabled,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a protocol grid (skips finished runs, resumes unfinished ones)",
        description="Train and evaluate every (method, dataset, seed) of a protocol. Run folders "
        "are OUT/<protocol>/<dataset>/<method>/seed<k>; rerunning skips finished runs.",
    )
    p.add_argument("--protocol", required=True, choices=["base2new", "cross_dataset", "domain_gen"])
    p.add_argument("--method", nargs="+", required=True, help="one or more registered methods")
    p.add_argument(
        "--dataset",
        nargs="+",
        help="training dataset(s); default for cross_dataset: patternnet, domain_gen: patternnetv2",
    )
    p.add_argument(
        "--targets", nargs="*", help="target datasets (transfer protocols; default: the paper's)"
    )
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument(
        "--root", action="append", default=[], help="DIR for one dataset, or NAME=DIR (repeatable)"
    )
    p.add_argument("--data-root", help="folder holding every dataset in its default sub-folder")
    p.add_argument("--out", type=Path, default=Path("runs"), help="runs folder (default: runs)")
    p.add_argument(
        "--overwrite", action="store_true", help="rerun and replace existing run folders"
    )
    p.add_argument(
        "--caption",
        action="store_true",
        help="first caption the images the caption stores lack, with the configured captioner "
        "and encoder (complete stores are skipped at no cost)",
    )
    add_store_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def roots_from(args: argparse.Namespace, datasets: list[str] | None):
    from bimors.errors import ConfigError
    from bimors.protocols.runner import Roots

    plain = [r for r in args.root if "=" not in r]
    named = pairs([r for r in args.root if "=" in r], "--root")
    if plain:
        if len(plain) > 1 or not datasets or len(datasets) != 1:
            raise ConfigError("a bare --root DIR needs exactly one --dataset; use --root NAME=DIR")
        named[datasets[0]] = plain[0]
    return Roots(named, args.data_root)


def run(args: argparse.Namespace) -> int:
    from bimors.protocols.runner import run_grid
    from bimors.report.build import build_report

    records = run_grid(
        args.protocol,
        args.method,
        args.dataset,
        args.seeds,
        roots_from(args, args.dataset),
        args.out,
        args.config,
        args.overrides,
        args.targets,
        pairs(args.store, "--store"),
        args.overwrite,
        progress_enabled(),
        args.caption,
    )
    if not main_process():  # one report per launch
        return 0
    report = build_report(args.out)
    print(report["markdown"])
    print(f"{len(records)} records from this grid; report written to {args.out / 'report.md'}")
    return 0
