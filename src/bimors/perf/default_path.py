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

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bimors.engine.precision import autocast
from bimors.engine.shared_views import SharedViews, ViewStore
from bimors.perf.flops import sync
from bimors.perf.workload import Workload

#: The grid the issue sizes: a seed of 7 frozen-feature methods sharing views.
GRID_METHODS = 7
#: Speedup over the reference recipe the amortised shared step aims for (float32).
TARGET = 10.0


def shared_fields(wl: Workload) -> tuple[str, ...]:
    """What a store must hold for the benchmarked method to read it."""
    return tuple(dict.fromkeys(("pooled", "norm", *type(wl.method).image_fields)))


class DefaultStep:
    """The default training step (image encoder, then the method), timed part by part.

    Each call is one optimiser step like :meth:`Workload.train_step` with the
    image encoder, and records how long its parts took in that very call, so
    the parts of the fastest call add up to its total.
    """

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.calls: list[dict[str, float]] = []

    def __call__(self) -> float:
        wl, m, batch = self.wl, self.wl.method, self.wl.opts.batch
        m.reference_recipe = False
        sync(wl.device)
        t0 = time.perf_counter()
        wl.optimizer.zero_grad(set_to_none=True)
        with autocast(wl.device, wl.precision):
            feats = m.image_features(wl.pixels[:batch])
            sync(wl.device)
            t1 = time.perf_counter()
            logits = m(feats, wl.captions[:batch])
            loss = m.loss(logits.float(), wl.labels[:batch])
        loss.backward()
        sync(wl.device)
        t2 = time.perf_counter()
        wl.optimizer.step()
        sync(wl.device)
        t3 = time.perf_counter()
        self.calls.append(
            {
                "total": t3 - t0,
                "image_encoder_forward": t1 - t0,
                "method_forward_backward": t2 - t1,
                "rest": t3 - t2,
            }
        )
        return float(loss.detach())

    def fastest(self, rounds: int) -> dict[str, float]:
        """The parts of the fastest of the ``rounds`` timed calls after the warm-up call."""
        timed = self.calls[1 : 1 + rounds] or self.calls
        return min(timed, key=lambda c: c["total"])


def store_write_op(wl: Workload, workdir: Path) -> Callable[[], None]:
    """Writing one batch's shared fields to a store (what the first method adds per step)."""
    with torch.no_grad(), autocast(wl.device, wl.precision):
        feats = wl.method.image_features(wl.pixels[: wl.opts.batch])
    store = ViewStore(workdir / "views-bench", {"bench": True})
    fields = shared_fields(wl)

    def write() -> None:
        store.save(0, 0, {f: getattr(feats, f) for f in fields})

    return write


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
    best: dict[str, float],
    flops_default: int,
    rate: float,
    cache: bool,
    wl: Workload,
    parts: dict[str, float],
) -> dict[str, Any]:
    """The ``default_path`` and ``shared_views`` sections of ``bimors bench --json``.

    ``parts``: :meth:`DefaultStep.fastest`, the breakdown of the fastest default step.
    """
    default = best["fast_train_step_image_encoder" if cache else "fast_train_step"]
    ref = best["reference_train_step"]
    out: dict[str, Any] = {
        "default_path": {
            "train_step_s": default,
            "train_speedup": ref / default,
            "gflop": flops_default / 1e9,
            "floor_s": flops_default / rate,
            "floor_ratio": default / (flops_default / rate),
            "breakdown_s": {k: v for k, v in parts.items() if k != "total"},
            "breakdown_total_s": parts["total"],
            "breakdown_share": {k: v / parts["total"] for k, v in parts.items() if k != "total"},
            "breakdown_note": (
                "parts of the fastest default step timed inside that step: "
                "image_encoder_forward: the frozen image encoder on the batch; "
                "method_forward_backward: the method on those features (text encoder, "
                "meta-network, loss) forward and backward; rest: zeroing gradients and the "
                "optimiser step"
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
