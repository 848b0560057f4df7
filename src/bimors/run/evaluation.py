"""``bimors eval``: evaluate a finished run on any dataset and split, adding records to it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bimors.captions.stores import CaptionStores
from bimors.core.errors import CheckpointError, DataError, StorageError
from bimors.data import build_dataset, dataset_options
from bimors.data.base import SceneDataset
from bimors.engine.dist import Dist
from bimors.engine.tensorboard import log_final_accuracies
from bimors.protocols.base2new import Task, base2new_tasks
from bimors.protocols.plan import EvalSpec, Plan
from bimors.run.experiment import evaluate_specs, task_data
from bimors.run.preflight import check_tasks, check_writable
from bimors.run.trained import TrainedRun

logger = logging.getLogger(__name__)

SPLITS = ("base", "new", "all")


def test_task(dataset: SceneDataset, split: str) -> Task:
    """The test images of ``dataset`` for ``split``: base or new classes, or all of them."""
    if split == "all":
        s = dataset.split()
        return Task(s.classnames, list(s.test))
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    tasks = base2new_tasks(dataset.split(), 0, 0, dataset.name)
    return tasks.test_base if split == "base" else tasks.test_new


def trained_split(protocol: str) -> str:
    """The class subset a protocol trains on."""
    return "base" if protocol == "base2new" else "all"


def run_specs(
    trained: TrainedRun,
    dataset_name: str | None = None,
    root: str | Path | None = None,
    splits: list[str] | None = None,
) -> list[EvalSpec]:
    """The test splits to evaluate ``trained`` on (default: its own dataset, its protocol's).

    On the run's own dataset and trained split, the classes must be the checkpoint's.
    """
    cfg, meta = trained.cfg, trained.meta
    name = dataset_name or cfg.data.dataset
    own_data = name == cfg.data.dataset
    dataset = build_dataset(
        name,
        root or (cfg.data.root if own_data else None),
        **dataset_options(cfg.data, target=not own_data),
    )
    own = trained_split(meta.get("protocol", "base2new"))
    splits = splits or (["base", "new"] if own == "base" else ["all"])
    specs = [EvalSpec(dataset, s, test_task(dataset, s)) for s in splits]
    for spec in specs:
        names = dataset.prompt_names(spec.task.classnames, cfg.data.classnames)
        if own_data and spec.split == own and names != trained.classnames:
            raise CheckpointError(
                f"the classes of {dataset.root} ({spec.split}) differ from the checkpoint's: "
                f"dataset has {names}, checkpoint has {trained.classnames}; evaluate on the "
                "dataset the run was trained on, or pick another split"
            )
    return specs


def evaluate_run(
    trained: TrainedRun,
    dataset_name: str | None = None,
    root: str | Path | None = None,
    splits: list[str] | None = None,
    stores: dict[str, str] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Evaluate ``trained`` on ``splits`` of a dataset (default: the run's own) and record it."""
    cfg, meta = trained.cfg, trained.meta
    own_data = (dataset_name or cfg.data.dataset) == cfg.data.dataset
    specs = run_specs(trained, dataset_name, root, splits)
    dataset = specs[0].dataset
    plan = Plan(meta.get("protocol", "base2new"), dataset, specs[0].task, specs[0].task, specs, {})
    dist = Dist(str(trained.backbone.device))
    if dist.is_main:  # before computing anything: the records must have somewhere to go
        try:
            check_writable(trained.run.path, "run folder")
        except StorageError as err:
            raise StorageError(
                f"{err}; bimors eval adds its records to the run folder: copy the run folder "
                "somewhere writable and evaluate the copy"
            ) from None
    empty = [f"{spec.dataset.name} {spec.split}" for spec in specs if not spec.task.samples]
    if empty:
        raise DataError(
            f"no images to evaluate on in {', '.join(empty)} (every image excluded?); a result "
            "over 0 images is no result: choose another split or exclude fewer images"
        )
    dist.on_main(
        lambda: check_tasks(
            [(spec.dataset, [spec.task]) for spec in specs], cfg.data.dataset if own_data else None
        )
    )
    recorded = CaptionStores.recorded(trained.run.path) if trained.run is not None else {}
    caption_stores = CaptionStores(cfg, {**recorded, **(stores or {})})  # --store wins

    def data(ds, task, train):
        store = caption_stores.get(ds) if trained.method.uses_captions else None
        return task_data(ds, task, trained.backbone, train, store, cfg.data.classnames)

    try:
        records = evaluate_specs(cfg, plan, trained.method, data, dist, progress)
    finally:
        caption_stores.close()
    for r in records:
        r["train_dataset"] = meta.get("dataset", cfg.data.dataset)
        r["run"] = str(trained.run.path)
    if dist.is_main:
        try:
            trained.run.add_records(records)
        except StorageError as err:  # nothing computed is lost: the message carries it
            measured = "; ".join(
                f"{r['dataset']} {r['split']} {r['accuracy']:.2f}% ({r['correct']}/{r['total']})"
                for r in records
            )
            raise StorageError(f"{err}; the results were not saved, they are: {measured}") from None
        log_final_accuracies(trained.run.path, records, int(cfg.train.epochs))
    return records
