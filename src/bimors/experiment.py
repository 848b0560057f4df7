"""One run of one method on one dataset under the base-to-new protocol.

This is glue only: dataset -> tasks -> image datasets with aligned caption
vectors -> method -> trainer -> evaluator -> result records.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from bimors import __version__, atomic
from bimors.backbones.base import FrozenCLIP
from bimors.captions.store import CaptionStore
from bimors.data.base import SceneDataset
from bimors.data.images import ImageDataset
from bimors.data.transforms import build_transform
from bimors.engine.data import TaskData
from bimors.engine.evaluator import evaluate
from bimors.engine.features import feature_source
from bimors.engine.trainer import Trainer
from bimors.methods import METHODS, build_method
from bimors.protocols.base2new import Task, base2new_tasks
from bimors.run_config import RunConfig

logger = logging.getLogger(__name__)


def task_data(
    dataset: SceneDataset,
    task: Task,
    backbone: FrozenCLIP,
    train: bool,
    store: CaptionStore | None,
    style: str,
    fill_command: str | None = None,
) -> TaskData:
    """Images of ``task`` with the backbone's transform and, if a store is given, captions."""
    images = ImageDataset(
        dataset.image_root, task.samples, build_transform(backbone.preprocess, train)
    )
    captions = None
    if store is not None:
        captions = store.vectors([s.relpath for s in task.samples], fill_command)
    return TaskData(images, dataset.prompt_names(task.classnames, style), captions)


def run_base2new(
    cfg: RunConfig,
    dataset: SceneDataset,
    backbone: FrozenCLIP,
    store: CaptionStore | None = None,
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Train ``cfg.method`` on base classes, evaluate on base and new; returns two records."""
    seed = cfg.train.seed
    method_cls = METHODS.get(cfg.method)
    split = dataset.split()
    tasks = base2new_tasks(split, cfg.data.shots, seed, dataset.name)
    if not method_cls.uses_captions:
        store = None
    elif store is None:
        raise ValueError(f"method {cfg.method!r} needs a caption store (captions.store)")
    style = cfg.data.classnames
    fill = f"bimors caption --dataset {dataset.name} --root {dataset.root}"
    train = task_data(dataset, tasks.train, backbone, True, store, style, fill)
    val = task_data(dataset, tasks.val, backbone, False, store, style, fill)
    test_base = task_data(dataset, tasks.test_base, backbone, False, store, style, fill)
    test_new = task_data(dataset, tasks.test_new, backbone, False, store, style, fill)
    method = build_method(
        cfg.method, backbone, train.classnames, cfg.method_params, store.dim if store else None
    )
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        atomic.write_json(out / "config.json", {"bimors_version": __version__, **cfg.to_dict()})
        atomic.write_json(out / "fewshot.json", tasks.fewshot)
    feats = cfg.features
    features = feature_source(feats.cache, feats.dir, feats.train_views, progress)
    start = time.perf_counter()
    result = Trainer(
        method, cfg.train, out, cfg.to_dict(), cfg.data.num_workers, progress, features
    ).fit(train, val)
    train_seconds = time.perf_counter() - start
    records = []
    for split_name, data in (("base", test_base), ("new", test_new)):
        ev = evaluate(
            method,
            data,
            cfg.train.eval_batch_size,
            cfg.train.precision,
            cfg.data.num_workers,
            features=features,
        )
        records.append(
            {
                "method": cfg.method,
                "dataset": dataset.name,
                "protocol": "base2new",
                "split": split_name,
                "seed": seed,
                "accuracy": ev.accuracy,
                "correct": ev.correct,
                "total": ev.total,
                "shots": cfg.data.shots,
                "classnames": style,
                "backbone": f"{backbone.adapter}:{backbone.model_id}",
                "selection": result.selection,
                "selected_epoch": result.selected_epoch,
                "skipped_steps": result.skipped_steps,
                "train_seconds": round(train_seconds, 2),
                "bimors_version": __version__,
            }
        )
        logger.info("%s %s %s: %.2f%%", cfg.method, dataset.name, split_name, ev.accuracy)
    if out:
        atomic.write_jsonl(out / "results.jsonl", records)
    return records
