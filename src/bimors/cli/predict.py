"""``bimors predict RUN_DIR IMAGES...``: top-k classes with probabilities for new images."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images with a trained run")
    p.add_argument(
        "run_dir",
        help="a run folder, a folder written by bimors export, or hf:ID (a pushed export)",
    )
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--topk", type=int, default=5)
    p.add_argument("--classes", nargs="+", help="class names to choose from (default: the run's)")
    p.add_argument("--captioner", help="captioner for on-the-fly captions (default: the run's)")
    p.add_argument("--encoder", help="caption encoder (default: the run's)")
    p.add_argument("--store", help="read captions from this store instead")
    p.add_argument("--store-root", help="the dataset root the store's keys are relative to")
    p.add_argument("--device", default="auto")
    p.add_argument("--allow-other-version", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bimors.run.predict import Predictor

    exported = (
        args.run_dir.startswith("hf:") or (Path(args.run_dir) / "model.safetensors").is_file()
    )
    load = Predictor.from_pretrained if exported else Predictor.from_run
    extra = {} if exported else {"allow_other_version": args.allow_other_version}
    predictor = load(
        args.run_dir,
        args.device,
        classnames=args.classes,
        captioner=args.captioner,
        encoder=args.encoder,
        store=args.store,
        store_root=args.store_root,
        **extra,
    )
    style = predictor.trained.cfg.data.classnames
    print(f"prompt names ({style}): {', '.join(predictor.prompt_names)}")
    for path, top in zip(args.images, predictor.predict(args.images, args.topk), strict=True):
        print(path)
        for name, prob in top:
            print(f"  {prob:7.2%}  {name}")
    return 0
