"""Checksummed, resumable HTTP downloads and safe archive extraction.

Standard library only (``urllib``): the toolkit needs one GET with a
``Range`` header and a digest, which does not justify a new dependency.
A download goes to ``<dest>.part``; an interrupted one resumes from the bytes
already there (HTTP ``Range``; a server that ignores it restarts the file),
and only a file whose checksum matches is renamed to ``dest``. A mismatch
deletes the partial file and says so, so a rerun starts clean.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from bimors.core.errors import DataError
from bimors.core.progress import on_terminal

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "bimors-data/1 (+https://github.com/ipankhi/BiMoRS)"


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks (archives are gigabytes)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_digest(path: Path, sha256: str | None = None, md5: str | None = None) -> str | None:
    """None when ``path`` matches the given sums, else a sentence saying what differs."""
    for algorithm, expected in (("sha256", sha256), ("md5", md5)):
        if expected:
            got = file_digest(path, algorithm)
            if got.lower() != expected.lower():
                return f"{algorithm.upper()} of {path} is {got}, expected {expected}"
    return None


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (or rewrite it when Range is ignored)."""
    offset = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send: the part is complete
            logger.info("%s: already complete (%d bytes)", part.name, offset)
            return
        raise
    with resp:
        status = getattr(resp, "status", 200)
        if offset and status == 206:
            match = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise DataError(
                    f"{url} answered a resume request with range "
                    f"{resp.headers.get('Content-Range')!r}; delete {part} and run again"
                )
            mode = "ab"
            logger.info("resuming %s at byte %d", part.name, offset)
        else:
            if offset:
                logger.info("%s ignores HTTP Range; downloading %s from the start", url, part.name)
            mode, offset = "wb", 0
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        with (
            open(part, mode) as fh,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=part.name.removesuffix(".part"),
                disable=not (progress and on_terminal()),
            ) as bar,
        ):
            for block in iter(lambda: resp.read(CHUNK), b""):
                fh.write(block)
                bar.update(len(block))
            fh.flush()
            os.fsync(fh.fileno())


def download_file(
    urls: Sequence[str],
    dest: str | Path,
    sha256: str | None = None,
    md5: str | None = None,
    timeout: float = 60.0,
    progress: bool = False,
) -> Path:
    """Download the first reachable of ``urls`` to ``dest``, resuming and checking sums.

    Returns ``dest`` at once if it already exists with the right checksum.

    Raises:
        DataError: no mirror could be reached (with every error), or the
            checksum differs (the partial file is removed).
    """
    if not (sha256 or md5):
        raise ValueError("download_file needs sha256 or md5: unchecked downloads are not allowed")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        problem = check_digest(dest, sha256, md5)
        if problem is None:
            logger.info("%s is already there and its checksum matches", dest)
            return dest
        raise DataError(f"{problem}; delete {dest} and run the download again")
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in urls:
        try:
            _fetch(url, part, timeout, progress)
            break
        except (urllib.error.URLError, OSError, ValueError) as err:
            errors.append(f"{url}: {err}")
            logger.warning("could not download from %s (%s)", url, err)
    else:
        kept = (
            f"; {part.stat().st_size} bytes kept in {part}, a rerun resumes"
            if part.exists()
            else ""
        )
        raise DataError(
            f"could not download {dest.name} from any source ({'; '.join(errors)}){kept}. "
            f"Without network access, fetch it on a connected machine and copy it to {dest}"
        )
    problem = check_digest(part, sha256, md5)
    if problem is not None:
        part.unlink()
        raise DataError(
            f"{problem}: the download is corrupt or the source changed; the partial file was "
            "removed, run the command again (if it fails again, the source no longer serves "
            "the pinned file)"
        )
    os.replace(part, dest)
    return dest


def _safe_members(names: list[str], archive: Path) -> None:
    for name in names:
        parts = Path(name).parts
        if Path(name).is_absolute() or ".." in parts:
            raise DataError(f"{archive} holds an unsafe path {name!r}; refusing to extract it")


def extract_archive(archive: str | Path, into: str | Path) -> Path:
    """Extract a .zip or .tar(.gz) into ``into``, atomically per top-level entry.

    Entries are unpacked into a temporary folder beside the target and then
    moved into place, so an interrupted extraction leaves no half folder. A
    marker file makes a second call a no-op. Existing entries are never
    overwritten: a clash is an error naming the path.
    """
    archive, into = Path(archive), Path(into)
    marker = into / f".{archive.name}.extracted"
    if marker.exists():
        return into
    into.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", dir=into))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _safe_members(zf.namelist(), archive)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                _safe_members(tf.getnames(), archive)
                if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
                    tf.extractall(tmp, filter="data")
                else:  # members were checked above
                    tf.extractall(tmp)
        else:
            raise DataError(f"{archive} is neither a zip nor a tar archive; delete it and rerun")
        for entry in sorted(tmp.iterdir()):
            target = into / entry.name
            if target.exists():
                raise DataError(
                    f"{target} already exists; move it away before extracting {archive.name}"
                )
            os.replace(entry, target)
        marker.touch()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return into
