"""The offline few-shot demo: CoOp's all-class protocol on the demo's synthetic scenes.

One ``bimors run --protocol fewshot`` grid: two methods, shots 1 2 4, two
tiny random CLIPs as a backbone axis (``--sweep backbone.model=A,B``; each
backbone has its own feature cache and its own tables and curves), then the
report. The accuracies mean nothing; the demo shows the protocol, the shots
axis, the backbone axis, resume and the report end to end.
"""

from __future__ import annotations

import logging
import shlex
import time
from pathlib import Path
from typing import Any

from bimors.data.synthetic import generate_scenes
from bimors.demo.tiny import write_hf_clip
from bimors.grid.runner import Roots, run_grid
from bimors.grid.sweep import parse_sweeps
from bimors.report.build import build_report

logger = logging.getLogger(__name__)

METHODS = ("coop", "clip_adapter")
SHOTS = (1, 2, 4)
SEEDS = (1, 2)

#: The real benchmark this demo stands for (README: the few-shot benchmark).
REAL_RUN = (
    "bimors run --protocol fewshot --data-root /data --dataset eurosat patternnet resisc45 "
    "--method zeroshot coop tip_adapter_f lp_pp promptsrc bimors --seeds 1 2 3 "
    "--shots 1 2 4 8 16 --caption --sweep backbone.preset=openai-vit-b-16,remoteclip-vit-b-32"
)


def prepare(out: Path, per_class: int = 16) -> tuple[list[Path], Path]:
    """Two tiny random CLIPs (different seeds) and the synthetic scenes under ``out``."""
    backbones = []
    for seed in (0, 1):
        folder = out / "models" / f"clip-hf-seed{seed}"
        if not (folder / "config.json").is_file():
            write_hf_clip(folder, seed=seed)
        backbones.append(folder)
    data_root = out / "data" / "synthetic"
    if not data_root.is_dir():
        generate_scenes(data_root, per_class=per_class, size=64, seed=0)
    return backbones, data_root


def _sets(out: Path) -> list[str]:
    return [
        "backbone.adapter=hf",
        "data.num_workers=0",
        "train.device=cpu",
        "train.epochs=2",
        f"features.dir={out / 'features'}",
    ]


def _sweeps(backbones: list[Path]) -> list[str]:
    return [
        "data.shots=" + ",".join(map(str, SHOTS)),
        "backbone.model=" + ",".join(str(b) for b in backbones),
    ]


def fewshot_commands(out: str | Path) -> list[str]:
    """The commands that do what the demo does: prepare its inputs, the grid, the report."""
    out = Path(out).absolute()
    backbones = [out / "models" / f"clip-hf-seed{s}" for s in (0, 1)]
    runs = out / "runs"
    cmd = ["bimors", "run", "--protocol", "fewshot", "--method", *METHODS]
    cmd += ["--dataset", "synthetic", "--root", f"synthetic={out / 'data' / 'synthetic'}"]
    cmd += ["--seeds", *map(str, SEEDS), "--out", str(runs)]
    cmd += ["--shots", *map(str, SHOTS), "--sweep", _sweeps(backbones)[1]]
    for s in _sets(out):
        cmd += ["--set", s]
    first = ["bimors", "demo", "--fewshot", "--prepare", "--out", str(out)]  # writes the inputs
    return [shlex.join(first), shlex.join(cmd), shlex.join(["bimors", "report", str(runs)])]


def run_fewshot_demo(
    out: str | Path,
    progress: bool = False,
    methods: tuple[str, ...] = METHODS,
    seeds: tuple[int, ...] = SEEDS,
) -> dict[str, Any]:
    """Run the grid into ``out/runs`` (finished runs are skipped) and write the report."""
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    backbones, data_root = prepare(out)
    runs = out / "runs"
    records = run_grid(
        "fewshot",
        list(methods),
        ["synthetic"],
        list(seeds),
        Roots({"synthetic": str(data_root)}),
        runs,
        overrides=_sets(out),
        progress=progress,
        sweep=parse_sweeps(_sweeps(backbones)),
    )
    report = build_report(runs)
    return {
        "runs": runs,
        "records": records,
        "report": runs / "report.md",
        "markdown": report["markdown"],
        "fewshot": report["fewshot"],
        "files": report["files"],
        "seconds": time.perf_counter() - started,
        "real_run": REAL_RUN,
    }
