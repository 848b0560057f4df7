"""The published split files of the RS protocols: where to find them, and their pins.

APPLeNet (CVPRW 2023) published train/val/test splits for seven datasets in
its repository's ``json/`` folder; BiMoRS follows them. We never ship those
files. A dataset looks for its split file, in order:

1. an explicit ``split_file`` argument;
2. ``<root>/<name>.json`` (where APPLeNet tells users to put it);
3. every folder in ``$BIMORS_REFERENCE_SPLITS`` (``os.pathsep``-separated),
   e.g. a shared copy on an offline cluster;
4. the user cache, ``$BIMORS_CACHE/splits`` (default ``$XDG_CACHE_HOME/bimors``
   or ``~/.cache/bimors``);
5. otherwise it fetches the file from GitHub into the cache.

Every file found or fetched must match the pinned SHA-256 below (unless the
caller opts out deliberately). The URL uses GitHub's ``/raw/<commit>/`` form
with the abbreviated commit ``6819a9b``, which github.com resolves and
redirects to raw.githubusercontent.com; we could not confirm the full 40-hex
hash with our tools, and the SHA-256 pin is what guarantees the content.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path

from bimors.core.errors import DataError
from bimors.data.download import check_digest, download_file

logger = logging.getLogger(__name__)

APPLENET_REPO = "mainaksingha01/APPLeNet"
APPLENET_COMMIT = "6819a9b"
SPLIT_URLS = (
    f"https://github.com/{APPLENET_REPO}/raw/{APPLENET_COMMIT}/json/{{file}}",
    f"https://raw.githubusercontent.com/{APPLENET_REPO}/{APPLENET_COMMIT}/json/{{file}}",
)


@dataclasses.dataclass(frozen=True)
class PublishedSplit:
    """One published split file: its name, SHA-256 and (train, val, test) sizes."""

    filename: str
    sha256: str
    counts: tuple[int, int, int]

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(u.format(file=self.filename) for u in SPLIT_URLS)


#: The seven published files (APPLeNet ``json/`` at commit 6819a9b). MLRSNet has none.
PUBLISHED_SPLITS: dict[str, PublishedSplit] = {
    "patternnet": PublishedSplit(
        "patternnet.json",
        "db971a7a485c8c1d2d2e6e962e8bbadb5ec36977b4947c42bdad3c0168db29e4",
        (14896, 6384, 9120),
    ),
    "rsicd": PublishedSplit(
        "rsicd.json",
        "9d31238de620ab89152bd9ed2897ff8b3552d7bddf88a9c00b0e342c86a96a97",
        (4887, 2112, 3001),
    ),
    "resisc45": PublishedSplit(
        "resisc45.json",
        "9458dfb3e0c5cff5bfc305398d1237f2bb6bf6adb199c09229c3df0417ec1a70",
        (15435, 6615, 9450),
    ),
    "patternnetv2": PublishedSplit(
        "patternnetv2.json",
        "2db9f8f14226c52f5d857e0d323b1cc21761ed2d1a378b7cd520e52d1c1b8df0",
        (6272, 2688, 3840),
    ),
    "rsicdv2": PublishedSplit(
        "rsicdv2.json",
        "191adf02a1a76d64e4e840fa8383bd141ab2b45f93ef29263a5d5fc25ea2ea77",
        (2620, 1132, 1608),
    ),
    "resisc45v2": PublishedSplit(
        "resisc45v2.json",
        "8e8c7bf1b316e0c6936dcba33a393903c52910ba375ef5fed47bf577319d0f49",
        (5488, 2352, 3360),
    ),
    "mlrsnetv2": PublishedSplit(
        "mlrsnetv2.json",
        "759e826e7f706afc822253947c4dd6926a9e5906664685b4f5d44dcdf12ca4d6",
        (19163, 8219, 11741),
    ),
}


def cache_dir() -> Path:
    """The user cache: ``$BIMORS_CACHE``, ``$XDG_CACHE_HOME/bimors`` or ``~/.cache/bimors``."""
    if os.environ.get("BIMORS_CACHE"):
        return Path(os.environ["BIMORS_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "bimors"


def reference_dirs() -> list[Path]:
    """Folders named by ``$BIMORS_REFERENCE_SPLITS`` that may hold published files."""
    raw = os.environ.get("BIMORS_REFERENCE_SPLITS", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]


def split_candidates(spec: PublishedSplit, root: Path) -> list[Path]:
    """Where a published file is looked for, in order (explicit path aside)."""
    return [
        root / spec.filename,
        *(d / spec.filename for d in reference_dirs()),
        cache_dir() / "splits" / spec.filename,
    ]


def _checked(path: Path, spec: PublishedSplit, check: bool) -> Path:
    if check:
        problem = check_digest(path, sha256=spec.sha256)
        if problem is not None:
            raise DataError(
                f"split file {path} is not the published {spec.filename} ({problem}). Delete it "
                "so the published file is used (fetched again if needed), or, to use your own "
                "split on purpose, pass it with --set data.split_file=FILE --set "
                "data.check_split=false (bimors train/run), --split-file FILE --custom-split "
                "(bimors caption, data verify), or split_file=FILE, check_split=False in Python"
            )
    return path


def fetch_split(spec: PublishedSplit, progress: bool = False) -> Path:
    """Download ``spec`` into the cache and check its SHA-256; returns the cached path."""
    dest = cache_dir() / "splits" / spec.filename
    try:
        return download_file(spec.urls, dest, sha256=spec.sha256, progress=progress)
    except DataError as err:
        raise DataError(
            f"{err}. The published split {spec.filename} is needed: on a connected machine run "
            f"`bimors data download <dataset> --root DIR` (it caches the file in {dest.parent}), "
            f"or download {spec.urls[0]} by hand and put it at {dest} or in the dataset folder "
            f"(SHA-256 {spec.sha256})"
        ) from None


def resolve_split_file(
    spec: PublishedSplit,
    root: Path,
    explicit: Path | None = None,
    fetch: bool = True,
    check: bool = True,
) -> Path:
    """The path of the published split ``spec``, checked against its pin.

    Args:
        spec: which published file.
        root: the dataset folder (searched first).
        explicit: a user-given split file; used as is, but checked unless ``check`` is False.
        fetch: download into the cache when no local copy exists.
        check: compare SHA-256 with the pin (False only for a deliberate custom split).
    """
    if explicit is not None:
        if not explicit.is_file():
            raise DataError(f"split file {explicit} does not exist; check the path")
        return _checked(explicit, spec, check)
    for path in split_candidates(spec, root):
        if path.is_file():
            return _checked(path, spec, check)
    if not fetch:
        places = ", ".join(str(p) for p in split_candidates(spec, root))
        raise DataError(
            f"published split {spec.filename} not found (looked in {places}) and fetching is "
            f"off; download {spec.urls[0]} (SHA-256 {spec.sha256}) into one of those places"
        )
    logger.info("fetching published split %s into %s", spec.filename, cache_dir() / "splits")
    return fetch_split(spec)


def path_key(path: Path) -> str:
    """A short stable key of an absolute path, to name per-folder cache files."""
    return hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:12]
