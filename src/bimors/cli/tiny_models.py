"""``bimors tiny-models --out DIR``: random tiny models written through the real save paths."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tiny-models",
        help="write tiny random-weight CLIPs (transformers, open_clip) and a BLIP-2 captioner",
    )
    p.add_argument("--out", type=Path, required=True, help="folder to write into")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bimors.demo.tiny import minilm_path, write_all

    paths = write_all(args.out, seed=args.seed)
    for name, path in paths.items():
        print(f"{name:14s} {path}")
    print(f"{'caption-encoder':14s} {minilm_path()}  (real all-MiniLM-L6-v2)")
    print(
        "use them by path, e.g. --set backbone.adapter=hf --set backbone.model="
        + str(paths["clip-hf"])
    )
    return 0
