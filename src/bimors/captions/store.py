"""The caption store: caption text, vector and provenance per image, in one SQLite file.

Why SQLite: it ships with Python and is among the most tested storage engines
there is; one file holds 100,000+ rows (about 3 KB each for BERT-base) with
random access by key through a B-tree index, and appends are cheap. Above all
it is transactional: each batch is committed in one transaction through a
rollback journal, so a job killed at any moment (SIGKILL or power loss
included) leaves the store as it was after the last finished batch, nothing
half-written, and the key is the primary key, so nothing is ever duplicated.
HDF5 can be corrupted by a kill mid-write, Parquet files cannot be appended
to, LMDB would be one more dependency with no query language for inspection.

Rows are keyed by the image's path relative to the dataset's image root and
carry a SHA-256 of the image bytes the caption was made from (checked on
demand: ``bimors caption --verify`` or ``bimors captions verify``). The
provenance (see :mod:`bimors.captions.provenance`) is stored once per file.

SQLite checks its pages' structure (``PRAGMA integrity_check``) but not the
bytes of a value: a flipped bit inside a vector or a caption is read back as
valid. Each row therefore carries a CRC-32 (:mod:`bimors.core.checksum`) of
its key, image hash, caption text and vector, written in the same
transaction and checked on every read; a damaged row is an
:class:`~bimors.core.errors.IntegrityError` naming the store, the images and
the command that re-captions them, never a vector silently used. Stores of
format 1 (no checksums) are refused until ``bimors captions upgrade STORE``
adds them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bimors.captions.provenance import (
    caption_command,
    differences,
    identity,
    with_legacy_defaults,
)
from bimors.core import checksum
from bimors.core.errors import DataError, IntegrityError, StorageError
from bimors.core.locks import held_by

logger = logging.getLogger(__name__)

FORMAT = "bimors-caption-store/2"  # 2: a CRC-32 per row (column ``checksum``)
OLD_FORMAT = "bimors-caption-store/1"
MAX_NAMED = 5  # damaged images named in one message


def row_checksum(relpath: str, sha256: str, caption: str, vector: bytes) -> str:
    """CRC-32 of one row's key, image hash, caption text and vector bytes."""
    return checksum.of_bytes(checksum.of_texts((relpath, sha256, caption)).encode(), vector)


def upgrade_command(path: Path) -> str:
    return f"bimors captions upgrade {path}"


def upgrade(path: str | Path) -> int:
    """Add the checksums of format 2 to a store of format 1; returns the rows upgraded.

    The checksums vouch for the rows as they are now: run ``bimors captions
    verify`` afterwards to re-hash the images against the stored hashes.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"caption store {path} does not exist")
    db = sqlite3.connect(path, timeout=120)
    try:
        try:
            fmt = dict(db.execute("SELECT key, value FROM meta").fetchall()).get("format")
        except sqlite3.DatabaseError as err:
            raise DataError(f"{path} is not a caption store ({err})") from None
        if fmt == FORMAT:
            return 0
        if fmt != OLD_FORMAT:
            raise DataError(f"{path} has format {fmt!r}; only {OLD_FORMAT!r} can be upgraded")
        check = db.execute("PRAGMA integrity_check").fetchall()
        if check != [("ok",)]:
            raise IntegrityError(
                f"caption store {path} is damaged (SQLite integrity_check: {check[0][0]}); "
                "it cannot be upgraded: make it again with `bimors caption`"
            )
        with _writing(path), db:
            db.execute("ALTER TABLE captions ADD COLUMN checksum TEXT NOT NULL DEFAULT ''")
            rows = db.execute("SELECT relpath, sha256, caption, vector FROM captions").fetchall()
            db.executemany(
                "UPDATE captions SET checksum = ? WHERE relpath = ?",
                [(row_checksum(r, h, c, bytes(v)), r) for r, h, c, v in rows],
            )
            db.execute("UPDATE meta SET value = ? WHERE key = 'format'", (FORMAT,))
        return len(rows)
    finally:
        db.close()


_CHUNK = 900  # SQLite's default limit on bound parameters is 999


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """SQLite's write failures as one-line StorageErrors (the last committed batch is kept)."""
    try:
        yield
    except sqlite3.OperationalError as err:
        text = str(err).lower()
        if "full" in text:
            raise StorageError(
                f"disk full: cannot write caption store {path} ({err}); free some space and "
                "rerun the same command: it continues after the last committed batch"
            ) from None
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            raise StorageError(
                f"cannot write caption store {path} ({err}): the folder is read-only or not "
                "yours; pass --store with a writable location"
            ) from None
        raise


