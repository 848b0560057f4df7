"""``bimors demo``: the whole pipeline offline on synthetic scenes and tiny models."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the offline demo (synthetic scenes, tiny random models)")
    p.add_argument(
        "--out", type=Path, default=Path("bimors-demo"), help="output folder (default: bimors-demo)"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--ablation",
        action="store_true",
        help="instead: the sweep demo (few-shot curves, BiMoRS keys / caption projection / "
        "caption encoder ablation) into OUT/runs, with its report",
    )
    p.add_argument(
        "--fewshot",
        action="store_true",
        help="instead: the few-shot protocol demo (two methods, shots 1 2 4, two tiny "
        "backbones as a grid axis) into OUT/runs, with its per-backbone tables and curves",
    )
    p.add_argument(
        "--print-commands",
        action="store_true",
        help="with --ablation or --fewshot: print the equivalent bimors run / report commands "
        "and exit",
    )
    p.add_argument(
        "--prepare",
        action="store_true",
        help="with --ablation or --fewshot: only write the tiny models and synthetic scenes "
        "under OUT (the first of the --print-commands)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from bimors.demo.base2new import NOTE, run_demo

    progress = logging.getLogger().getEffectiveLevel() <= logging.INFO
    if args.ablation and args.fewshot:
        from bimors.core.errors import ConfigError

        raise ConfigError("bimors demo: --ablation and --fewshot are two demos; pick one")
    if args.ablation:
        return _ablation(args, progress)
    if args.fewshot:
        return _fewshot(args, progress)
    out = run_demo(args.out, seed=args.seed, progress=progress)
    print()
    print(out["table"])
    print(NOTE)
    print(f"results: {out['results']}")
    print(f"report:  {out['report']}")
    print(f"plot:    {out['plot']}")
    print(f"done in {out['seconds']:.0f} s")
    return 0


def _ablation(args: argparse.Namespace, progress: bool) -> int:
    from bimors.demo.ablation import ablation_commands, prepare, run_ablation_demo

    if args.print_commands:  # writes nothing: the first command prepares the inputs
        print("\n".join(ablation_commands(args.out)))
        return 0
    if args.prepare:
        models, data = prepare(args.out.absolute())
        print(f"models: {models}")
        print(f"scenes: {data}")
        return 0
    return _print_grid_demo(run_ablation_demo(args.out, progress=progress))


def _fewshot(args: argparse.Namespace, progress: bool) -> int:
    from bimors.demo.fewshot import fewshot_commands, prepare, run_fewshot_demo

    if args.print_commands:  # writes nothing: the first command prepares the inputs
        print("\n".join(fewshot_commands(args.out)))
        return 0
    if args.prepare:
        backbones, data = prepare(args.out.absolute())
        print(f"models: {', '.join(map(str, backbones))}")
        print(f"scenes: {data}")
        return 0
    return _print_grid_demo(run_fewshot_demo(args.out, progress=progress))


def _print_grid_demo(out: dict) -> int:
    """What a grid demo (ablation or few-shot) shows when it has run: its report and figures."""
    from bimors.demo.base2new import REAL_RUN, note

    print(out["markdown"])
    print(note(out.get("real_run", REAL_RUN)))
    print(f"report:  {out['report']}")
    for path in out["files"]:
        if path.suffix == ".png":
            print(f"figure:  {path}")
    print(f"{len(out['records'])} records; done in {out['seconds']:.0f} s")
    return 0
