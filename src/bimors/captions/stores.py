"""Which caption store each dataset of a run reads, opened once and checked before use.

The run only asks :meth:`CaptionStores.get` for a dataset's store; the choice
(an explicit ``--store NAME=FILE``, ``captions.store`` for the run's own
dataset, else the default place beside the data) and the provenance check
(the store must have been made with the models and decoding the config names)
live here, with the captions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from bimors.captions.config import CaptionConfig
from bimors.captions.provenance import caption_command, default_store_path, expected_provenance
from bimors.captions.store import CaptionStore
from bimors.core.errors import DataError
from bimors.data.base import SceneDataset
from bimors.data.config import DataConfig


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
