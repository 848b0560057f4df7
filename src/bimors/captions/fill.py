"""Fill the caption stores a protocol grid needs before it trains.

``bimors run --caption`` calls this so that one command reproduces a table on
a fresh machine: every dataset the grid touches (training and target
datasets) gets its store captioned, for the images the grid reads (``only``,
see :func:`bimors.captions.scope.plan_images`), with the models and decoding settings the
run config names, at the place the trainer will look for it. Stores that are
already complete return at once without loading a model, so the flag costs
nothing on reruns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from bimors.captions.run import caption_dataset

if TYPE_CHECKING:
    from bimors.captions.scope import ImagePlan
    from bimors.captions.stores import CaptionStores
    from bimors.data.base import SceneDataset

logger = logging.getLogger(__name__)


def fill_stores(
    stores: CaptionStores,
    datasets: Iterable[SceneDataset],
    device: str = "auto",
    progress: bool = False,
    only: Mapping[str, ImagePlan] | None = None,
) -> None:
    """Caption the images each dataset's store lacks, with ``stores.cfg.captions``' models.

    ``only`` maps dataset names to the images to caption (a dataset it does not
    name is skipped); None captions every image of every dataset.
    """
    c = stores.cfg.captions
    settings = c.generation()
    seen: set[str] = set()
    for dataset in datasets:
        if dataset.name in seen:
            continue
        seen.add(dataset.name)
        if only is not None and dataset.name not in only:
            continue
        path = stores.path(dataset)
        logger.info("captions for %s -> %s", dataset.name, path)
        caption_dataset(
            dataset.name,
            dataset.root,
            path,
            c.captioner,
            c.encoder,
            settings,
            batch_size=c.batch_size,
            device=device,
            progress=progress,
            options={  # the split and exclusions the run uses: excluded images are not captioned
                "split_file": dataset.split_file,
                "split_seed": dataset.split_seed,
                "exclude": sorted(dataset.exclude),
                "check_split": dataset.check_split,
            },
            only=None if only is None else only[dataset.name],
        ).close()
