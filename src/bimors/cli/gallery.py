"""``bimors gallery RUN``: an HTML page of a run's misclassified test images."""

from __future__ import annotations

import argparse
from pathlib import Path

from bimors.cli.common import add_store_args, pairs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gallery", help="write an HTML page of a run's most frequent confusions, with the images"
    )
    p.add_argument("run_dir", help="a finished run folder")
    p.add_argument("--out", type=Path, help="the page to write (default: RUN/gallery.html)")
    p.add_argument(
        "--split", nargs="+", choices=["base", "new", "all"], help="default: the protocol's"
    )
    p.add_argument("--pairs", type=int, default=12, help="confusions shown (default 12)")
    p.add_argument("--per-pair", type=int, default=8, help="images per confusion (default 8)")
    p.add_argument("--device", default="auto")
    p.add_argument("--allow-other-version", action="store_true")
    add_store_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bimors.report.gallery import write_gallery
    from bimors.run.trained import load_trained

    trained = load_trained(args.run_dir, args.device, args.allow_other_version)
    out = write_gallery(
        trained, args.out, args.split, pairs(args.store, "--store"), args.pairs, args.per_pair
    )
    print(f"wrote {out}")
    return 0
