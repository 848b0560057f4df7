"""The offline ablation demo: the issue's sweeps on the demo's synthetic scenes and tiny models.

Two grids into one runs folder, then one report, exactly as the two
``bimors run`` commands :func:`ablation_commands` prints would do:

1. few-shot curves: CoOp and BiMoRS, ``data.shots`` x ``method.n_ctx``;
2. BiMoRS's own ablation: ``method.keys`` x ``method.caption_proj`` x
   ``captions.encoder`` (the real MiniLM and a tiny random BERT: one caption
   store each, filled by ``--caption``).

The accuracies mean nothing (tiny random CLIP and captioner); the demo shows
that sweeps, stores per encoder, resume and the report work end to end.
"""

from __future__ import annotations

import logging
import shlex
import time
from pathlib import Path
from typing import Any

from bimors.data.synthetic import generate_scenes
from bimors.demo.tiny import minilm_path, write_all, write_bert
from bimors.grid.runner import Roots, run_grid
from bimors.grid.sweep import parse_sweeps
from bimors.report.build import build_report

logger = logging.getLogger(__name__)

SEEDS = (1, 2)


def _grids(models: Path) -> list[dict[str, Any]]:
    """The two grids: methods, sweeps and the extra ``--set`` values of each."""
    encoders = f"{minilm_path()},{models / 'bert-tiny'}"
    return [
        {
            "methods": ["coop", "bimors"],
            "sweeps": ["data.shots=1,2,4", "method.n_ctx=2,4"],
            # random context: n_ctx is free
            "sets": ["method.ctx_init=", f"captions.encoder={minilm_path()}"],
        },
        {
            "methods": ["bimors"],
            "sweeps": [
                "method.keys=both,visual,caption",
                "method.caption_proj=trainable,frozen",
                f"captions.encoder={encoders}",
            ],
            "sets": ["data.shots=4"],
        },
    ]


def _common_sets(out: Path, models: Path) -> list[str]:
    return [
        "backbone.adapter=hf",
        f"backbone.model={models / 'clip-hf'}",
        f"captions.captioner={models / 'blip2'}",
        "data.num_workers=0",
        "train.device=cpu",
        "train.epochs=2",
        f"features.dir={out / 'features'}",  # everything the demo writes stays in OUT
    ]


def prepare(out: Path, per_class: int = 24) -> tuple[Path, Path]:
    """The tiny models (with a second caption encoder) and the synthetic scenes under ``out``."""
    models = out / "models"
    if not (models / "blip2" / "config.json").is_file():
        write_all(models)
    if not (models / "bert-tiny" / "config.json").is_file():
        write_bert(models / "bert-tiny")
    data_root = out / "data" / "synthetic"
    if not data_root.is_dir():
        generate_scenes(data_root, per_class=per_class, size=64, seed=0)
    return models, data_root


def ablation_commands(out: str | Path) -> list[str]:
    """The commands that do what the demo does: prepare its inputs, the grids, the report."""
    out = Path(out).absolute()
    models, data_root = out / "models", out / "data" / "synthetic"
    runs = out / "runs"
    # the models and scenes the runs name, written by the demo itself (printing writes nothing)
    cmds = [shlex.join(["bimors", "demo", "--ablation", "--prepare", "--out", str(out)])]
    for grid in _grids(models):
        cmd = ["bimors", "run", "--protocol", "base2new", "--method", *grid["methods"]]
        cmd += ["--dataset", "synthetic", "--root", f"synthetic={data_root}", "--caption"]
        cmd += ["--seeds", *map(str, SEEDS), "--out", str(runs)]
        for s in [*_common_sets(out, models), *grid["sets"]]:
            cmd += ["--set", s]
        for s in grid["sweeps"]:
            cmd += ["--sweep", s]
        cmds.append(shlex.join(cmd))
    cmds.append(shlex.join(["bimors", "report", str(runs)]))
    return cmds


def run_ablation_demo(out: str | Path, progress: bool = False) -> dict[str, Any]:
    """Run both grids into ``out/runs`` and write the report there."""
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    models, data_root = prepare(out)
    runs = out / "runs"
    roots = Roots({"synthetic": str(data_root)})
    records = []
    for grid in _grids(models):
        logger.info("ablation demo: %s with %s", grid["methods"], grid["sweeps"])
        records += run_grid(
            "base2new",
            grid["methods"],
            ["synthetic"],
            list(SEEDS),
            roots,
            runs,
            overrides=[*_common_sets(out, models), *grid["sets"]],
            progress=progress,
            caption=True,
            sweep=parse_sweeps(grid["sweeps"]),
        )
    report = build_report(runs)
    return {
        "runs": runs,
        "records": records,
        "report": runs / "report.md",
        "markdown": report["markdown"],
        "files": report["files"],
        "seconds": time.perf_counter() - started,
    }
