"""``bimors data download``: fetch what is public, say exactly what is not.

A dataset's published split is fetched into the user cache and checked; its
images are downloaded (checksummed, resumable) and extracted into the dataset
folder where a public archive exists. Where the source needs a manual step
(a browser, a login, RAR archives), the instructions are returned instead.
A dataset with a Hugging Face repository (``info.hub``) can be materialised
from it instead (``source="hub"``; the default where no archive exists),
and the copy is then checked as ``bimors data verify`` checks it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from bimors.core.errors import DataError
from bimors.data.base import SceneDataset
from bimors.data.download import download_file, extract_archive
from bimors.data.published import fetch_split

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Obtained:
    """What a download did: the split file, the archive, and any manual step left."""

    split_file: Path | None = None
    archive: Path | None = None
    hub: Path | None = None
    manual: str = ""
    layout_problems: list[str] = dataclasses.field(default_factory=list)


def obtain(
    cls: type[SceneDataset],
    root: str | Path,
    mirrors: Sequence[str] = (),
    extract: bool = True,
    progress: bool = False,
    source: str | None = None,
    hub_snapshot: str | Path | None = None,
) -> Obtained:
    """Download ``cls``'s published split and public archive into ``root``.

    Args:
        cls: the dataset class.
        root: the dataset folder (created if needed).
        mirrors: URLs tried before the built-in ones (same bytes, same pinned checksum).
        extract: unpack the archive after the download.
        progress: show progress bars.
        source: ``archive`` or ``hub``; None: the archive if there is one, else the hub.
        hub_snapshot: a local copy of the Hugging Face repository (offline use).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out = Obtained()
    if cls.published is not None:
        out.split_file = fetch_split(cls.published, progress=progress)
    archive = cls.info.archive
    if source is None:
        source = "archive" if archive is not None or cls.info.hub is None else "hub"
    if source not in ("archive", "hub"):
        raise DataError(f"download source {source!r}: choose archive or hub")
    if source == "hub":
        if cls.info.hub is None:
            raise DataError(f"{cls.name} has no Hugging Face source; use --source archive")
        from bimors.data.hub import materialise
        from bimors.data.verify import verify_dataset

        out.hub = materialise(cls, root, hub_snapshot)
        report = verify_dataset(cls(root, fetch=False), decode=False)
        out.layout_problems = [str(p) for p in report.errors]
        return out
    if archive is None:
        out.manual = cls.info.manual or f"see {cls.info.source}"
        return out
    out.archive = download_file(
        [*mirrors, *archive.urls],
        root / archive.filename,
        sha256=archive.sha256,
        md5=archive.md5,
        progress=progress,
    )
    if extract:
        extract_archive(out.archive, root)
        out.layout_problems = cls(root, fetch=False).layout_problems()
    logger.info("%s is in %s", cls.name, root)
    return out
