"""The caption job: caption and encode every image the store lacks, batch by batch.

Resumable: each batch (captions, vectors and decoding failures) is committed
in one transaction, and batches are cut from the whole job (see
:mod:`bimors.captions.plan`), so rerunning the same command after a kill at
any moment finishes the job with a store equal to an uninterrupted run.

Sharded: under ``accelerate launch`` (or ``torchrun``) with N processes,
process r takes every N-th batch and commits into its own part file beside
the store; process 0 merges the parts when all are done. Parts left by a
killed run, whatever its process count, are merged at the start of the next.

One filler at a time: the job holds ``<store>.lock`` (see
:mod:`bimors.core.locks`) while it writes, and a second job on the same
store is refused with the holder's name, as it would caption the same images
again. Readers (training runs) need no lock: SQLite lets them read the
committed batches while the job writes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from bimors.captions.captioner import Captioner
from bimors.captions.encoder import CaptionEncoder
from bimors.captions.plan import plan_batches
from bimors.captions.provenance import identity, job_provenance
from bimors.captions.reader import read_batches
from bimors.captions.store import CaptionStore
from bimors.captions.verify import check_hashes
from bimors.core.errors import DataError
from bimors.core.locks import RunLock
from bimors.core.progress import progress as progress_bar
from bimors.core.stop import stop_on_signals, test_pause

logger = logging.getLogger(__name__)

#: In a log file (no terminal), a caption job logs one progress line per this many batches.
LOG_EVERY_BATCHES = 20

MAX_LISTED = 20


class Processes(Protocol):
    """What the job needs of ``accelerate.PartialState``."""

    process_index: int
    num_processes: int

    def wait_for_everyone(self) -> None: ...


def part_path(store_path: Path, rank: int) -> Path:
    """Where process ``rank`` of a sharded job commits its batches."""
    return store_path.with_name(f"{store_path.name}.part{rank}.sqlite")


def leftover_parts(store_path: Path) -> list[Path]:
    return sorted(store_path.parent.glob(f"{store_path.name}.part*.sqlite"))


def merge_parts(store: CaptionStore) -> None:
    """Fold every part file beside ``store`` into it (idempotent)."""
    for part in leftover_parts(store.path):
        n = store.absorb(part)
        logger.info("merged %d rows of %s into %s", n, part.name, store.path)


def caption_images(
    root: str | Path,
    relpaths: list[str],
    store_path: str | Path,
    captioner: Captioner,
    encoder: CaptionEncoder,
    batch_size: int = 16,
    progress: bool = True,
    *,
    num_workers: int = 0,
    verify: bool = False,
    processes: Processes | None = None,
    source: Mapping[str, Any] | None = None,
    groups: Sequence[Sequence[str]] | None = None,
) -> CaptionStore:
    """Caption every image of ``relpaths`` under ``root`` that the store lacks.

    Args:
        root: folder the relpaths are relative to.
        relpaths: the images (the store's keys).
        store_path: the store file, created if absent.
        captioner, encoder: the frozen models.
        batch_size: images per generation batch.
        progress: show a progress bar (rate and ETA) on the main process.
        num_workers: DataLoader workers reading and decoding images.
        verify: first re-hash the images already in the store and re-caption
            those whose bytes changed.
        processes: the ``accelerate.PartialState`` of a sharded job; None for
            one process.
        source: dataset name and root, recorded to print the command that
            fills the store.
        groups: ``relpaths`` in groups batched one after the other (see
            :func:`~bimors.captions.plan.plan_batches`); None: one group.

    Returns:
        The store, open (read-only on processes other than the main one).

    Raises:
        DataError: listing the images that could not be read or decoded,
            after all the others are captioned and committed.
    """
    root, store_path = Path(root), Path(store_path)
    rank = processes.process_index if processes else 0
    keys = sorted(set(relpaths))
    if groups is not None and set().union(*map(set, groups)) != set(keys):
        raise ValueError("groups must hold exactly the relpaths")
    lock = RunLock(store_path, "caption store")
    if rank == 0:
        try:
            held = lock.acquire()
        except OSError as err:
            raise DataError(
                f"cannot create the caption store's lock file {lock.path} ({err}); pass --store "
                "with a writable location"
            ) from None
        if not held:
            raise DataError(
                f"caption store {store_path} is being filled by {lock.holder()} (lock file "
                f"{lock.path}); wait for that job to finish, then rerun this command: it "
                "captions only what is still missing. If no such job runs any more, delete "
                "the lock file"
            )
    try:
        return _fill(
            root,
            keys,
            store_path,
            captioner,
            encoder,
            batch_size,
            progress,
            num_workers,
            verify,
            processes,
            source,
            groups,
        )
    finally:
        lock.release()


def _fill(
    root: Path,
    keys: list[str],
    store_path: Path,
    captioner: Captioner,
    encoder: CaptionEncoder,
    batch_size: int,
    progress: bool,
    num_workers: int,
    verify: bool,
    processes: Processes | None,
    source: Mapping[str, Any] | None,
    groups: Sequence[Sequence[str]] | None,
) -> CaptionStore:
    """:func:`caption_images` once the store's lock is held (by process 0)."""
    rank, world = (processes.process_index, processes.num_processes) if processes else (0, 1)
    barrier = processes.wait_for_everyone if processes else (lambda: None)
    prov = job_provenance(captioner, encoder)
    if rank == 0:
        with CaptionStore.open_or_create(store_path, prov, source) as store:
            store.check_intact()
            merge_parts(store)
            damaged = store.damaged()  # rows failing their checksum are never kept as done
            if damaged and not verify:
                raise store.damaged_error(damaged)
            if verify:
                store.discard(damaged)
                if damaged:
                    logger.warning("verify: dropped %d damaged rows to caption again", len(damaged))
                report = check_hashes(root, store.hashes(), keys, progress)
                stale = report.changed + report.unreadable
                logger.info("verify: %d of %d captions are stale", len(stale), report.checked)
                store.discard(stale)
    barrier()
    with CaptionStore(store_path, readonly=world > 1) as store:
        store.check(identity(prov), "this job", "pass a new --store path")
        done, failed = store.keys(), set(store.failures())
    batches = plan_batches(groups or keys, done, failed, batch_size)
    mine = batches[rank::world]
    logger.info(
        "%d of %d images to caption (%d batches%s) into %s",
        sum(map(len, batches)),
        len(keys),
        len(batches),
        f", process {rank} of {world} takes {len(mine)}" if world > 1 else "",
        store_path,
    )
    target = store_path if world == 1 else part_path(store_path, rank)
    with CaptionStore.open_or_create(target, prov, source) as out:
        _caption_batches(root, mine, captioner, encoder, out, num_workers, progress and rank == 0)
    barrier()
    if rank == 0 and world > 1:
        with CaptionStore(store_path) as store:
            merge_parts(store)
    barrier()
    store = CaptionStore(store_path, readonly=rank != 0)
    failures = {k: e for k, e in store.failures().items() if k in set(keys)}
    if failures:
        store.close()
        listing = "\n  ".join(f"{e}" for e in list(failures.values())[:MAX_LISTED])
        more = len(failures) - MAX_LISTED
        if more > 0:
            listing += f"\n  ... and {more} more (`bimors captions show {store_path} --failures`)"
        raise DataError(
            f"{len(failures)} of {len(keys)} images could not be captioned; all others are in "
            f"{store_path}:\n  {listing}\nreplace or remove these files and rerun the same command"
        )
    return store


def _caption_batches(
    root: Path,
    batches: list[list[str]],
    captioner: Captioner,
    encoder: CaptionEncoder,
    out: CaptionStore,
    num_workers: int,
    progress: bool,
) -> None:
    """Caption, encode and commit each batch; decoding failures are committed as such."""
    every = LOG_EVERY_BATCHES * max(map(len, batches), default=1)
    bar = progress_bar(
        total=sum(map(len, batches)), desc="captions", unit="img", enabled=progress, every=every
    )
    with bar, stop_on_signals() as flag:
        for done, loaded in enumerate(read_batches(root, batches, num_workers), 1):
            ok = [x for x in loaded if x.error is None]
            bad = [(x.relpath, x.error) for x in loaded if x.error is not None]
            records = []
            if ok:
                texts = captioner.caption([x.image for x in ok])
                vectors = encoder.encode(texts)
                records = [
                    (x.relpath, x.sha256, t, v) for x, t, v in zip(ok, texts, vectors, strict=True)
                ]
            out.commit(records, bad)
            for _, error in bad:
                logger.warning("%s", error)
            bar.update(len(loaded))
            test_pause(done)
            flag.check(f"batch {done} of {len(batches)} (committed)")  # the lock goes with it
