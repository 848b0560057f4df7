"""Decode every image a run will read before it starts, and name every bad one at once.

A truncated test image found by a DataLoader worker after ten epochs costs the
whole run and names one file of many. :func:`check_images` decodes each image
once (threads; Pillow releases the GIL while decoding) and remembers the good
ones by size and modification time in the user cache, so the next run of the
same data only stats its files. Every bad file is listed in one
:class:`~bimors.core.errors.DataError`, which also writes a ready exclude list
(the run's own exclusions plus the bad files) and says how to pass it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bimors.core import atomic
from bimors.core.errors import DataError, StorageError
from bimors.core.progress import progress as progress_bar
from bimors.data.images import image_problem
from bimors.data.published import cache_dir, path_key

logger = logging.getLogger(__name__)

FORMAT = "bimors-image-checks/1"


def _checks_file(image_root: Path) -> Path:
    return cache_dir() / "image-checks" / f"{path_key(image_root)}.json"


def _signature(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def _load(file: Path, image_root: Path) -> dict[str, list[int]]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if data.get("format") != FORMAT or data.get("image_root") != str(image_root):
        return {}
    good = data.get("good", {})
    return good if isinstance(good, dict) else {}


def find_bad_images(
    image_root: str | Path,
    relpaths: Iterable[str],
    workers: int | None = None,
    progress: bool = False,
    remember: bool = True,
) -> dict[str, str]:
    """``relpath -> problem`` of every image that is missing, empty or does not decode.

    Images that decoded before and have not changed since (same size and
    modification time) are not decoded again when ``remember`` is on.
    """
    root = Path(image_root).absolute()
    todo = sorted(set(relpaths))
    file = _checks_file(root)
    good = _load(file, root) if remember else {}
    signatures = {r: _signature(root / r) for r in todo}
    bad = {r: "missing" for r, sig in signatures.items() if sig is None}
    fresh = [r for r in todo if r not in bad and good.get(r) != signatures[r]]
    if fresh:
        workers = workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max(1, workers)) as pool:
            results = pool.map(lambda r: image_problem(root / r), fresh)
            for r, problem in progress_bar(
                zip(fresh, results, strict=True),
                total=len(fresh),
                desc="check images",
                enabled=progress,
                unit="img",
            ):
                if problem is None:
                    good[r] = signatures[r]  # type: ignore[assignment]
                else:
                    bad[r] = problem
        if remember:
            try:
                atomic.write_json(file, {"format": FORMAT, "image_root": str(root), "good": good})
            except (StorageError, OSError) as err:  # a cache: never worth failing a run for
                logger.debug("cannot remember image checks in %s: %s", file, err)
    return dict(sorted(bad.items()))


def exclude_file_for(name: str, image_root: str | Path) -> Path:
    """Where a ready-made exclude list of dataset ``name`` is written."""
    return cache_dir() / "excludes" / f"{name}-{path_key(Path(image_root))}.txt"


def check_images(
    name: str,
    image_root: str | Path,
    relpaths: Iterable[str],
    already_excluded: Iterable[str] = (),
    excludable: bool = True,
    workers: int | None = None,
    progress: bool = False,
) -> None:
    """Raise one DataError naming every bad image of ``relpaths`` (nothing if all decode).

    With ``excludable`` (the dataset takes ``data.exclude``) an exclude list
    holding ``already_excluded`` and the bad files is written, and the message
    gives the option that uses it.
    """
    bad = find_bad_images(image_root, relpaths, workers, progress)
    if not bad:
        return
    shown = "; ".join(f"{r} ({p})" for r, p in list(bad.items())[:20])
    more = f"; ... and {len(bad) - 20} more" if len(bad) > 20 else ""
    head = f"{len(bad)} image(s) of {name} under {image_root} cannot be used: {shown}{more}"
    if not excludable:
        raise DataError(
            f"{head}. Replace them with good copies (this dataset is a transfer target, "
            "which takes no exclude list; checked before any training or evaluation)"
        )
    listing = exclude_file_for(name, image_root)
    try:
        lines = sorted(set(already_excluded) | set(bad))
        atomic.write_text(listing, "".join(r + "\n" for r in lines))
        how = f"to leave them out, rerun with --set data.exclude={listing}"
    except StorageError as err:
        how = f"list them in a file and rerun with --set data.exclude=FILE ({err})"
    raise DataError(
        f"{head}. Replace them with good copies, or {how} (checked before any training or "
        "evaluation)"
    )
