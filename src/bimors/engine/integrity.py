"""Check every derived artefact under a folder: feature spaces, shared-view stores, caption stores.

``bimors verify PATH`` reads each artefact in full and compares it with the
checksum written with it (:mod:`bimors.core.checksum`); a caption store is
also put through SQLite's ``PRAGMA integrity_check``. PATH is a feature cache
(or any folder holding artefacts), a caption store file, or a run folder,
whose ``config.yaml`` names the feature cache and the caption store it used.
One :class:`Finding` per artefact, so a damaged one is named, never averaged
away.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from bimors.core.errors import DataError, IntegrityError
from bimors.engine import feature_cache

SQLITE_MAGIC = b"SQLite format 3\x00"
MAX_NAMED = 3  # damaged files named per artefact


@dataclasses.dataclass(frozen=True)
class Finding:
    """The verdict on one artefact: its kind, path, files checked, and what is wrong."""

    kind: str  # "feature cache", "shared views", "caption store"
    path: Path
    checked: int
    problems: tuple[str, ...] = ()
    fix: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        """One line: ``ok``/``DAMAGED``, the kind and path, what was checked and what failed."""
        if self.ok:
            return f"ok       {self.kind} {self.path} ({self.checked} checked)"
        named = "; ".join(self.problems[:MAX_NAMED])
        more = (
            f"; and {len(self.problems) - MAX_NAMED} more" if len(self.problems) > MAX_NAMED else ""
        )
        fix = f"; {self.fix}" if self.fix else ""
        return (
            f"DAMAGED  {self.kind} {self.path} ({len(self.problems)} of {self.checked} bad: "
            f"{named}{more}){fix}"
        )


def verify(path: str | Path) -> list[Finding]:
    """A finding per artefact under ``path`` (see the module docstring); DataError if none."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; pass a run folder, a feature cache or a store")
    findings: list[Finding] = []
    seen: set[Path] = set()
    for root in _roots(path):
        for kind, artefact in _artefacts(root):
            if artefact.resolve() in seen:
                continue
            seen.add(artefact.resolve())
            findings.append(
                verify_store(artefact) if kind == "store" else _verify_files(kind, artefact)
            )
    if not findings:
        raise DataError(
            f"{path} holds no feature cache, shared views or caption store (nothing to verify)"
        )
    return findings


def _roots(path: Path) -> list[Path]:
    """``path``, and for a run folder the cache folder and caption store its config names."""
    roots = [path]
    config = path / "config.yaml"
    if path.is_dir() and config.is_file():
        import yaml

        cfg = yaml.safe_load(config.read_text()) or {}
        feats, caps = cfg.get("features") or {}, cfg.get("captions") or {}
        if feats.get("cache", True) or feats.get("share_views") or feats.get("train_views"):
            cache = Path(feats["dir"]) if feats.get("dir") else feature_cache.default_cache_dir()
            if cache.is_dir():
                roots.append(cache)
        if caps.get("store") and Path(caps["store"]).is_file():
            roots.append(Path(caps["store"]))
    return roots


def _artefacts(root: Path) -> Iterator[tuple[str, Path]]:
    """(kind, path) of each artefact under ``root``: feature spaces and view stores by their
    ``key.json``, caption stores by SQLite's file header."""
    if root.is_file():
        if _is_sqlite(root):
            yield "store", root
        return
    for folder, _dirs, files in os.walk(root):
        here = Path(folder)
        if "key.json" in files:
            try:
                fmt = str(json.loads((here / "key.json").read_text()).get("format", ""))
            except (OSError, ValueError):
                fmt = ""
            if fmt.startswith("bimors-shared-views"):
                yield "shared views", here
            elif fmt.startswith("bimors-feature-cache"):
                yield "feature cache", here
        for name in files:
            if not name.endswith(("-journal", ".safetensors", ".json")) and _is_sqlite(here / name):
                yield "store", here / name


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _verify_files(kind: str, folder: Path) -> Finding:
    """Read every safetensors file of a feature space or view store against its checksum."""
    what = "feature cache entry" if kind == "feature cache" else "shared view file"
    files = sorted(folder.rglob("*.safetensors"))
    problems = []
    for f in files:
        try:
            feature_cache.load_value(f, what, folder)
        except DataError as err:
            problems.append(f"{f.relative_to(folder)}: {_reason(err)}")
    fix = (
        "damaged entries are computed again on the next run (or delete the folder)"
        if problems
        else ""
    )
    return Finding(kind, folder, len(files), tuple(problems), fix)


def _reason(err: Exception) -> str:
    text = str(err)
    if "fails its checksum" in text:
        return "fails its checksum"
    if "carries no checksum" in text:
        return "carries no checksum (older format)"
    return text.split(";")[0]


def verify_store(path: Path) -> Finding:
    """SQLite's ``integrity_check`` and every row's checksum of one caption store."""
    from bimors.captions.store import CaptionStore

    try:
        store = CaptionStore(path, readonly=True)
    except IntegrityError as err:  # an old format: no checksums to check
        return Finding(
            "caption store", path, 0, (str(err).split("; ")[0],), str(err).split("; ")[-1]
        )
    except DataError as err:
        return Finding("caption store", path, 0, (str(err),))
    with store:
        try:
            pages = store.integrity_check()
            damaged = store.damaged() if pages == ["ok"] else []
            rows = len(store)
        except sqlite3.DatabaseError as err:
            pages, damaged, rows = [str(err)], [], 0
        problems = [f"SQLite integrity_check: {p}" for p in pages if p != "ok"]
        problems += [f"{r}: fails its checksum" for r in damaged]
        fix = store.repair_command() if damaged else ""
        if problems and not damaged:
            fix = f"the file is damaged: make the store again with {store.fill_command()}"
    return Finding("caption store", path, rows, tuple(problems), fix)
