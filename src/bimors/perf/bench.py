"""``bimors bench``: the fast path against the reference recipe, measured in one run.

Timings: after one warm-up call each, the operations run in interleaved
rounds (matrix-product rate, reference step, fast step, ...), so load from
other processes falls on all of them alike; each figure is the minimum over
the rounds (the least-disturbed run, as ``timeit`` recommends) and medians are
reported next to it. Speedups and the floor ratio use the minima.

``max_abs_logit_diff`` compares the fast path run in float32 with the
reference recipe in float32 (same weights, images and captions, before any
training step); ``max_abs_logit_diff_fast_precision`` compares the fast path
at its own precision (e.g. bf16) with the same float32 reference.

The default path (image encoder every step, the trainer's default) gets its
own floor ratio, a breakdown of its time, and the amortised step of a grid
seed whose methods share training views (:mod:`bimors.perf.default_path`).

Peak memory: each path runs in a fresh subprocess (see :mod:`bimors.perf.memory`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bimors.perf import checksum_cost, default_path
from bimors.perf.fit_bench import run_fit_bench
from bimors.perf.flops import count_flops, matmul_rate, sync
from bimors.perf.memory import measure_in_subprocess
from bimors.perf.workload import BenchOptions, Workload

logger = logging.getLogger(__name__)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def run_bench(opts: BenchOptions) -> dict[str, Any]:
    """Measure both paths as ``opts`` says; returns the JSON-ready result."""
    device = torch.device(opts.device)
    load_before = _load_average()
    if load_before is not None and load_before > (os.cpu_count() or 1):
        logger.warning(
            "load average %.1f exceeds the %d CPUs: other processes compete, timings will be noisy",
            load_before,
            os.cpu_count() or 1,
        )
    with tempfile.TemporaryDirectory(prefix="bimors-bench-") as tmp:
        logger.info(
            "building %s (%s, random weights) and %s", opts.shape, opts.adapter, opts.method
        )
        wl = Workload(opts, Path(tmp))
        if not wl.trains:  # a closed-form fit or nothing to train: no SGD step to time
            return run_fit_bench(wl, _timed)
        fill_s = wl.prepare()
        ref32 = wl.logits(True, "fp32")
        fast32 = wl.logits(False, "fp32")
        fast_p = wl.logits(False, wl.precision) if wl.precision != "fp32" else fast32
        # the default step (image encoder every step) is timed part by part
        default_step = default_path.DefaultStep(wl)
        default_op = "fast_train_step_image_encoder" if wl.cached else "fast_train_step"
        ops: dict[str, Callable[[], object]] = {
            "reference_train_step": lambda: wl.train_step(True),
            "fast_train_step": lambda: wl.train_step(False),
            "reference_eval_batch": lambda: wl.eval_step(True),
            "fast_eval_batch": lambda: wl.eval_step(False),
        }
        ops[default_op] = default_step
        ops["shared_store_write"] = default_path.store_write_op(wl, Path(tmp))
        ops["checksum_batch"] = checksum_cost.checksum_op(wl)
        logger.info("warm-up")
        for fn in ops.values():
            fn()
        times: dict[str, list[float]] = {k: [] for k in ops}
        rates: list[float] = []
        for r in range(opts.repeats):
            logger.info("round %d/%d", r + 1, opts.repeats)
            rates.append(matmul_rate(wl.precision, device))
            for name, fn in ops.items():
                times[name].append(_timed(fn, device))
        parts = default_step.fastest(opts.repeats)  # before counting FLOPs calls it again
        flops = count_flops(ops["fast_train_step"])
        flops_default = count_flops(ops[default_op]) if wl.cached else flops
        exact = default_path.exact_round_trip(wl, Path(tmp))
        prompts = wl.method.prompts
        packed = prompts.packed is not None and wl.method.cfg.pack_prompts
        tokens_fast = prompts.packed.tokens if packed else prompts.num_classes * prompts.length
    memory: dict[str, Any] = {}
    if opts.memory:
        for path in ("reference", "fast"):
            logger.info("peak memory of the %s path (fresh subprocess)", path)
            memory[path] = measure_in_subprocess(opts, path)
    out = _report(opts, wl, times, rates, flops, fill_s, ref32, fast32, fast_p, tokens_fast, memory)
    out.update(default_path.report(_best(times), flops_default, max(rates), wl.cached, wl, parts))
    out.update(checksum_cost.report(_best(times)))
    if "shared_views" in out:
        out["shared_views"]["exact"] = exact
    out["config"]["load_average_1min"] = {"start": load_before, "end": _load_average()}
    return out


def _best(times: dict[str, list[float]]) -> dict[str, float]:
    return {k: min(v) for k, v in times.items()}


def _load_average() -> float | None:
    """The 1-minute load average (processes wanting a CPU), where the OS reports it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _report(
    opts: BenchOptions,
    wl: Workload,
    times: dict[str, list[float]],
    rates: list[float],
    flops: int,
    fill_s: float,
    ref32: torch.Tensor,
    fast32: torch.Tensor,
    fast_p: torch.Tensor,
    tokens_fast: int,
    memory: dict[str, Any],
) -> dict[str, Any]:
    best = _best(times)
    rate = max(rates)
    eval_n = wl.eval_batch
    out: dict[str, Any] = {
        "train_speedup": best["reference_train_step"] / best["fast_train_step"],
        "eval_speedup": best["reference_eval_batch"] / best["fast_eval_batch"],
        "max_abs_logit_diff": float((fast32 - ref32).abs().max()),
        "max_abs_logit_diff_fast_precision": float((fast_p - ref32).abs().max()),
        "logit_diff_note": (
            "max_abs_logit_diff: fast path in float32 vs reference recipe in float32, same "
            "weights and inputs; _fast_precision: fast path at its precision vs that reference"
        ),
        "floor_ratio": best["fast_train_step"] / (flops / rate),
        "fast_train_step_gflop": flops / 1e9,
        "matmul_tflops": rate / 1e12,
        "matmul_dtype": wl.precision,
        "eval_images_per_s": {
            "reference": eval_n / best["reference_eval_batch"],
            "fast": eval_n / best["fast_eval_batch"],
        },
        "seconds": {
            k: {"min": min(v), "median": statistics.median(v), "all": v} for k, v in times.items()
        },
        "statistic": f"min over {opts.repeats} interleaved rounds after one warm-up",
        "cache_fill_seconds": fill_s,
    }
    if "fast_train_step_image_encoder" in best:
        out["train_speedup_with_image_encoder"] = (
            best["reference_train_step"] / best["fast_train_step_image_encoder"]
        )
    if memory:
        out["peak_rss_mb_reference"] = memory["reference"]["peak_rss_mb"]
        out["peak_rss_mb_fast"] = memory["fast"]["peak_rss_mb"]
        out["peak_rss_mb_after_setup"] = {
            p: m["peak_rss_mb_after_setup"] for p, m in memory.items()
        }
        if "peak_cuda_mb" in memory["fast"]:
            out["peak_cuda_mb"] = {p: m["peak_cuda_mb"] for p, m in memory.items()}
        out["memory_method"] = (
            "each path in a fresh subprocess: same workload, 2 training steps + 2 eval batches; "
            "peak resident set size (VmHWM) of that process, setup included; the peak after "
            "setup alone (model built, cache filled) is in peak_rss_mb_after_setup"
        )
    prompts = wl.method.prompts
    out["fast_path"] = {
        "precision": wl.precision,
        "image_features": (
            "read from the feature cache (image encoder not run in the step)"
            if wl.cached
            else "image encoder every step"
            + ("" if not opts.cache else " (the method prompts the image encoder: no cache)")
        ),
        "prompt_encoding": (
            "packed: shared prefix once per image, nothing after EOS, batched, chunked"
            if prompts.packed is not None and wl.method.cfg.pack_prompts
            else "padded to the longest EOS, batched, chunked"
        ),
        "text_tokens_per_image": tokens_fast,
        "grad_checkpointing": opts.grad_checkpointing,
    }
    out["reference_path"] = {
        "precision": "fp32",
        "image_features": "image encoder every step",
        "prompt_encoding": "Python loop over images, all 77 positions",
        "text_tokens_per_image": prompts.num_classes * prompts.full_length,
    }
    out["config"] = {
        **dataclasses.asdict(opts),
        "eval_batch": eval_n,
        "classnames": wl.classnames,
        "classnames_source": "first classes of PatternNet's label order (APPLeNet split file)",
        "weights": "random (no download)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    return out
