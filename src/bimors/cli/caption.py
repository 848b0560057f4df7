"""``bimors caption``: caption and encode the images of a dataset into a caption store.

Every image of the split, or (``--protocol``) only those a protocol grid reads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bimors.captions.captioner import DEFAULT_CAPTIONER, OFFICIAL_SETTINGS
from bimors.captions.encoder import DEFAULT_ENCODER
from bimors.cli.common import main_process, progress_enabled
from bimors.protocols import PROTOCOL_NAMES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "caption",
        help="caption the images of a dataset once: all, or those a --protocol grid reads "
        "(resumable; shards under accelerate launch)",
        description=(
            "Caption every image of the dataset's train/val/test split (with --protocol: only "
            "those the grid's runs read) with a frozen "
            "image-to-text model, encode each caption with a frozen text encoder, and store "
            "text, vector and provenance per image. Rerun the same command after a crash to "
            "finish the job; run it under `accelerate launch --multi_gpu --num_processes N -m "
            "bimors.cli caption ...` to use N GPUs."
        ),
    )
    p.add_argument("--dataset", required=True, help="registered dataset (`bimors list`)")
    p.add_argument("--root", type=Path, required=True, help="the dataset folder")
    p.add_argument(
        "--store",
        type=Path,
        help="caption store file (default: ROOT/.bimors/captions/<captioner>__<encoder>.sqlite)",
    )
    p.add_argument(
        "--captioner",
        default=DEFAULT_CAPTIONER,
        help=f"any transformers image-to-text model, hub id or folder ({DEFAULT_CAPTIONER})",
    )
    p.add_argument("--captioner-revision", help="hub revision (commit, branch or tag) to pin")
    p.add_argument(
        "--encoder",
        default=DEFAULT_ENCODER,
        help=f"any transformers text encoder, hub id or folder (default: {DEFAULT_ENCODER})",
    )
    p.add_argument("--encoder-revision", help="hub revision of the encoder to pin")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (default: 16)")
    p.add_argument(
        "--device", default="auto", help="auto (the accelerate device), cpu, cuda, cuda:1, ..."
    )
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="captioner weights (default auto: bfloat16 on CUDA, float32 elsewhere)",
    )
    p.add_argument("--num-beams", type=int, default=4, help="beam width (default: 4, the paper's)")
    p.add_argument(
        "--max-length",
        type=int,
        default=OFFICIAL_SETTINGS.max_length,
        help="token budget as transformers' max_length (default: 16, the official script's: "
        "15 new tokens for BLIP-2 FLAN-T5)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="token budget as new tokens instead of --max-length (e.g. 16)",
    )
    p.add_argument(
        "--preprocess",
        default=OFFICIAL_SETTINGS.preprocess,
        choices=["none", "official"],
        help="official (default, as the BiMoRS preset): resize to 224x224 and stretch "
        "intensities first, as the official gen_caption.py; none: the decoded image",
    )
    p.add_argument("--prompt", help="text prefix for captioners that take one (default: none)")
    p.add_argument(
        "--no-early-stopping",
        dest="early_stopping",
        action="store_false",
        help="let beam search run to the token budget",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="image reading/decoding processes (default: 4 on CUDA, 0 on CPUs)",
    )
    p.add_argument("--exclude", type=Path, help="file of relpaths to leave out (as data.exclude)")
    p.add_argument("--split-file", type=Path, help="an explicit split file (published format)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of a seeded split (default 0)")
    p.add_argument(
        "--custom-split",
        action="store_true",
        help="use --split-file for a dataset with a published split without checking its pin",
    )
    g = p.add_argument_group(
        "only what a grid reads",
        "with --protocol, caption only the images that grid's runs read of --dataset: "
        "the few-shot train and val draws of each seed and the test split when it is the "
        "grid's training dataset (--source), its test split when it is a transfer target. "
        "A later grid with more seeds or shots fills only the difference.",
    )
    g.add_argument(
        "--protocol",
        choices=PROTOCOL_NAMES,
        help="the grid",
    )
    g.add_argument(
        "--source",
        help="the grid's training dataset (default: the protocol's, e.g. patternnet for "
        "cross_dataset; --dataset for base2new)",
    )
    g.add_argument(
        "--targets", nargs="*", help="the grid's transfer targets (default: the protocol's)"
    )
    g.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="default: 1 2 3")
    g.add_argument(
        "--shots",
        type=int,
        nargs="+",
        default=[16],
        help="shots per class, one or more (default: 16, the presets')",
    )
    g.add_argument(
        "--fewshot-sampler",
        choices=["hash", "dassl", "lpclip"],
        default="dassl",
        help="the runs' data.fewshot_sampler (default: dassl, the presets')",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="re-hash the images already in the store and re-caption the changed ones",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bimors.captions.captioner import GenerationSettings
    from bimors.captions.run import caption_dataset

    progress = progress_enabled()
    settings = GenerationSettings(  # --max-new-tokens, when given, replaces --max-length
        args.num_beams,
        args.max_new_tokens,
        args.early_stopping,
        args.prompt,
        max_length=None if args.max_new_tokens is not None else args.max_length,
        preprocess=args.preprocess,
    )
    options = {
        "exclude": args.exclude,
        "split_file": args.split_file,
        "split_seed": args.split_seed,
        "check_split": not args.custom_split,
    }
    only = grid_images(args, options) if args.protocol else None
    store = caption_dataset(
        args.dataset,
        args.root,
        args.store,
        args.captioner,
        args.encoder,
        settings,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        num_workers=args.workers,
        verify=args.verify,
        captioner_revision=args.captioner_revision,
        encoder_revision=args.encoder_revision,
        progress=progress,
        options=options,
        only=only,
    )
    with store:
        n, dim, coverage = len(store), store.dim, store.coverage()
    if not main_process():  # one report per sharded job
        return 0
    print(f"{n} captions ({dim}-d vectors) in {store.path}")
    if coverage:
        asked = f"; the grid reads {len(only)}, all in it" if only is not None else ""
        print(coverage + asked)
    print(f"read them: bimors captions show {store.path}")
    return 0


def grid_images(args: argparse.Namespace, options: dict):
    """The images of ``args.dataset`` that the ``--protocol`` grid reads."""
    from bimors.captions.scope import Cell, plan_images, target_images
    from bimors.core.errors import ConfigError
    from bimors.data import build_dataset
    from bimors.protocols.plans import PROTOCOLS

    proto = PROTOCOLS.get(args.protocol)
    source = args.source or proto.default_source or args.dataset
    targets = list(proto.default_targets) if args.targets is None else list(args.targets)
    dataset = build_dataset(args.dataset, args.root, **options)
    if args.dataset == source:
        cells = [Cell(seed, k, args.fewshot_sampler) for seed in args.seeds for k in args.shots]
        return plan_images(args.protocol, dataset, [], cells)[args.dataset]
    if args.protocol == "base2new" or args.dataset not in targets:
        raise ConfigError(
            f"--dataset {args.dataset} is neither the {args.protocol} grid's training dataset "
            f"(--source {source}) nor one of its targets ({', '.join(targets) or 'none'}); "
            "pass --source or --targets to name the grid"
        )
    return target_images(dataset)
