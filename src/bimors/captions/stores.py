"""Which caption store each dataset of a run reads, opened once and checked before use.

The run only asks :meth:`CaptionStores.get` for a dataset's store; the choice
(an explicit ``--store NAME=FILE``, ``captions.store`` for the run's own
dataset, else the default place beside the data) and the provenance check
(the store must have been made with the models and decoding the config names)
live here, with the captions. A run records the stores it read
(``stores.json``), so ``bimors eval RUN`` reads the same ones.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Protocol

from bimors.captions.config import CaptionConfig
from bimors.captions.provenance import (
    caption_command,
    default_store_path,
    expected_provenance,
    identity,
)
from bimors.captions.store import CaptionStore
from bimors.core.errors import DataError
from bimors.data.base import SceneDataset
from bimors.data.config import DataConfig

logger = logging.getLogger(__name__)

#: The file in a run folder that records the caption stores the run read.
STORES_FILE = "stores.json"


class RunSections(Protocol):
    """The two sections of a run config a store choice reads (a ``RunConfig`` has both)."""

    @property
    def captions(self) -> CaptionConfig: ...

    @property
    def data(self) -> DataConfig: ...


class CaptionStores:
    """Opens (once) the caption store of each dataset a run touches, checking provenance.

    A dataset's store is the one given explicitly (``--store NAME=FILE``), else
    ``captions.store`` for the config's own dataset, else the default location
    beside the data (see :func:`~bimors.captions.store.default_store_path`).
    Each store must have been made with the models and generation settings
    the config names: vectors of another encoder would silently train a
    different method.
    """

    def __init__(self, cfg: RunSections, explicit: dict[str, str | Path] | None = None) -> None:
        self.cfg = cfg
        self.explicit = {k: Path(v) for k, v in (explicit or {}).items()}
        c = cfg.captions
        self.expect = expected_provenance(
            c.captioner, c.encoder, generation=c.expected_generation()
        )
        self._open: dict[str, CaptionStore] = {}

    def path(self, dataset: SceneDataset) -> Path:
        """Where ``dataset``'s store is looked for."""
        if dataset.name in self.explicit:
            return self.explicit[dataset.name]
        if self.cfg.captions.store and dataset.name == self.cfg.data.dataset:
            return Path(self.cfg.captions.store)
        c = self.cfg.captions
        return default_store_path(dataset.root, c.captioner, c.encoder)

    def get(self, dataset: SceneDataset) -> CaptionStore:
        if dataset.name not in self._open:
            path = self.path(dataset)
            if not path.is_file():
                make = caption_command(dataset.name, dataset.root, path, self.expect)
                make += self._data_args(dataset)
                raise DataError(
                    f"no caption store for {dataset.name} at {path}; make it with: {make} "
                    "(or point to an existing one with --store NAME=FILE)"
                )
            store = CaptionStore(path, readonly=True)
            try:
                store.check(
                    self.expect,
                    "the run config",
                    "set captions.captioner/encoder/num_beams/max_new_tokens/max_length/"
                    "preprocess to the store's, or make a store with the configured models: "
                    + caption_command(dataset.name, dataset.root, None, self.expect),
                )
            except DataError:
                store.close()
                raise
            self._open[dataset.name] = store
        return self._open[dataset.name]

    def used(self) -> dict[str, dict[str, Any]]:
        """The stores this run read, by dataset: absolute path and identity (``stores.json``)."""
        return {
            name: {"path": str(store.path.resolve()), "identity": identity(store.provenance)}
            for name, store in sorted(self._open.items())
        }

    @classmethod
    def recorded(cls, run_path: str | Path) -> dict[str, Path]:
        """The stores a finished run recorded in ``stores.json`` that are still where they were.

        A store that has moved is left out (the default lookup and ``--store``
        still apply); one that is there is used, and checked like any other.
        """
        file = Path(run_path) / STORES_FILE
        if not file.is_file():
            return {}
        try:
            entries = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as err:
            raise DataError(f"{file} is not valid JSON ({err}); delete it to look stores up "
                            "by the run config, or pass --store NAME=FILE") from None  # fmt: skip
        found = {}
        for name, entry in entries.items():
            path = Path(entry.get("path", ""))
            if path.is_file():
                found[name] = path
            else:
                logger.info("the store %s recorded for %s is not there; looking it up", path, name)
        return found

    def _data_args(self, dataset: SceneDataset) -> str:
        """The ``bimors caption`` options that give it the run's split and exclusions."""
        d = self.cfg.data
        if dataset.name != d.dataset:
            return ""
        args = [f"--exclude {d.exclude}"] if d.exclude else []
        args += [f"--split-file {d.split_file}"] if d.split_file else []
        args += [f"--split-seed {d.split_seed}"] if d.split_seed else []
        args += ["--custom-split"] if not d.check_split else []
        return "".join(" " + a for a in args)

    def close(self) -> None:
        for store in self._open.values():
            store.close()
        self._open.clear()
