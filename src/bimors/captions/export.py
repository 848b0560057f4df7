"""Captions as rows for people: text listings and JSONL/CSV exports of a store.

Users should read what the captioner saw before trusting a method built on
it; these rows carry the caption and the image hash, and images that failed
to decode appear with their error instead of a caption.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bimors.captions.store import CaptionStore
from bimors.core import atomic
from bimors.core.errors import ConfigError

FORMATS = ("jsonl", "csv")
FIELDS = ("relpath", "caption", "sha256", "error")


def caption_rows(store: CaptionStore, failures: bool = True) -> Iterator[dict[str, Any]]:
    """One dict per image, sorted by relpath; failures (caption None) after the captions."""
    for rec in store:
        yield {"relpath": rec.relpath, "caption": rec.caption, "sha256": rec.sha256, "error": None}
    if failures:
        for relpath, error in store.failures().items():
            yield {"relpath": relpath, "caption": None, "sha256": None, "error": error}


def export_format(path: str | Path, fmt: str | None = None) -> str:
    """``fmt`` if given, else from the file suffix (.jsonl/.json or .csv)."""
    if fmt is None:
        suffix = Path(path).suffix.lower()
        fmt = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}.get(suffix)
        if fmt is None:
            raise ConfigError(
                f"cannot tell the export format of {path}; name it .jsonl or .csv, "
                "or pass --format jsonl|csv"
            )
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    return fmt


def export_captions(
    store: CaptionStore, out: str | Path, fmt: str | None = None, failures: bool = True
) -> int:
    """Write the store's captions to ``out`` atomically; returns the number of rows."""
    fmt = export_format(out, fmt)
    n = 0
    # newline="" leaves line endings to the writers (csv writes \r\n, as RFC 4180 asks).
    with atomic.atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS) if fmt == "csv" else None
        if writer:
            writer.writeheader()
        for row in caption_rows(store, failures):
            if writer:
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
            else:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n
