"""Caption a registered dataset: what ``bimors caption`` does, as a library call.

Every image of the dataset's train, val and test split is captioned, or only
the images a protocol grid reads (``only``, see :mod:`bimors.captions.scope`),
keyed by its path relative to the dataset's image root, which is how the
trainer looks captions up.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bimors.captions.captioner import (
    DEFAULT_CAPTIONER,
    Captioner,
    GenerationSettings,
    dtype_name,
    resolve_dtype,
)
from bimors.captions.encoder import DEFAULT_ENCODER, CaptionEncoder
from bimors.captions.job import caption_images, leftover_parts
from bimors.captions.plan import plan_batches
from bimors.captions.provenance import default_store_path, portable_ref
from bimors.captions.store import CaptionStore
from bimors.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    from bimors.captions.scope import ImagePlan

logger = logging.getLogger(__name__)

#: How long processes of a sharded job wait for each other (the slowest shard,
#: at the end). Generous because shards of a 100,000-image job can drift apart
#: by many minutes; a crashed process ends the whole launch anyway.
BARRIER_TIMEOUT = timedelta(hours=12)


def dataset_relpaths(dataset) -> list[str]:
    """Every image of the dataset's split, relative to its image root, sorted."""
    split = dataset.split()
    return sorted({s.relpath for part in (split.train, split.val, split.test) for s in part})


def start_processes(device: str):
    """The ``accelerate.PartialState`` of this process, and the device it should use.

    Under ``accelerate launch`` / ``torchrun`` with several processes this joins
    the process group (gloo on CPUs, NCCL on GPUs; one GPU per process).
    """
    from accelerate import PartialState

    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    state = PartialState(cpu=cpu, timeout=BARRIER_TIMEOUT)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if state.num_processes != launched:
        raise ConfigError(
            f"launched as {launched} processes but joined a group of {state.num_processes}; "
            "use `accelerate launch --multi_gpu --num_processes N -m bimors.cli caption ...` "
            "(add --device cpu on machines without GPUs)"
        )
    if state.num_processes > 1 or device == "auto":
        if device not in ("auto", "cpu", "cuda"):
            logger.warning("--device %s ignored: each process uses %s", device, state.device)
        return state, torch.device(state.device)
    return state, torch.device(device)


def caption_dataset(
    dataset: str,
    root: str | Path,
    store: str | Path | None = None,
    captioner: str = DEFAULT_CAPTIONER,
    encoder: str = DEFAULT_ENCODER,
    settings: GenerationSettings | None = None,
    batch_size: int = 16,
    device: str = "auto",
    dtype: str = "auto",
    num_workers: int | None = None,
    verify: bool = False,
    captioner_revision: str | None = None,
    encoder_revision: str | None = None,
    progress: bool = True,
    options: dict[str, Any] | None = None,
    only: ImagePlan | None = None,
) -> CaptionStore:
    """Caption every image of the registered ``dataset`` under ``root`` into ``store``.

    ``store`` defaults to :func:`~bimors.captions.store.default_store_path`;
    ``num_workers`` (image decoding processes) to 4 on CUDA and 0 on CPUs.
    ``options`` go to the dataset (``exclude``, ``split_file``, ``split_seed``,
    ``check_split``): excluded images are never captioned, as they are never
    trained on. ``only`` limits the job to the images a grid reads (each
    must be in the split); the store then holds a part of the split, which it
    records (:meth:`~bimors.captions.store.CaptionStore.coverage`), and a
    later job fills only what it lacks.
    A store that already holds every image returns at once, without loading
    any model; otherwise the models load and :func:`caption_images` runs.
    """
    from bimors.data import build_dataset

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    settings = settings or GenerationSettings()
    data = build_dataset(dataset, root, **(options or {}))
    relpaths = dataset_relpaths(data)
    n_split = len(relpaths)
    groups = None
    if only is not None:
        outside = sorted(only.relpaths() - set(relpaths))
        if outside:
            raise DataError(
                f"{len(outside)} planned image(s) of {dataset} are not in its split "
                f"(first: {', '.join(outside[:3])}); caption with the split options the runs use "
                "(--split-file, --split-seed, --exclude)"
            )
        groups = only.groups()
        relpaths = sorted(only.relpaths())
    store_path = Path(store) if store else default_store_path(data.root, captioner, encoder)
    state, dev = start_processes(device)
    torch_dtype = resolve_dtype(dtype, dev)
    if num_workers is None:  # decode ahead of a GPU; on CPUs the model needs every core
        num_workers = 4 if dev.type == "cuda" else 0
    expected = {
        "captioner_id": portable_ref(captioner),
        "encoder_id": portable_ref(encoder),
        "generation": settings.as_dict(),
        "captioner_dtype": dtype_name(torch_dtype),
    }
    if store_path.is_file() and not verify and not leftover_parts(store_path):
        with CaptionStore(store_path, readonly=True) as existing:
            existing.check(expected, "this command", "pass a new --store path")
            todo = plan_batches(
                groups or relpaths, existing.keys(), set(existing.failures()), batch_size
            )
        if not todo:
            logger.info("%s already holds all %d images asked for", store_path, len(relpaths))
            return CaptionStore(store_path, readonly=True)
    logger.info("loading captioner %s and encoder %s on %s", captioner, encoder, dev)
    cap = Captioner.from_pretrained(captioner, settings, dev, torch_dtype, captioner_revision)
    enc = CaptionEncoder.from_pretrained(encoder, dev, revision=encoder_revision)
    store = caption_images(
        data.image_root,
        relpaths,
        store_path,
        cap,
        enc,
        batch_size,
        progress,
        num_workers=num_workers,
        verify=verify,
        processes=state if state.num_processes > 1 else None,
        source={"dataset": dataset, "root": str(Path(root).resolve())},
        groups=groups,
    )
    if state.process_index == 0:
        store.record_split_size(n_split)
    return store
