"""``bimors bench``: time and memory of the fast path against the reference recipe."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure the fast path against the reference recipe (random-weight CLIP, no download)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (default: a summary)")
    p.add_argument(
        "--backbone",
        default="ViT-B/16",
        help="CLIP size: tiny, ViT-B/32, ViT-B/16, ViT-L/14 (default: ViT-B/16)",
    )
    p.add_argument("--adapter", default="hf", choices=["hf", "open_clip"])
    p.add_argument("--method", default="bimors", help="method to train (default: bimors)")
    p.add_argument(
        "--set",
        dest="method_sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method.* option, e.g. --set prompt_depth_text=2 (IVLP on the tiny CLIP); "
        "repeatable",
    )
    p.add_argument(
        "--shots",
        type=int,
        default=16,
        help="images per class of a closed-form fit (linear probe, Tip-Adapter; default: 16)",
    )
    p.add_argument("--batch", type=int, default=4, help="training batch size (default: 4)")
    p.add_argument("--eval-batch", type=int, default=None, help="default: --batch")
    p.add_argument(
        "--classes", type=int, default=19, help="first N PatternNet classes (default: 19)"
    )
    p.add_argument("--repeats", type=int, default=3, help="timed rounds (default: 3)")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "bf16", "fp16", "auto"],
        help="fast path precision, like train.precision (default fp32, the trainer's default); "
        "auto = bf16 where the hardware has bf16 units",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="fast path runs the image encoder every step instead of reading the feature cache",
    )
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bimors.core.config import apply_overrides
    from bimors.perf.bench import run_bench
    from bimors.perf.workload import BenchOptions

    sets = [s.removeprefix("method.") for s in args.method_sets]
    method_options = apply_overrides({}, sets)
    opts = BenchOptions(
        shape=args.backbone,
        adapter=args.adapter,
        method=args.method,
        batch=args.batch,
        eval_batch=args.eval_batch,
        classes=args.classes,
        repeats=args.repeats,
        precision=args.precision,
        cache=not args.no_cache,
        grad_checkpointing=args.grad_checkpointing,
        memory=not args.no_memory,
        device=args.device,
        shots=args.shots,
        method_options=method_options,
    )
    result = run_bench(opts)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if result.get("kind") in ("fit", "none"):
        _print_fit(result)
        return 0
    print(f"train speedup      {result['train_speedup']:.1f}x")
    if "train_speedup_with_image_encoder" in result:
        print(f"  (image encoder)  {result['train_speedup_with_image_encoder']:.1f}x")
    print(f"eval speedup       {result['eval_speedup']:.1f}x")
    print(f"max |logit diff|   {result['max_abs_logit_diff']:.2e} (float32 vs float32)")
    print(f"floor ratio        {result['floor_ratio']:.2f} ({result['matmul_dtype']})")
    d = result["default_path"]
    parts = ", ".join(f"{k} {v:.3f} s" for k, v in d["breakdown_s"].items())
    print(
        f"default step       {d['train_step_s']:.3f} s, {d['train_speedup']:.1f}x, "
        f"floor ratio {d['floor_ratio']:.2f} ({parts})"
    )
    if "shared_views" in result:
        v = result["shared_views"]
        verdict = "meets" if v["meets_target"] else "misses"
        print(
            f"shared views       {v['methods']} methods: {v['amortised_train_step_s']:.3f} s "
            f"per step, {v['train_speedup']:.1f}x ({verdict} the {v['target_speedup']:.0f}x "
            f"target), exact: {v['exact']}"
        )
    c = result["checksum"]
    print(
        f"checksums          {100 * c['ratio_to_cached_train_step']:.2f}% of the cached step "
        f"({'meets' if c['meets_target'] else 'misses'} the "
        f"{100 * c['target_ratio']:.0f}% target, {c['algorithm']})"
    )
    if "peak_rss_mb_fast" in result:
        print(
            f"peak RSS           fast {result['peak_rss_mb_fast']:.0f} MiB, "
            f"reference {result['peak_rss_mb_reference']:.0f} MiB"
        )
    return 0


def _pick(choices: dict, keys: list[str]) -> dict:
    return {k: choices.get(k) for k in keys}


def _print_fit(result: dict) -> None:
    """The summary of a method with no SGD step (closed-form fit, or nothing to train)."""
    if "fit" in result:
        f = result["fit"]
        print(
            f"fit speedup        {f['speedup']:.1f}x ({f['fast_s']:.3f} s vs "
            f"{f['reference_s']:.3f} s for {f['images']} images, "
            f"{f['fast_ms_per_image']:.2f} ms per image from the cache)"
        )
        if not f["same_choices"]:
            keys = f["differing_choices"]
            print(f"  choices differ   reference {_pick(f['chosen']['reference'], keys)}")
            print(f"                   fast      {_pick(f['chosen']['fast'], keys)}")
    else:
        print("fit                nothing to train (evaluation only)")
    print(f"eval speedup       {result['eval_speedup']:.1f}x")
    print(f"max |logit diff|   {result['max_abs_logit_diff']:.2e} (float32 vs float32)")
    if "peak_rss_mb_fast" in result:
        print(
            f"peak RSS           fast {result['peak_rss_mb_fast']:.0f} MiB, "
            f"reference {result['peak_rss_mb_reference']:.0f} MiB"
        )