def _damaged(path: Path, err: sqlite3.DatabaseError) -> DataError:
    return DataError(
        f"caption store {path} is damaged ({err}); it cannot be trusted: delete it and rerun "
        "the caption command to make it again (or restore a good copy)"
    )


def _guard(path: Path, err: sqlite3.DatabaseError) -> None:
    """Raise ``err`` as a DataError naming the store when it means the file is damaged.

    Operational errors (locked, read-only, disk full) pass through unchanged:
    they are handled where they happen (:func:`_writing`).
    """
    if isinstance(err, sqlite3.OperationalError):
        raise err
    raise _damaged(path, err) from None


class _Cursor:
    """A cursor whose reads turn SQLite's "malformed" errors into one line naming the store."""

    def __init__(self, cursor: sqlite3.Cursor, path: Path) -> None:
        self._cursor = cursor
        self._path = path

    def fetchone(self) -> Any:
        try:
            return self._cursor.fetchone()
        except sqlite3.DatabaseError as err:
            _guard(self._path, err)

    def fetchall(self) -> list:
        try:
            return self._cursor.fetchall()
        except sqlite3.DatabaseError as err:
            _guard(self._path, err)
            raise

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                row = next(self._cursor)
            except StopIteration:
                return
            except sqlite3.DatabaseError as err:
                _guard(self._path, err)
            yield row


