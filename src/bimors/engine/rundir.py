"""A run directory: what was run, how far it got, and what it measured.

Layout::

    RUN_DIR/
      meta.json        package version, method, protocol, datasets, seed, status
      config.yaml      the resolved config
      fewshot.json     few-shot indices used (per part), the sampler that drew them and
                       ``counts``: the real images per class of each part
      data.json        each dataset's folder, split file and its SHA-256, excluded images
      metrics.jsonl    one row per epoch (also TensorBoard events under tb/)
      last.pt          resume state (while training)
      checkpoint.pt    the selected model
      results.jsonl    one record per evaluation

An existing directory is reused only for the same version, method and config
(to resume or skip); anything else is refused unless ``overwrite`` is given,
so nothing is overwritten by accident. A directory holding no work yet (a
start that failed before its first epoch: a bad config value, a bad image)
is not worth protecting and is replaced, so the corrected command just runs.
A finished run is only skipped when its checkpoint still reads back.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Literal

import yaml

from bimors import __version__
from bimors.core import atomic
from bimors.core.config import yaml_load
from bimors.core.errors import CheckpointError, ConfigError

Status = Literal["new", "resume", "done"]

#: Files that hold work: a folder with none of them is a start that failed early.
WORK = ("last.pt", "checkpoint.pt", "results.jsonl", "metrics.jsonl")

logger = logging.getLogger(__name__)

#: Config fields that change where or how fast a run goes, never its numbers: a run
#: may resume on another device, with other loader workers or another cache folder.
INCIDENTAL = (
    ("train", "device"),
    ("data", "num_workers"),
    ("features", "dir"),
    ("features", "cache"),
)


def material(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the :data:`INCIDENTAL` fields."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for section, key in INCIDENTAL:
        if isinstance(out.get(section), dict):
            out[section].pop(key, None)
    return out


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().absolute()  # records name it: valid from anywhere

    # -- files --------------------------------------------------------------------------------
    @property
    def meta_file(self) -> Path:
        return self.path / "meta.json"

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def results_file(self) -> Path:
        return self.path / "results.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    def meta(self) -> dict[str, Any]:
        if not self.meta_file.is_file():
            raise ConfigError(f"{self.path} is not a bimors run directory (no meta.json)")
        return json.loads(self.meta_file.read_text(encoding="utf-8"))

    def config(self) -> dict[str, Any]:
        return yaml_load(self.config_file.read_text(encoding="utf-8"))

    # -- lifecycle ----------------------------------------------------------------------------
    def prepare(
        self, config: dict[str, Any], meta: dict[str, Any], overwrite: bool = False
    ) -> Status:
        """Create the directory or decide whether an existing one is resumed or done.

        Refuses a directory made by another version, for another method or with
        another config, unless ``overwrite`` (which deletes it first).
        """
        if self.path.is_dir() and self._killed_while_starting():
            logger.info("%s was left by a run killed as it started; starting afresh", self.path)
            shutil.rmtree(self.path)
        if self.path.exists() and any(self.path.iterdir()):
            problem = self._mismatch(config, meta)
            if problem and not self.has_work() and self.meta_file.is_file():
                logger.info("%s holds no work yet (%s); starting it afresh", self.path, problem)
                overwrite = True
            if problem and not overwrite:
                raise ConfigError(
                    f"run directory {self.path} {problem}; pass --overwrite to replace it, "
                    "or choose another output directory"
                )
            if problem or overwrite:
                shutil.rmtree(self.path)
            elif self.meta().get("status") == "done" and self.results_file.is_file():
                return "done"
            else:
                atomic.sweep_stale(self.path)
                return "resume"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise (atomic.storage_problem(err, self.path / "meta.json") or err) from None
        atomic.write_text(self.config_file, yaml.safe_dump(config, sort_keys=False))
        atomic.write_json(
            self.meta_file, {**meta, "bimors_version": __version__, "status": "running"}
        )
        return "new"

    def _killed_while_starting(self) -> bool:
        """Only what :meth:`prepare` writes before ``meta.json`` (the config, temporary
        files): a run killed between the two, e.g. a shard killed by its scheduler."""
        entries = list(self.path.iterdir())
        return bool(entries) and all(
            e.name == self.config_file.name or (e.name.startswith(".") and e.name.endswith(".tmp"))
            for e in entries
        )

    def _mismatch(self, config: dict[str, Any], meta: dict[str, Any]) -> str | None:
        if not self.meta_file.is_file():
            return "exists and is not a bimors run directory"
        old = self.meta()
        if old.get("bimors_version") != __version__:
            return f"was made by bimors {old.get('bimors_version')}, this is {__version__}"
        for key in ("method", "protocol", "dataset", "seed"):
            if key in meta and old.get(key) != meta[key]:
                return f"holds {key} {old.get(key)!r}, not {meta[key]!r}"
        if self.config_file.is_file():
            old_cfg, new_cfg = material(self.config()), material(config)
            if old_cfg != new_cfg:
                changed = sorted(
                    f"{section}.{key}" if isinstance(old_cfg.get(section), dict) else section
                    for section in set(old_cfg) | set(new_cfg)
                    for key in _keys(old_cfg.get(section), new_cfg.get(section))
                )
                return f"was run with a different config ({', '.join(changed)})"
        return None

    def has_work(self) -> bool:
        """Whether anything was trained or measured here (else a rerun may start afresh)."""
        return any((self.path / n).exists() for n in WORK)

    def mark_done(self, checkpoint: bool = False) -> None:
        """Record that the results are written (and whether a ``checkpoint.pt`` belongs)."""
        atomic.write_json(
            self.meta_file, {**self.meta(), "status": "done", "checkpoint": checkpoint}
        )

    def drop_resume_state(self) -> None:
        """Remove ``last.pt`` once the results it could resume are written."""
        (self.path / "last.pt").unlink(missing_ok=True)

    def check_finished(self) -> None:
        """Refuse to skip a finished run whose checkpoint is missing or does not read back."""
        from bimors.engine.checkpoint import read_checkpoint

        expected = self.meta().get("checkpoint", self.checkpoint.exists())
        if not expected:
            return
        try:
            read_checkpoint(self.checkpoint)
        except CheckpointError as err:
            raise CheckpointError(
                f"run {self.path} is finished but its model is unusable: {err}; its results "
                "(results.jsonl) are intact; to train it again pass --overwrite (this replaces "
                "them), or keep this folder and train into another --out"
            ) from None

    # -- records ------------------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        if not self.results_file.is_file():
            return []
        return [
            json.loads(x) for x in self.results_file.read_text(encoding="utf-8").splitlines() if x
        ]

    def add_records(self, new: list[dict[str, Any]]) -> None:
        """Add evaluation records; a record for the same (dataset, split) replaces the old one."""
        keys = {(r["dataset"], r["split"]) for r in new}
        kept = [r for r in self.records() if (r["dataset"], r["split"]) not in keys]
        atomic.write_jsonl(self.results_file, kept + new)

    def write_json(self, name: str, obj: Any) -> None:
        atomic.write_json(self.path / name, obj)


def _keys(old: Any, new: Any) -> list[str]:
    """The keys that differ between two config sections ('' for non-dict sections)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [k for k in set(old) | set(new) if old.get(k) != new.get(k)]
    return [""] if old != new else []


def check_run_version(run: RunDir, allow_other_version: bool = False) -> dict[str, Any]:
    """The run's meta, refusing a run made by another bimors version unless allowed."""
    meta = run.meta()
    if meta.get("bimors_version") != __version__ and not allow_other_version:
        raise ConfigError(
            f"run directory {run.path} was made by bimors {meta.get('bimors_version')}, this is "
            f"{__version__}; results may differ: pass --allow-other-version to use it anyway"
        )
    return meta
