"""The default training step (image encoder every step), its floor, and grid-seed sharing.

With default settings the trainer runs the frozen image encoder in every
step, so a single run's step cannot fall below the encoder's matrix work.
A grid shares that work across methods (:mod:`bimors.engine.shared_views`):
the first method of a seed computes each batch's features, the others read
them. This module times the parts of the default step and the pieces of the
shared step, and checks on a real :class:`SharedViews` round trip that the
stored features equal the encoder's on the same batch (``torch.equal``).

Amortised step of a grid seed of N methods sharing views, per method step:
``(default step + store write + (N - 1) * cached step) / N``: the first method
runs the encoder and writes the batch, the others run the cached step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bimors.engine.precision import autocast
from bimors.engine.shared_views import SharedViews, ViewStore
from bimors.perf.workload import Workload

#: The grid the issue sizes: a seed of 7 frozen-feature methods sharing views.
GRID_METHODS = 7
#: Speedup over the reference recipe the amortised shared step aims for (float32).
TARGET = 10.0


def shared_fields(wl: Workload) -> tuple[str, ...]:
    """What a store must hold for the benchmarked method to read it."""
    return tuple(dict.fromkeys(("pooled", "norm", *type(wl.method).image_fields)))


def extra_ops(wl: Workload, workdir: Path) -> dict[str, Callable[[], object]]:
    """Timed pieces of the default step and of the shared path, on the workload's batch."""
    m, batch, precision = wl.method, wl.opts.batch, wl.precision
    pixels = wl.pixels[:batch]
    with torch.no_grad(), autocast(wl.device, precision):
        feats = m.image_features(pixels)
    store = ViewStore(workdir / "views-bench", {"bench": True})
    fields = shared_fields(wl)

    def encoder() -> object:
        with torch.no_grad(), autocast(wl.device, precision):
            return m.image_features(pixels)

    def method_forward_backward() -> object:
        m.reference_recipe = False
        wl.optimizer.zero_grad(set_to_none=True)
        with autocast(wl.device, precision):
            logits = m(feats, wl.captions[:batch])
            loss = m.loss(logits.float(), wl.labels[:batch])
        loss.backward()
        return loss

    def write() -> None:
        store.save(0, 0, {f: getattr(feats, f) for f in fields})

    return {
        "image_encoder_forward": encoder,
        "method_forward_backward": method_forward_backward,
        "shared_store_write": write,
    }


def exact_round_trip(wl: Workload, workdir: Path) -> bool:
    """Features served by a SharedViews store equal the encoder's on the same batch."""
    m, batch = wl.method, wl.opts.batch
    source = SharedViews(root=workdir / "views-check", fields=shared_fields(wl))
    device, got = wl.device, []
    for _ in range(2):  # first pass computes and stores, second reads
        loader = source.train_loader(m, wl.data, batch, 0, 0, precision=wl.precision)
        b = next(iter(loader))
        with autocast(device, wl.precision):
            got.append((source.image_features(m, b, device), b))
    (first, b1), (second, b2) = got
    if "pixels" not in b1 or "pixels" in b2 or source.served != 1:
        return False
    with torch.no_grad(), autocast(device, wl.precision):
        fresh = m.image_features(b1["pixels"].to(device))
    return all(
        torch.equal(getattr(second, f).to(device), getattr(fresh, f))
        and torch.equal(getattr(first, f), getattr(fresh, f))
        for f in type(m).image_fields
    )


def report(
    best: dict[str, float], flops_default: int, rate: float, cache: bool, wl: Workload
) -> dict[str, Any]:
    """The ``default_path`` and ``shared_views`` sections of ``bimors bench --json``."""
    default = best["fast_train_step_image_encoder" if cache else "fast_train_step"]
    ref = best["reference_train_step"]
    enc, fb = best["image_encoder_forward"], best["method_forward_backward"]
    out: dict[str, Any] = {
        "default_path": {
            "train_step_s": default,
            "train_speedup": ref / default,
            "gflop": flops_default / 1e9,
            "floor_s": flops_default / rate,
            "floor_ratio": default / (flops_default / rate),
            "breakdown_s": {
                "image_encoder_forward": enc,
                "method_forward_backward": fb,
                "rest": max(default - enc - fb, 0.0),
            },
            "breakdown_note": (
                "image_encoder_forward: the frozen image encoder on the batch; "
                "method_forward_backward: the method on given features (text encoder, "
                "meta-network, loss) forward and backward; rest: default step minus both "
                "(optimiser step, moves, overheads); each part is its own minimum"
            ),
        }
    }
    if cache:
        n = GRID_METHODS
        amortised = (default + best["shared_store_write"] + (n - 1) * best["fast_train_step"]) / n
        speedup = ref / amortised
        out["shared_views"] = {
            "methods": n,
            "fields": list(shared_fields(wl)),
            "amortised_train_step_s": amortised,
            "train_speedup": speedup,
            "target_speedup": TARGET,
            "meets_target": speedup >= TARGET,
            "store_write_s": best["shared_store_write"],
            "formula": "(default step + store write + (N - 1) * cached step) / N",
        }
    return out
