"""One run: a protocol plan executed for one method and seed in a run directory.

Glue only: plan -> image datasets with aligned caption vectors -> method ->
the one trainer -> the one evaluator -> result records. A finished run is
skipped, an unfinished one resumed from its last epoch.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from bimors import __version__
from bimors.backbones.base import FrozenCLIP
from bimors.captions.store import CaptionStore
from bimors.captions.stores import STORES_FILE, CaptionStores
from bimors.core.errors import ConfigError
from bimors.data.base import SceneDataset
from bimors.data.fewshot import class_counts, warn_small_classes
from bimors.data.images import ImageDataset
from bimors.data.transforms import build_transform
from bimors.engine.data import TaskData
from bimors.engine.dist import Dist
from bimors.engine.evaluator import evaluate
from bimors.engine.feature_source import feature_source
from bimors.engine.features import FeatureSource
from bimors.engine.rundir import RunDir
from bimors.engine.tensorboard import log_final_accuracies
from bimors.engine.trainer import Trainer
from bimors.methods import METHODS, Method, build_method
from bimors.protocols.base2new import Task
from bimors.protocols.plan import Plan
from bimors.run.config import RunConfig
from bimors.run.identity import run_identity
from bimors.run.preflight import check_plan

logger = logging.getLogger(__name__)


def task_data(
    dataset: SceneDataset,
    task: Task,
    backbone: FrozenCLIP,
    train: bool,
    store: CaptionStore | None,
    style: str,
    fill: str | None = None,
) -> TaskData:
    """Images of ``task`` with the backbone's transform and, if a store is given, captions.

    ``fill``: the command named when the store lacks an image (default: the
    one that captions the whole dataset).
    """
    images = ImageDataset(
        dataset.image_root, task.samples, build_transform(backbone.preprocess, train)
    )
    captions = None
    if store is not None:
        fill = fill or store.fill_command(dataset.name, dataset.root)
        captions = store.vectors([s.relpath for s in task.samples], fill)
    return TaskData(images, dataset.prompt_names(task.classnames, style), captions)


def plan_fill_options(cfg: RunConfig, plan: Plan, dataset: SceneDataset) -> str:
    """``bimors caption`` options that caption the images of ``dataset`` this run reads."""
    from bimors.captions.scope import Cell, plan_options

    source = plan.train_dataset.name
    if dataset.name != source:
        return plan_options(plan.protocol, source, Cell(0, 0), [dataset.name])
    cell = Cell(cfg.train.seed, cfg.data.shots, cfg.data.fewshot_sampler)
    return plan_options(plan.protocol, source, cell)


def run_plan(
    cfg: RunConfig,
    plan: Plan,
    backbone: FrozenCLIP,
    stores: CaptionStores | None,
    run_dir: str | Path,
    overwrite: bool = False,
    progress: bool = False,
    dist: Dist | None = None,
    sweep: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate ``cfg.method`` on ``plan`` in ``run_dir``; returns its records.

    ``sweep``: the grid's swept values of this run (``{"data.shots": 4}``), kept
    in ``meta.json`` and every record so reports can pivot on them.
    """
    if cfg.preset.protocol not in (None, plan.protocol):
        raise ConfigError(
            f"the config was resolved for protocol {cfg.preset.protocol} but the plan is "
            f"{plan.protocol}: resolve it with resolve_config(..., protocol={plan.protocol!r})"
        )
    run = RunDir(run_dir)
    seed = cfg.train.seed
    meta = {
        "method": cfg.method,
        "protocol": plan.protocol,
        "dataset": plan.train_dataset.name,
        "seed": seed,
    }
    if sweep:
        meta["sweep"] = sweep
    dist = dist or Dist(cfg.train.device)
    status = dist.on_main(lambda: run.prepare(cfg.to_dict(), meta, overwrite))
    if status == "done":
        dist.on_main(run.check_finished)
        logger.info("%s is finished; skipping (use --overwrite to rerun)", run.path)
        return run.records()
    dist.on_main(lambda: check_plan(cfg, plan, progress))
    uses_captions = METHODS.get(cfg.method).uses_captions
    if uses_captions and stores is None:
        raise ValueError(f"method {cfg.method!r} needs caption stores")

    def data(dataset: SceneDataset, task: Task, train: bool) -> TaskData:
        store = stores.get(dataset) if uses_captions else None
        fill = store and store.fill_command(dataset.name, dataset.root) + plan_fill_options(
            cfg, plan, dataset
        )  # the command that captions what this run reads
        return task_data(dataset, task, backbone, train, store, cfg.data.classnames, fill)

    train = data(plan.train_dataset, plan.train, True)
    val = data(plan.train_dataset, plan.val, False)
    shots = cfg.data.shots
    per_class = {
        part: class_counts(task.samples, task.classnames)
        for part, task in (("train", plan.train), ("val", plan.val))
    }
    if dist.is_main:
        warn_small_classes(per_class["train"], shots, f"{plan.train_dataset.name} training split")
        run.write_json(
            "fewshot.json",
            {"sampler": cfg.data.fewshot_sampler, "shots": shots, "per_class": per_class,
             **plan.fewshot},
        )  # fmt: skip
        datasets = {plan.train_dataset.name: plan.train_dataset}
        datasets.update({spec.dataset.name: spec.dataset for spec in plan.evals})
        run.write_json("data.json", {name: ds.provenance() for name, ds in datasets.items()})
    torch.manual_seed(seed)  # the method's random init is part of the seeded run
    method = build_method(
        cfg.method,
        backbone,
        train.classnames,
        cfg.method_params,
        stores.get(plan.train_dataset).dim if uses_captions else None,
        names=None,  # the dataset already applied cfg.data.classnames
    )
    features = run_features(cfg, progress)
    start = time.perf_counter()
    # last.pt stays until the results are written: a run killed while evaluating
    # resumes after its last epoch instead of training again from the first
    trainer = Trainer(
        method, cfg.train, run.path, cfg.to_dict(), cfg.data.num_workers, progress, dist, features
    )
    trainer.keep_last = True
    result = trainer.fit(train, val)
    train_seconds = time.perf_counter() - start
    records = evaluate_specs(cfg, plan, method, data, dist, progress, features)
    for r in records:
        r.update(
            train_image_features=features.describe(method, True),
            selection=result.selection,
            selected_epoch=result.selected_epoch,
            skipped_steps=result.skipped_steps,
            train_seconds=round(train_seconds, 2),
            train_per_class=per_class["train"],
            run=str(run.path),
        )
        if sweep:
            r["sweep"] = sweep
    if dist.is_main:
        if uses_captions:  # so that `bimors eval RUN` reads the same stores
            run.write_json(STORES_FILE, stores.used())
        run.add_records(records)
        log_final_accuracies(run.path, records, cfg.train.epochs)
        run.mark_done(checkpoint=run.checkpoint.is_file())
        run.drop_resume_state()
    return records


