"""``bimors bench`` for methods with no SGD step: closed-form fits and zero-shot CLIP.

A closed-form method (linear probe, Tip-Adapter, Tip-Adapter-F, ...) is
trained by one fit on frozen features, so its "training step" is the whole
fit on ``classes x shots`` images: the reference fit encodes every image in
float32 with the image encoder, the fast fit reads the features from the
feature cache exactly as the trainer's closed-form path does (filled once
by :meth:`~bimors.perf.workload.Workload.prepare`, as the first run of a grid
fills it). Zero-shot CLIP trains nothing; it gets the evaluation figures only.

Timing follows :mod:`bimors.perf.bench`: one warm-up call each, interleaved
rounds, minima. ``max_abs_logit_diff`` compares the logits after a fast fit
(cache, float32) with those after a reference fit (encoder, float32), both
evaluated on the same batch, so it measures what the fast path changes in
the fitted model, not only in the features. A fit that searches a grid
(Tip-Adapter's alpha and beta) can pick a neighbouring point where two
points tie on validation accuracy within float noise (the reference recipe
encodes the prompts at all 77 positions, the fast path packed, ~1e-6 apart):
``fit.chosen`` lists both fits' choices, ``fit.same_choices`` says whether
they agree (discrete choices exactly, continuous ones such as a fitted
learning rate to ``CHOICE_RTOL``) and ``fit.differing_choices`` names the ones
that do not, so a logit difference is never left unexplained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import platform
import statistics
from collections.abc import Callable
from typing import Any

import torch

from bimors.perf.flops import count_flops, matmul_rate
from bimors.perf.memory import measure_in_subprocess
from bimors.perf.workload import Workload

#: Relative tolerance for continuous fit outputs (LP++'s data-driven learning rates are
#: computed from the features, so float noise in the features moves them by ~1e-6).
CHOICE_RTOL = 1e-4


def differing_choices(a: dict[str, Any], b: dict[str, Any], rtol: float = CHOICE_RTOL) -> list:
    """Keys whose values differ: ints and strings exactly, floats beyond ``rtol``."""
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, float) and isinstance(y, float | int):
            if abs(x - y) > rtol * max(abs(x), abs(y)):
                out.append(key)
        elif x != y:
            out.append(key)
    return out


@contextlib.contextmanager
def _methods_quiet():
    """Timed fits repeat the first ones: their INFO lines (each choice) say nothing new."""
    log = logging.getLogger("bimors.methods")
    level = log.level
    log.setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    try:
        yield
    finally:
        log.setLevel(level)


def run_fit_bench(
    wl: Workload, timed: Callable[[Callable[[], object], torch.device], float]
) -> dict[str, Any]:
    """Measure the fit (if any) and evaluation of both paths; returns the JSON-ready result.

    ``wl``: a workload whose method has no SGD step (``not wl.trains``).
    """
    opts, device = wl.opts, wl.device
    fill_s = wl.prepare()
    logits, chosen = {}, {}
    for name, reference, precision in (
        ("reference", True, "fp32"),
        ("fast32", False, "fp32"),
        ("fast", False, wl.precision),
    ):
        if wl.fits:
            info = wl.fit(reference, precision)
            chosen[name] = {k: v for k, v in info.items() if isinstance(v, int | float | str)}
        logits[name] = wl.logits(reference, precision, wl.eval_batch)
    ops: dict[str, Callable[[], object]] = {
        "reference_eval_batch": lambda: wl.eval_step(True),
        "fast_eval_batch": lambda: wl.eval_step(False),
    }
    if wl.fits:
        ops["reference_fit"] = lambda: wl.fit(True)
        ops["fast_fit"] = lambda: wl.fit(False)
    times: dict[str, list[float]] = {k: [] for k in ops}
    rates: list[float] = []
    with _methods_quiet():
        for fn in ops.values():
            fn()
        for _ in range(opts.repeats):
            rates.append(matmul_rate(wl.precision, device))
            for name, fn in ops.items():
                times[name].append(timed(fn, device))
        flops = count_flops(ops["fast_fit"]) if wl.fits else 0
    best = {k: min(v) for k, v in times.items()}
    out: dict[str, Any] = {
        "kind": "fit" if wl.fits else "none",
        "eval_speedup": best["reference_eval_batch"] / best["fast_eval_batch"],
        "max_abs_logit_diff": float((logits["fast32"] - logits["reference"]).abs().max()),
        "max_abs_logit_diff_fast_precision": float(
            (logits["fast"] - logits["reference"]).abs().max()
        ),
        "logit_diff_note": (
            "logits on one evaluation batch after a fast fit (features from the cache) vs after "
            "a reference fit (image encoder, float32); _fast_precision: fast fit and evaluation "
            "at the fast path's precision"
            if wl.fits
            else "fast path vs reference recipe on one evaluation batch (nothing is fitted)"
        ),
        "eval_images_per_s": {
            "reference": wl.eval_batch / best["reference_eval_batch"],
            "fast": wl.eval_batch / best["fast_eval_batch"],
        },
        "seconds": {
            k: {"min": min(v), "median": statistics.median(v), "all": v} for k, v in times.items()
        },
        "statistic": f"min over {opts.repeats} interleaved rounds after one warm-up",
        "cache_fill_seconds": fill_s,
        "matmul_tflops": max(rates) / 1e12,
        "matmul_dtype": wl.precision,
    }
    if wl.fits:
        n = len(wl.data)
        out["fit"] = {
            "images": n,
            "shots": opts.shots,
            "reference_s": best["reference_fit"],
            "fast_s": best["fast_fit"],
            "speedup": best["reference_fit"] / best["fast_fit"],
            "fast_ms_per_image": 1e3 * best["fast_fit"] / n,
            "gflop": flops / 1e9,
            "floor_ratio": best["fast_fit"] / (flops / max(rates)) if flops else None,
            "chosen": {"reference": chosen["reference"], "fast": chosen["fast32"]},
            "same_choices": not differing_choices(chosen["reference"], chosen["fast32"]),
            "differing_choices": differing_choices(chosen["reference"], chosen["fast32"]),
            "note": (
                "one whole fit on classes x shots images (the same images as validation split); "
                "reference: image encoder on every image in float32; fast: features read from "
                "the feature cache as the trainer's closed-form path reads them"
            ),
        }
    if opts.memory and wl.fits:
        out["peak_rss_mb_reference"] = measure_in_subprocess(opts, "reference")["peak_rss_mb"]
        out["peak_rss_mb_fast"] = measure_in_subprocess(opts, "fast")["peak_rss_mb"]
    out["fast_path"] = {
        "precision": wl.precision,
        "image_features": (
            "read from the feature cache (image encoder not run in the fit)"
            if wl.cached
            else "image encoder on every image"
        ),
    }
    out["reference_path"] = {"precision": "fp32", "image_features": "image encoder every batch"}
    out["config"] = {
        **dataclasses.asdict(opts),
        "eval_batch": wl.eval_batch,
        "classnames": wl.classnames,
        "weights": "random (no download)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }
    return out
