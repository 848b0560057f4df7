"""Peak memory of one path, measured in a fresh process.

Two paths measured in one process would share one peak (the allocator keeps
freed memory, and ``ru_maxrss`` only grows), so each path runs in its own
child: it builds the same workload, runs its training steps and evaluation
batches, and reports the process's peak resident set size (and, on CUDA, the
peak allocated device memory). The peak after setup (model built, cache
filled) is reported too, so the part a path adds is visible.

Run as ``python -m bimors.perf.memory OPTIONS_JSON PATH OUT_JSON``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

import bimors
from bimors.core import atomic
from bimors.perf.workload import BenchOptions, Workload

PATHS = ("reference", "fast")


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB.

    On Linux this is ``VmHWM`` of ``/proc/self/status``, the high-water mark of
    this program's own memory: ``ru_maxrss`` would not do, because a child
    inherits the parent's resident size at fork as its starting peak. Elsewhere
    ``ru_maxrss`` is the best available (KiB, or bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def measure(opts: BenchOptions, path: str, steps: int = 2) -> dict[str, Any]:
    """Build the workload, run ``steps`` training steps and eval batches of ``path``; peaks."""
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, not {path!r}")
    reference = path == "reference"
    with tempfile.TemporaryDirectory(prefix="bimors-mem-") as tmp:
        wl = Workload(opts, Path(tmp))
        if not reference:
            wl.prepare()
        setup = peak_rss_mb()
        cuda = wl.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(wl.device)
        for _ in range(steps):
            if wl.fits:  # a closed-form method's "step" is its whole fit
                wl.fit(reference)
            elif wl.trains:
                wl.train_step(reference)
            wl.eval_step(reference)
        out = {"path": path, "peak_rss_mb": peak_rss_mb(), "peak_rss_mb_after_setup": setup}
        if cuda:
            out["peak_cuda_mb"] = torch.cuda.max_memory_allocated(wl.device) / 2**20
        return out


def measure_in_subprocess(opts: BenchOptions, path: str, timeout: float = 3600) -> dict[str, Any]:
    """:func:`measure` in a fresh Python process running this same copy of bimors."""
    src = str(Path(bimors.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory(prefix="bimors-mem-") as tmp:
        out_file = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            "-m",
            "bimors.perf.memory",
            json.dumps(dataclasses.asdict(opts)),
            path,
            str(out_file),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        if proc.returncode != 0 or not out_file.is_file():
            raise RuntimeError(
                f"measuring the memory of the {path} path failed (exit {proc.returncode}):\n"
                + proc.stderr[-4000:]
            )
        return json.loads(out_file.read_text(encoding="utf-8"))


def main(argv: list[str]) -> int:
    options_json, path, out_file = argv
    result = measure(BenchOptions(**json.loads(options_json)), path)
    atomic.write_json(out_file, result)
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through measure_in_subprocess
    sys.exit(main(sys.argv[1:]))
