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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from bimors.demo import NOTE, run_demo

    progress = logging.getLogger().getEffectiveLevel() <= logging.INFO
    out = run_demo(args.out, seed=args.seed, progress=progress)
    print()
    print(out["table"])
    print(NOTE)
    print(f"results: {out['results']}")
    print(f"report:  {out['report']}")
    print(f"plot:    {out['plot']}")
    print(f"done in {out['seconds']:.0f} s")
    return 0
