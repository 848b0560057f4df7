"""The caption store: caption text, vector and provenance per image, in one SQLite file.

Why SQLite: it ships with Python, handles millions of rows, gives random
access by key and cheap appends, and every batch is committed in one
transaction, so a job killed at any moment (SIGKILL included) leaves the store
as it was after the last finished batch: nothing half-written, nothing
duplicated (the key is the primary key).

Rows are keyed by the image's path relative to the dataset root, and carry a
SHA-256 of the image bytes so a changed image is detected. The provenance
(captioner and encoder ids and revisions, generation settings, dtype, library
versions) is stored once per file; a store made with another encoder is
refused rather than silently mixed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bimors.errors import DataError

FORMAT = "bimors-caption-store/1"


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class CaptionRecord:
    relpath: str
    sha256: str
    caption: str
    vector: np.ndarray


class CaptionStore:
    """Open an existing store (``create`` makes a new one)."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(
                f"caption store {self.path} does not exist; make it with `bimors caption`"
            )
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        self._db = sqlite3.connect(uri, uri=True, timeout=60)
        try:
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as err:
            raise DataError(f"{self.path} is not a caption store ({err})") from None
        if meta.get("format") != FORMAT:
            raise DataError(f"{self.path} has format {meta.get('format')!r}, expected {FORMAT!r}")
        self.dim = int(meta["dim"])
        self.provenance: dict[str, Any] = json.loads(meta["provenance"])

    @classmethod
    def create(cls, path: str | Path, dim: int, provenance: dict[str, Any]) -> CaptionStore:
        """Create an empty store (or open a matching existing one)."""
        path = Path(path)
        if path.exists():
            store = cls(path)
            store.check_provenance(provenance, dim)
            return store
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.creating")
        tmp.unlink(missing_ok=True)
        db = sqlite3.connect(tmp)
        with db:
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute(
                "CREATE TABLE captions (relpath TEXT PRIMARY KEY, sha256 TEXT NOT NULL, "
                "caption TEXT NOT NULL, vector BLOB NOT NULL)"
            )
            db.execute("CREATE TABLE failures (relpath TEXT PRIMARY KEY, error TEXT NOT NULL)")
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("format", FORMAT),
                    ("dim", str(dim)),
                    ("provenance", json.dumps(provenance, sort_keys=True)),
                ],
            )
        db.close()
        tmp.replace(path)  # the store appears complete or not at all
        return cls(path)

    def check_provenance(self, provenance: dict[str, Any], dim: int | None = None) -> None:
        """Refuse to mix vectors from another captioner, encoder or setting."""
        if dim is not None and dim != self.dim:
            raise DataError(
                f"caption store {self.path} holds {self.dim}-d vectors but {dim}-d are expected; "
                "use a store made with the same caption encoder, or a new --store path"
            )
        diff = {
            k: (self.provenance.get(k), v)
            for k, v in provenance.items()
            if k in ("captioner", "encoder", "generation") and self.provenance.get(k) != v
        }
        if diff:
            lines = "; ".join(f"{k}: store has {a!r}, asked {b!r}" for k, (a, b) in diff.items())
            raise DataError(
                f"caption store {self.path} was made differently ({lines}); use a new --store path"
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CaptionStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------
    def add(self, records: Iterable[tuple[str, str, str, np.ndarray | torch.Tensor]]) -> None:
        """Insert (relpath, sha256, caption, vector) rows in one transaction."""
        rows = []
        for relpath, sha, caption, vec in records:
            arr = np.asarray(vec.cpu() if isinstance(vec, torch.Tensor) else vec, dtype=np.float32)
            if arr.shape != (self.dim,):
                raise ValueError(
                    f"vector of {relpath} has shape {arr.shape}, expected ({self.dim},)"
                )
            rows.append((relpath, sha, caption, arr.tobytes()))
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO captions VALUES (?, ?, ?, ?)", rows)
            self._db.executemany("DELETE FROM failures WHERE relpath = ?", [(r[0],) for r in rows])

    def add_failures(self, failures: Iterable[tuple[str, str]]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO failures VALUES (?, ?)", list(failures))

    # -- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM captions").fetchone()[0])

    def keys(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT relpath FROM captions")}

    def failures(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT relpath, error FROM failures").fetchall())

    def get(self, relpath: str) -> CaptionRecord:
        row = self._db.execute("SELECT * FROM captions WHERE relpath = ?", (relpath,)).fetchone()
        if row is None:
            raise KeyError(relpath)
        return self._record(row)

    def __iter__(self) -> Iterator[CaptionRecord]:
        for row in self._db.execute("SELECT * FROM captions ORDER BY relpath"):
            yield self._record(row)

    def _record(self, row: tuple) -> CaptionRecord:
        return CaptionRecord(row[0], row[1], row[2], np.frombuffer(row[3], dtype=np.float32).copy())

    def vectors(self, relpaths: list[str], fill_command: str | None = None) -> torch.Tensor:
        """Vectors (N, dim) in the order of ``relpaths``, read in bulk.

        Refuses with the count of missing keys and the command that fills them.
        """
        found: dict[str, bytes] = {}
        unique = sorted(set(relpaths))
        for start in range(0, len(unique), 900):  # SQLite's bound-parameter limit
            chunk = unique[start : start + 900]
            marks = ",".join("?" * len(chunk))
            found.update(
                self._db.execute(
                    f"SELECT relpath, vector FROM captions WHERE relpath IN ({marks})", chunk
                )
            )
        missing = [r for r in unique if r not in found]
        if missing:
            hint = f"; fill them with: {fill_command}" if fill_command else ""
            raise DataError(
                f"caption store {self.path} lacks {len(missing)} of {len(unique)} images "
                f"(first: {missing[0]}){hint}"
            )
        arr = np.stack([np.frombuffer(found[r], dtype=np.float32) for r in relpaths])
        return torch.from_numpy(arr.copy())