def run_features(cfg: RunConfig, progress: bool = False) -> FeatureSource:
    """Where a run's image features come from: its ``features`` section (cache or encoder)."""
    f = cfg.features
    return feature_source(
        f.cache, f.dir, f.train_views, progress, f.share_views, tuple(f.share_fields)
    )


def evaluate_specs(
    cfg: RunConfig,
    plan: Plan,
    method: Method,
    data,
    dist: Dist,
    progress: bool,
    features: FeatureSource | None = None,
):
    """One record per evaluation of ``plan`` (``features``: default from ``cfg.features``)."""
    features = features if features is not None else run_features(cfg, progress)
    records = []
    for spec in plan.evals:
        ev = evaluate(
            method,
            data(spec.dataset, spec.task, False),
            cfg.train.eval_batch_size,
            cfg.train.precision,
            cfg.data.num_workers,
            progress,
            dist,
            features,
        )
        logger.info("%s on %s %s: %.2f%%", cfg.method, spec.dataset.name, spec.split, ev.accuracy)
        identity = run_identity(
            cfg, method.backbone.activation, METHODS.get(cfg.method).uses_captions
        )
        fallback = {"fallback": method.fallback} if method.fallback else {}
        records.append(
            {
                "method": cfg.method,
                "dataset": spec.dataset.name,
                "train_dataset": plan.train_dataset.name,
                "protocol": plan.protocol,
                "split": spec.split,
                "seed": cfg.train.seed,
                "accuracy": ev.accuracy,
                "correct": ev.correct,
                "total": ev.total,
                "shots": cfg.data.shots,
                "fewshot_sampler": cfg.data.fewshot_sampler,
                "preset": "+".join(cfg.preset.layers) or None,
                "classnames": cfg.data.classnames,
                "class_names": list(spec.task.classnames),
                "confusion": ev.confusion,
                "backbone": f"{cfg.backbone.adapter}:{cfg.backbone.model}",
                "backbone_activation": method.backbone.activation,
                "precision": cfg.train.precision,
                "image_features": features.describe(method, False),
                "bimors_version": __version__,
                "identity": identity,
                **fallback,
            }
        )
    return records
