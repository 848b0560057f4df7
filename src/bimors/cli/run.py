"""``bimors run``: a whole protocol grid over methods, datasets and seeds, then its tables."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from bimors.cli.common import (
    add_config_args,
    add_store_args,
    main_process,
    pairs,
    progress_enabled,
)
from bimors.protocols import PROTOCOL_NAMES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a protocol grid (skips finished runs, resumes unfinished ones)",
        description="Train and evaluate every (method, dataset, sweep point, seed) of a protocol. "
        "Run folders are OUT/<protocol>/<dataset>/<method>/seed<k>, or "
        "OUT/<protocol>/<dataset>/<method>/<k1=v1,k2=v2>/seed<k> with --sweep; rerunning skips "
        "finished runs.",
    )
    p.add_argument("--protocol", required=True, choices=PROTOCOL_NAMES)
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
        "--shots",
        nargs="+",
        type=int,
        help="shot counts as one grid axis (the same as --sweep data.shots=K1,K2,...), "
        "e.g. --protocol fewshot --shots 1 2 4 8 16",
    )
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
        help="first caption the images the grid's runs read that the caption stores lack "
        "(draws and test splits, not every image), with the configured captioner and encoder",
    )
    p.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a grid axis: one run per value of config KEY (e.g. data.shots=1,2,4,8,16); "
        "repeat for a cartesian product; the report adds few-shot curves and ablation tables",
    )
    p.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="run only the K-th of N disjoint parts of the grid (e.g. $SLURM_ARRAY_TASK_ID/N); "
        "a run another process holds is skipped",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="print the grid's runs as JSON lines (run folder, command that runs it) and exit",
    )
    add_store_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N (e.g. 3/8)") from None
    if n < 1 or not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"{text!r}: K must be in 1..N")
    return k, n


def sweeps_of(args: argparse.Namespace) -> list[str]:
    """``--sweep`` items, with ``--shots K1 K2`` as the ``data.shots`` axis."""
    from bimors.core.errors import ConfigError

    sweeps = list(args.sweep)
    if getattr(args, "shots", None):
        if any(s.split("=", 1)[0].strip() == "data.shots" for s in sweeps):
            raise ConfigError("--shots and --sweep data.shots=... both give shots; keep one")
        if any(k < 1 for k in args.shots):
            raise ConfigError(f"--shots: every shot count must be >= 1, got {args.shots}")
        sweeps.append("data.shots=" + ",".join(str(k) for k in args.shots))
    return sweeps


def list_runs(args: argparse.Namespace) -> list[dict[str, object]]:
    """One entry per run of the grid (of this shard): its folder and the command for it alone."""
    from bimors.core.config import apply_overrides, load_yaml
    from bimors.grid.runner import cell_cost, grid_cells, grid_sources, run_dir_for
    from bimors.grid.sweep import check_not_set, parse_sweeps, point_dict, value_text
    from bimors.protocols.plans import PROTOCOLS

    sources = grid_sources(args.protocol, args.dataset)
    out_dir = Path(args.out).absolute()
    common = ["bimors", "run", "--protocol", args.protocol, "--out", str(out_dir)]
    for root in args.root:
        common += ["--root", root]
    if args.data_root:
        common += ["--data-root", args.data_root]
    if args.targets is not None:
        common += ["--targets", *args.targets]
    if args.config:
        common += ["--config", str(args.config)]
    for item in args.overrides:
        common += ["--set", item]
    for item in args.store:
        common += ["--store", item]
    if args.caption:  # one run alone must fill its own captions, as the grid would
        common.append("--caption")
    if args.overwrite:
        common.append("--overwrite")
    sweep = parse_sweeps(sweeps_of(args))
    sweep.check_methods(args.method)
    user = apply_overrides(load_yaml(args.config) if args.config else {}, args.overrides)
    check_not_set(sweep.points()[0], user)  # a conflict would fail every listed command
    out = []
    targets = (
        list(args.targets)
        if args.targets is not None
        else list(PROTOCOLS.get(args.protocol).default_targets)
    )
    cost = cell_cost(args.protocol, targets, args.config, args.overrides)
    cells = grid_cells(sources, args.method, args.seeds, args.shard, sweep.points(), cost)
    for source, method, seed, point in cells:
        run_dir = run_dir_for(out_dir, args.protocol, source, method, seed, point)
        cmd = [*common, "--dataset", source, "--method", method, "--seeds", str(seed)]
        for key, value in point:  # one value: the same run folder as in the whole grid
            cmd += ["--sweep", f"{key}={value_text(value)}"]
        entry = {
            "run": str(run_dir),
            "protocol": args.protocol,
            "dataset": source,
            "method": method,
            "seed": seed,
            "cost": cost((source, method, seed, point)),
        }
        if point:
            entry["sweep"] = point_dict(point)
        out.append({**entry, "command": shlex.join(cmd)})
    return out


def roots_from(args: argparse.Namespace, datasets: list[str] | None):
    from bimors.core.errors import ConfigError
    from bimors.grid.runner import Roots

    plain = [r for r in args.root if "=" not in r]
    named = pairs([r for r in args.root if "=" in r], "--root")
    if plain:
        if len(plain) > 1 or not datasets or len(datasets) != 1:
            raise ConfigError("a bare --root DIR needs exactly one --dataset; use --root NAME=DIR")
        named[datasets[0]] = plain[0]
    return Roots(named, args.data_root)


def run(args: argparse.Namespace) -> int:
    from bimors.grid.runner import run_grid
    from bimors.grid.sweep import parse_sweeps
    from bimors.report.build import build_report

    if args.list:
        for entry in list_runs(args):
            print(json.dumps(entry))
        return 0

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
        args.shard,
        parse_sweeps(sweeps_of(args)),
    )
    if not main_process():  # one report per launch
        return 0
    if args.shard is not None:  # other shards may still be running: report when all are done
        print(
            f"{len(records)} records from shard {args.shard[0]}/{args.shard[1]}; when every "
            f"shard has finished: bimors report {args.out}"
        )
        return 0
    report = build_report(args.out)
    print(report["markdown"])
    print(f"{len(records)} records from this grid; report written to {args.out / 'report.md'}")
    return 0
