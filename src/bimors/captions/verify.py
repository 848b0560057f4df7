"""Check that the images a store describes are still the images on disk.

A store row records the SHA-256 of the bytes its caption was made from.
Hashing every image costs a full read of the dataset, so it is not done on
every training run (the trainer trusts the keys); it is done on demand by
``bimors captions verify STORE --root DIR`` (report only) and by
``bimors caption ... --verify`` (re-caption the changed images).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bimors.captions.reader import file_sha256
from bimors.core.progress import progress as progress_bar


@dataclass
class VerifyReport:
    """Outcome of hashing the images of a store."""

    checked: int = 0
    changed: list[str] = field(default_factory=list)  # bytes differ from the captioned ones
    unreadable: list[str] = field(default_factory=list)  # missing or unreadable now

    @property
    def ok(self) -> bool:
        return not self.changed and not self.unreadable


def _hash_or_none(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def check_hashes(
    root: str | Path,
    hashes: Mapping[str, str],
    keys: Iterable[str] | None = None,
    progress: bool = False,
    threads: int = 8,
) -> VerifyReport:
    """Hash ``root/relpath`` for each recorded key (or those of ``keys`` in the store).

    Hashing is I/O bound, so a thread pool reads several files at once.
    """
    root = Path(root)
    todo = sorted(hashes if keys is None else (k for k in set(keys) if k in hashes))
    report = VerifyReport(checked=len(todo))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        found = pool.map(lambda r: _hash_or_none(root / r), todo)
        bar = progress_bar(found, total=len(todo), desc="verify", unit="img", enabled=progress)
        for relpath, sha in zip(todo, bar, strict=True):
            if sha is None:
                report.unreadable.append(relpath)
            elif sha != hashes[relpath]:
                report.changed.append(relpath)
    return report