class _Connection:
    """An SQLite connection whose every statement names the store when the file is damaged."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def execute(self, *args: Any) -> _Cursor:
        try:
            return _Cursor(self._db.execute(*args), self._path)
        except sqlite3.DatabaseError as err:
            _guard(self._path, err)
            raise

    def executemany(self, *args: Any) -> _Cursor:
        try:
            return _Cursor(self._db.executemany(*args), self._path)
        except sqlite3.DatabaseError as err:
            _guard(self._path, err)
            raise

    def commit(self) -> None:
        try:
            self._db.commit()
        except sqlite3.DatabaseError as err:
            _guard(self._path, err)

    def __enter__(self) -> _Connection:
        self._db.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self._db.__exit__(*exc)
        except sqlite3.DatabaseError as err:
            _guard(self._path, err)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


@dataclass(frozen=True)
class CaptionRecord:
    relpath: str
    sha256: str
    caption: str
    vector: np.ndarray


class CaptionStore:
    """Open an existing store; :meth:`open_or_create` makes a new one.

    Args:
        path: the store file.
        readonly: open without write access (training, inspection).
    """

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(
                f"caption store {self.path} does not exist; make it with `bimors caption`"
            )
        try:
            meta = self._connect(readonly)
        except sqlite3.OperationalError as err:
            if "no such table" in str(err):
                raise DataError(f"{self.path} is not a caption store ({err})") from None
            if not readonly or getattr(err, "sqlite_errorname", "") != "SQLITE_READONLY_ROLLBACK":
                raise DataError(f"cannot read caption store {self.path} ({err})") from None
            self._roll_back_killed_batch()
            meta = self._connect(readonly)
        except sqlite3.DatabaseError as err:
            raise DataError(f"{self.path} is not a caption store ({err})") from None
        if meta.get("format") == OLD_FORMAT:
            self._db.close()
            raise IntegrityError(
                f"caption store {self.path} has format {OLD_FORMAT!r}, without the checksums "
                f"that detect damaged rows; add them with: {upgrade_command(self.path)}"
            )
        if meta.get("format") != FORMAT:
            self._db.close()
            raise DataError(f"{self.path} has format {meta.get('format')!r}, expected {FORMAT!r}")
        self.dim = int(meta["dim"])
        self.provenance: dict[str, Any] = with_legacy_defaults(json.loads(meta["provenance"]))
        self.source: dict[str, Any] = json.loads(meta.get("source", "{}"))
        #: images in the dataset's split when the store was last filled (None: not recorded);
        #: a store filled for one grid's images holds fewer, and says so
        self.split_images: int | None = (
            int(meta["split_images"]) if "split_images" in meta else None
        )

    def _connect(self, readonly: bool) -> dict[str, str]:
        """Open the connection; returns the meta table (the first read)."""
        uri = self.path.resolve().as_uri() + ("?mode=ro" if readonly else "")
        db = sqlite3.connect(uri, uri=True, timeout=120)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            db.close()
            raise
        self._db = _Connection(db, self.path)
        return meta

    def _roll_back_killed_batch(self) -> None:
        """Undo the batch a killed caption job left half-written (its hot journal).

        A read-only connection cannot roll it back and SQLite refuses to read
        past it; any connection with write access rolls it back on its first
        read, under SQLite's own locks, so the store is again exactly what the
        job had committed.
        """
        journal = self.path.with_name(self.path.name + "-journal")
        try:
            db = sqlite3.connect(self.path.resolve().as_uri(), uri=True, timeout=120)
            try:
                db.execute("SELECT COUNT(*) FROM meta").fetchone()
            finally:
                db.close()
        except sqlite3.OperationalError as err:
            raise DataError(
                f"caption store {self.path} holds a batch half-written by a killed caption job "
                f"({journal.name}), and this process may not write there to roll it back "
                f"({err}); rerun the caption command once as a user who can write the folder "
                "(it rolls the batch back and continues after the last committed one)"
            ) from None
        logger.warning("%s: rolled back a batch left half-written by a killed job", self.path)

    @classmethod
    def open_or_create(
        cls,
        path: str | Path,
        provenance: Mapping[str, Any],
        source: Mapping[str, Any] | None = None,
    ) -> CaptionStore:
        """Create an empty store, or open an existing one made the same way.

        ``source`` (dataset name and root) only serves to print the command
        that fills the store; it is not compared.
        """
        path = Path(path)
        if not path.exists():
            cls._create(path, provenance, source or {})
        store = cls(path)
        try:
            store.check(
                identity(provenance),
                "this job",
                f"pass a new --store path, or continue the store with: {store.fill_command()}",
            )
        except DataError:
            store.close()
            raise
        old, new = store.provenance.get("versions", {}), provenance.get("versions", {})
        if old != new:
            logger.warning("%s was started with %s; continuing with %s", path, old, new)
        return store

    @staticmethod
    def _create(path: Path, provenance: Mapping[str, Any], source: Mapping[str, Any]) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DataError(
                f"cannot create the caption store folder {path.parent} ({err}); "
                "pass --store with a writable location"
            ) from None
        tmp = path.with_name(f".{path.name}.creating")
        tmp.unlink(missing_ok=True)
        with _writing(path):
            CaptionStore._write_schema(tmp, provenance, source)
        tmp.replace(path)  # the store appears complete or not at all

    @staticmethod
    def _write_schema(tmp: Path, provenance: Mapping[str, Any], source: Mapping[str, Any]) -> None:
        db = sqlite3.connect(tmp)
        with db:
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute(
                "CREATE TABLE captions (relpath TEXT PRIMARY KEY, sha256 TEXT NOT NULL, "
                "caption TEXT NOT NULL, vector BLOB NOT NULL, checksum TEXT NOT NULL)"
            )
            db.execute("CREATE TABLE failures (relpath TEXT PRIMARY KEY, error TEXT NOT NULL)")
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("format", FORMAT),
                    ("dim", str(int(provenance["dim"]))),
                    ("provenance", json.dumps(dict(provenance), sort_keys=True)),
                    ("source", json.dumps(dict(source), sort_keys=True)),
                ],
            )
        db.close()

    def check(self, expected: Mapping[str, Any], who: str, fix: str) -> None:
        """Raise DataError if the recorded provenance disagrees with ``expected``."""
        diff = differences(self.provenance, expected)
        if diff:
            raise DataError(
                f"caption store {self.path} was made differently from what {who} asks "
                f"({'; '.join(diff)}); {fix}"
            )

    def check_intact(self) -> None:
        """Raise a DataError naming the store if SQLite finds any page of it damaged.

        A damaged page may sit where a key listing never reads (the captions or
        vectors), so a store is checked before it is called complete.
        """
        rows = [r[0] for r in self._db.execute("PRAGMA quick_check").fetchall()]
        if rows != ["ok"]:
            raise _damaged(self.path, sqlite3.DatabaseError("; ".join(map(str, rows[:3]))))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CaptionStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------
    def commit(
        self,
        records: Iterable[tuple[str, str, str, np.ndarray | torch.Tensor]],
        failures: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Write (relpath, sha256, caption, vector) rows and (relpath, error) failures
        in ONE transaction: a kill leaves all of them or none. A key ends up in
        exactly one of the two tables."""
        rows = []
        for relpath, sha, caption, vec in records:
            arr = np.asarray(vec.cpu() if isinstance(vec, torch.Tensor) else vec, dtype=np.float32)
            if arr.shape != (self.dim,):
                raise ValueError(
                    f"vector of {relpath} has shape {arr.shape}, expected ({self.dim},)"
                )
            vec_bytes = arr.tobytes()
            rows.append(
                (relpath, sha, caption, vec_bytes, row_checksum(relpath, sha, caption, vec_bytes))
            )
        bad = list(failures)
        with _writing(self.path), self._db:
            self._db.executemany("INSERT OR REPLACE INTO captions VALUES (?, ?, ?, ?, ?)", rows)
            self._db.executemany("DELETE FROM failures WHERE relpath = ?", [r[:1] for r in rows])
            self._db.executemany("INSERT OR REPLACE INTO failures VALUES (?, ?)", bad)
            self._db.executemany("DELETE FROM captions WHERE relpath = ?", [b[:1] for b in bad])

    def record_split_size(self, n: int) -> None:
        """Record how many images the dataset's split has (see :attr:`split_images`)."""
        with _writing(self.path), self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('split_images', ?)", (str(n),))
        self.split_images = n

    def coverage(self) -> str:
        """``N of M images of the split captioned``; empty when M was not recorded."""
        if self.split_images is None:
            return ""
        return f"{len(self)} of {self.split_images} images of the split captioned"

    def discard(self, relpaths: Iterable[str]) -> None:
        """Forget the captions of ``relpaths`` (stale after their image changed)."""
        with self._db:
            self._db.executemany("DELETE FROM captions WHERE relpath = ?", [(r,) for r in relpaths])

    def absorb(self, part: str | Path) -> int:
        """Merge another store made the same way (a shard's part file) into this one,
        then delete it. Idempotent: a kill before the delete merges the same rows again."""
        part = Path(part)
        with CaptionStore(part) as other:  # also rolls back a half-written last batch
            self.check(identity(other.provenance), f"part file {part}", f"delete {part}")
            n = len(other) + len(other.failures())
        self._db.execute("ATTACH DATABASE ? AS part", (str(part),))
        try:
            with _writing(self.path), self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO main.captions SELECT relpath, sha256, caption, vector, "
                    "checksum FROM part.captions"
                )
                self._db.execute(
                    "DELETE FROM main.failures WHERE relpath IN (SELECT relpath FROM part.captions)"
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO main.failures SELECT relpath, error FROM part.failures"
                )
                self._db.execute(
                    "DELETE FROM main.captions WHERE relpath IN (SELECT relpath FROM part.failures)"
                )
        finally:
            self._db.execute("DETACH DATABASE part")
        part.unlink()
        return n

    # -- reading ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Run several SELECTs in one read transaction (SQLite's shared lock)."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.rollback()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM captions").fetchone()[0])

    def keys(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT relpath FROM captions")}

    def hashes(self) -> dict[str, str]:
        """relpath -> SHA-256 of the bytes each caption was made from."""
        return dict(self._db.execute("SELECT relpath, sha256 FROM captions").fetchall())

    def failures(self) -> dict[str, str]:
        """relpath -> decoding error of the images that could not be captioned."""
        return dict(self._db.execute("SELECT relpath, error FROM failures ORDER BY relpath"))

    _COLUMNS = "relpath, sha256, caption, vector, checksum"

    def get(self, relpath: str) -> CaptionRecord:
        row = self._db.execute(
            f"SELECT {self._COLUMNS} FROM captions WHERE relpath = ?", (relpath,)
        ).fetchone()
        if row is None:
            raise KeyError(relpath)
        if not _intact(row):
            raise self.damaged_error([relpath])
        return self._record(row)

    def __iter__(self) -> Iterator[CaptionRecord]:
        for row in self._db.execute(f"SELECT {self._COLUMNS} FROM captions ORDER BY relpath"):
            if not _intact(row):
                raise self.damaged_error(self.damaged())
            yield self._record(row)

    def _record(self, row: tuple) -> CaptionRecord:
        return CaptionRecord(row[0], row[1], row[2], np.frombuffer(row[3], dtype=np.float32).copy())

    # -- integrity ----------------------------------------------------------------------------
    def damaged(self) -> list[str]:
        """Keys of the rows whose checksum disagrees with their contents (sorted)."""
        with self._snapshot():
            rows = self._db.execute(f"SELECT {self._COLUMNS} FROM captions ORDER BY relpath")
            return [row[0] for row in rows if not _intact(row)]

    def integrity_check(self) -> list[str]:
        """SQLite's ``PRAGMA integrity_check``: ``["ok"]`` or the problems it found."""
        try:
            return [r[0] for r in self._db.execute("PRAGMA integrity_check").fetchall()]
        except sqlite3.DatabaseError as err:
            return [str(err)]

    def repair_command(self) -> str:
        """The command that drops damaged rows and re-captions exactly the missing ones."""
        return f"{self.fill_command()} --verify"

    def damaged_error(self, relpaths: list[str]) -> IntegrityError:
        """The error of damaged rows: the store, the images and the command that redoes them."""
        named = ", ".join(relpaths[:MAX_NAMED])
        more = f" and {len(relpaths) - MAX_NAMED} more" if len(relpaths) > MAX_NAMED else ""
        return IntegrityError(
            f"caption store {self.path}: {len(relpaths)} row(s) fail their checksum (damaged on "
            f"disk; images: {named}{more}); they are not used. Re-caption exactly them with: "
            f"{self.repair_command()} (--verify drops the damaged rows and images changed "
            "since, then captions what is missing)"
        )

    def fill_command(self, dataset: str | None = None, root: str | Path | None = None) -> str:
        """The ``bimors caption`` command that completes this store."""
        return caption_command(
            dataset or self.source.get("dataset"),
            root or self.source.get("root"),
            self.path,
            self.provenance,
        )

    def vectors(
        self,
        relpaths: list[str],
        fill_command: str | None = None,
        expect: Mapping[str, Any] | None = None,
    ) -> torch.Tensor:
        """Vectors (N, dim) in the order of ``relpaths``, read in bulk.

        Refuses a store whose provenance disagrees with ``expect`` (see
        :func:`~bimors.captions.provenance.expected_provenance`), and a store
        that lacks any key, with the count of missing keys and the command
        that fills them (``fill_command``, else one built from the store).
        """
        if expect:
            self.check(
                expect,
                "the run config",
                "point captions.store at a store made with the configured models, set "
                "captions.captioner/encoder to the store's, or make a new store: "
                + caption_command(
                    self.source.get("dataset"), self.source.get("root"), None, expect
                ),
            )
        found: dict[str, bytes] = {}
        damaged: list[str] = []
        unique = sorted(set(relpaths))
        with self._snapshot():  # one view of the store, even while a caption job commits
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(
                    f"SELECT {self._COLUMNS} FROM captions WHERE relpath IN ({marks})", chunk
                ):
                    if _intact(row):
                        found[row[0]] = row[3]
                    else:
                        damaged.append(row[0])
        if damaged:
            raise self.damaged_error(sorted(damaged))
        missing = [r for r in unique if r not in found]
        if missing:
            filler = held_by(self.path)
            if filler:
                raise DataError(
                    f"caption store {self.path} lacks {len(missing)} of {len(unique)} images "
                    f"and is being filled by {filler} right now; start this run when that "
                    "caption job has finished"
                )
            failed = self.failures()
            n_failed = sum(r in failed for r in missing)
            note = (
                f"; {n_failed} of them failed to decode (`bimors captions show {self.path} "
                "--failures`): replace those files or drop them from the split"
                if n_failed
                else ""
            )
            raise DataError(
                f"caption store {self.path} lacks {len(missing)} of {len(unique)} images "
                f"(first: {', '.join(missing[:3])}){note}; fill them with: "
                f"{fill_command or self.fill_command()}"
            )
        arr = np.stack([np.frombuffer(found[r], dtype=np.float32) for r in relpaths])
        return torch.from_numpy(arr.copy())


def _intact(row: tuple) -> bool:
    """Whether a (relpath, sha256, caption, vector, checksum) row passes its checksum."""
    relpath, sha, caption, vector, stored = row
    return stored == row_checksum(relpath, sha, caption, bytes(vector))
