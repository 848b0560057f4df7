"""The offline demo: synthetic scenes, tiny random models, real MiniLM, four methods.

Everything runs on this machine with no hub access: it shows the whole
pipeline (captions -> base-to-new training -> evaluation -> report), not
meaningful accuracies, because the CLIP and the captioner are tiny and random.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from bimors.captions.captioner import Captioner
from bimors.captions.encoder import CaptionEncoder
from bimors.captions.job import caption_images
from bimors.captions.stores import CaptionStores
from bimors.core import atomic
from bimors.data.synthetic import SyntheticScenes, generate_scenes
from bimors.demo.tiny import minilm_path, write_all
from bimors.protocols.plans import plan_base2new
from bimors.report.aggregate import base2new_rows
from bimors.report.grid import base2new_table
from bimors.report.markdown import table_markdown
from bimors.report.plots import base2new_figure
from bimors.run.config import resolve_config
from bimors.run.experiment import run_plan

logger = logging.getLogger(__name__)

DEMO_METHODS = ("zeroshot", "coop", "cocoop", "bimors")


REAL_RUN = (
    "bimors run --protocol base2new --method bimors --dataset patternnet --root /data/PatternNet "
    "--seeds 1 2 3"
)


def note(real_run: str = REAL_RUN) -> str:
    """The demo's warning that its numbers mean nothing, and the real run it stands for."""
    return (
        "These numbers come from TINY RANDOM-WEIGHT models (a 2-layer CLIP and BLIP-2 built by "
        "`bimors tiny-models`) on synthetic scenes: they show the pipeline works end to end, "
        "not how the methods compare. For a real run on a GPU machine with internet access:\n\n"
        f"    {real_run}\n"
    )


NOTE = note()


def run_demo(
    out: str | Path, seed: int = 1, per_class: int = 40, progress: bool = True
) -> dict[str, Any]:
    """Run the demo into ``out``; returns paths, records and the Markdown table."""
    from bimors.backbones import load_backbone

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    models = out / "models"
    if not (models / "blip2" / "config.json").is_file():
        write_all(models)
    data_root = out / "data" / "synthetic"
    if not data_root.is_dir():
        generate_scenes(data_root, per_class=per_class, size=64, seed=0)
    dataset = SyntheticScenes(data_root)
    split = dataset.split()
    relpaths = sorted({s.relpath for part in (split.train, split.val, split.test) for s in part})
    # the caption settings of the BiMoRS preset (the official script's), so its store fits
    settings = resolve_config("bimors").captions.generation()
    captioner = Captioner.from_pretrained(str(models / "blip2"), settings)
    encoder = CaptionEncoder.from_pretrained(str(minilm_path()))
    store_path = out / "data" / "captions.sqlite"
    caption_images(data_root, relpaths, store_path, captioner, encoder, 16, progress).close()
    backbone = load_backbone("hf", str(models / "clip-hf"))
    records: list[dict[str, Any]] = []
    for name in DEMO_METHODS:
        cfg = resolve_config(
            name,
            overrides=[
                "backbone.adapter=hf",
                f"backbone.model={models / 'clip-hf'}",
                f"captions.captioner={models / 'blip2'}",
                f"captions.encoder={minilm_path()}",
                "data.dataset=synthetic",
                f"data.root={data_root}",
                "data.num_workers=0",
                f"train.seed={seed}",
                "train.device=cpu",
                f"features.dir={out / 'features'}",  # everything the demo writes stays in OUT
            ],
        )
        logger.info("demo: training %s", name)
        stores = CaptionStores(cfg, {dataset.name: store_path})
        plan = plan_base2new(dataset, cfg.data.shots, seed, sampler=cfg.data.fewshot_sampler)
        run_dir = out / "runs" / "base2new" / dataset.name / name / f"seed{seed}"
        records += run_plan(cfg, plan, backbone, stores, run_dir, progress=progress)
        stores.close()
    grid = base2new_table(base2new_rows(records))
    table = table_markdown(grid)
    atomic.write_jsonl(out / "results.jsonl", records)
    report = f"# bimors demo: base-to-new on synthetic scenes\n\n{table}\n> {NOTE}"
    atomic.write_text(out / "report.md", report)
    plot = base2new_figure(grid, out / "base2new.png", "Demo: base-to-new (tiny random models)")
    return {
        "results": out / "results.jsonl",
        "report": out / "report.md",
        "plot": plot,
        "records": records,
        "table": table,
        "seconds": time.perf_counter() - started,
    }
