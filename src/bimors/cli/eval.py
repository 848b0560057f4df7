"""``bimors eval``: evaluate a finished run on a dataset split and add the record to the run."""

from __future__ import annotations

import argparse

from bimors.cli.common import add_store_args, format_record, main_process, pairs, progress_enabled


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a trained run on a dataset split")
    p.add_argument("run_dir", help="a finished run folder")
    p.add_argument("--dataset", help="dataset to evaluate on (default: the run's)")
    p.add_argument("--root", help="its folder (default: the run's, for the run's dataset)")
    p.add_argument(
        "--split", nargs="+", choices=["base", "new", "all"], help="default: the protocol's"
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--allow-other-version", action="store_true", help="use a run of another bimors version"
    )
    add_store_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bimors.run.evaluation import evaluate_run
    from bimors.run.trained import load_trained

    trained = load_trained(args.run_dir, args.device, args.allow_other_version)
    records = evaluate_run(
        trained,
        args.dataset,
        args.root,
        args.split,
        pairs(args.store, "--store"),
        progress_enabled(),
    )
    if not main_process():
        return 0
    for r in records:
        print(format_record(r))
    return 0
