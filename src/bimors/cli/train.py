"""``bimors train``: one run (one method, dataset and seed) of a protocol into a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from bimors.cli.common import (
    add_config_args,
    add_store_args,
    format_record,
    main_process,
    pairs,
    progress_enabled,
)
from bimors.protocols import PROTOCOL_NAMES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train and evaluate one run into a run folder")
    p.add_argument("--method", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", required=True, help="the dataset's folder")
    p.add_argument(
        "--protocol",
        default="base2new",
        choices=PROTOCOL_NAMES,
    )
    p.add_argument("--targets", nargs="*", default=[], metavar="NAME=DIR", help="transfer targets")
    p.add_argument("--seed", type=int, help="default: train.seed of the config, else 1")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--overwrite", action="store_true")
    add_store_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bimors.backbones import load_backbone
    from bimors.captions.stores import CaptionStores
    from bimors.engine.dist import Dist
    from bimors.grid.runner import Roots, build_datasets, config_for
    from bimors.protocols.plans import PROTOCOLS
    from bimors.run.experiment import run_plan
    from bimors.run.preflight import check_config

    targets = pairs(args.targets, "--targets")
    roots = Roots({args.dataset: args.root, **targets})
    cfg = config_for(
        args.method,
        args.dataset,
        Path(args.root),
        args.seed,
        args.config,
        args.overrides,
        args.protocol,
    )
    check_config(cfg, args.out)  # before any model is loaded
    dist = Dist(cfg.train.device)
    backbone = load_backbone(
        cfg.backbone.adapter, cfg.backbone.model, cfg.backbone.pretrained, cfg.backbone.activation
    ).to(dist.device)
    train_ds, target_ds = build_datasets(roots, args.dataset, list(targets), cfg)
    plan = PROTOCOLS.get(args.protocol).build(
        train_ds, cfg.data.shots, cfg.train.seed, target_ds, sampler=cfg.data.fewshot_sampler
    )
    stores = CaptionStores(cfg, pairs(args.store, "--store"))
    try:
        records = run_plan(
            cfg, plan, backbone, stores, args.out, args.overwrite, progress_enabled(), dist
        )
    finally:
        stores.close()
    if not main_process():
        return 0
    for r in records:
        print(format_record(r))
    print(f"run folder: {args.out}")
    return 0
