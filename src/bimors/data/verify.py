"""Check a dataset copy and report every problem, not just the first.

``verify_dataset`` looks at the layout (class folders missing or extra), the
split file (found, checksum, label order), the counts (every listed image
present, images on disk that the split does not list), the exclude list, and
decodes every image. Each problem names the file and the fix. Unlike loading,
it never stops early and never writes: a seeded split that does not exist yet
is computed in memory only.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from bimors.core.errors import DataError
from bimors.core.progress import progress as progress_bar
from bimors.data.base import (
    IMAGE_EXTENSIONS,
    SceneDataset,
    dangling_links,
    list_images,
    not_utf8,
    printable,
)
from bimors.data.images import BAD_IMAGE_FIX, image_problem
from bimors.data.split import Split, seeded_split

logger = logging.getLogger(__name__)

Severity = Literal["error", "warning"]

_RENAME = "rename it to UTF-8 (for example `convmv -f latin1 -t utf8 --notest NAME`)"


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset copy: where, what, and how to fix it."""

    path: str
    issue: str
    fix: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {printable(self.path)}: {self.issue}; fix: {self.fix}"


@dataclasses.dataclass
class VerifyReport:
    dataset: str
    root: Path
    image_root: Path | None = None
    split_file: Path | None = None
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    checked: int = 0
    excluded: list[str] = dataclasses.field(default_factory=list)
    #: dangling symbolic links in the class folders (left out like excluded files)
    dangling: list[str] = dataclasses.field(default_factory=list)
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def bad_images(self) -> list[str]:
        """Relpaths whose files are missing or do not decode: a ready-made exclude list."""
        base = self.image_root
        out = []
        for p in self.errors:
            if p.issue.startswith(("missing", "empty", "not an image", "corrupt")) and base:
                path = Path(p.path)
                if path.is_relative_to(base):
                    out.append(path.relative_to(base).as_posix())
        return sorted(set(out))


def _layout(ds: SceneDataset, report: VerifyReport) -> dict[str, Path]:
    found, missing, extra = ds.class_folders()
    if ds.find_image_root() is None:
        report.problems.append(
            Problem(str(ds.root), "no class folders found", f"arrange it as {ds.info.layout}")
        )
        return found
    base = ds.image_root
    for c in missing:
        report.problems.append(
            Problem(str(base / c), "class folder missing", f"restore it ({ds.info.layout})")
        )
    for p in sorted(base.iterdir()):
        if not_utf8(p.name):
            report.problems.append(Problem(str(p), "name is not valid UTF-8", _RENAME))
    for name in extra:
        if not_utf8(name):
            continue
        report.problems.append(
            Problem(str(base / name), "unexpected folder (not a class)", f"move it out of {base}")
        )
    for folder in found.values():
        for link in dangling_links(folder):
            report.dangling.append(link.relative_to(base).as_posix())
            report.problems.append(
                Problem(
                    str(link),
                    f"dangling symbolic link (its target {printable(os.readlink(link))} does "
                    "not exist): left out",
                    "point it at the image, or remove it",
                    "warning",
                )
            )
        for f in sorted(folder.iterdir()):
            if not_utf8(f.name):
                report.problems.append(Problem(str(f), "name is not valid UTF-8", _RENAME))
            elif (
                f.is_file()
                and not f.name.startswith(".")
                and f.suffix.lower() not in IMAGE_EXTENSIONS
            ):
                report.problems.append(
                    Problem(
                        str(f), "not an image file (ignored by the loader)", "remove it", "warning"
                    )
                )
    return found


def _split(ds: SceneDataset, found: dict[str, Path], report: VerifyReport) -> Split | None:
    """The split to check against, or None (with a problem) when it cannot be had."""
    if ds.published is None:
        path = ds.split_file or ds.default_split_file()
        if not path.is_file():
            base = ds.image_root
            items = [
                (f.relative_to(base).as_posix(), c)
                for c, folder in found.items()
                for f in list_images(folder)
                if not not_utf8(f.name)  # reported by _layout
            ]
            report.problems.append(
                Problem(
                    str(path),
                    "no split file yet",
                    "none needed: the first run makes and saves a seeded split",
                    "warning",
                )
            )
            try:
                return seeded_split(items, [c for c in ds.classnames if c in found], ds.split_seed)
            except DataError as err:
                report.problems.append(Problem(str(base), str(err), "add images to the class"))
                return None
    try:
        split = ds.load_split()
    except DataError as err:
        report.problems.append(Problem(str(ds.split_file or ds.root), str(err), "see the message"))
        return None
    report.split_file = ds.split_path
    if ds.published is not None and ds.check_split and split.counts() != ds.published.counts:
        report.problems.append(
            Problem(
                str(ds.split_path),
                f"split sizes {split.counts()} differ from the published {ds.published.counts}",
                "use the published split file",
            )
        )
    return split


def verify_dataset(
    ds: SceneDataset, decode: bool = True, workers: int = 4, progress: bool = False
) -> VerifyReport:
    """Every problem of ``ds``'s copy on disk (see the module docstring)."""
    report = VerifyReport(ds.name, ds.root)
    found = _layout(ds, report)
    report.image_root = ds.find_image_root()
    split = _split(ds, found, report)
    base = ds.image_root
    listed: set[str] = split.relpaths() if split is not None else set()
    if split is not None:
        report.counts = dict(zip(("train", "val", "test"), split.counts(), strict=True))
        for r in sorted(ds.exclude - listed):
            report.problems.append(
                Problem(r, "in the exclude list but not in the split", "remove it from the list")
            )
    report.excluded = sorted(ds.exclude & listed)
    on_disk: set[str] = set()
    for folder in found.values():
        files = list_images(folder)
        if not files:
            report.problems.append(Problem(str(folder), "class folder has no images", "add images"))
        on_disk.update(f.relative_to(base).as_posix() for f in files if not not_utf8(f.name))
    for r in sorted(listed - on_disk - ds.exclude):
        if not (base / r).is_file():
            report.problems.append(
                Problem(
                    str(base / r),
                    "missing (listed in the split)",
                    "restore it, or leave it out on purpose with an exclude list",
                )
            )
    if split is not None:
        for r in sorted(on_disk - listed):
            report.problems.append(
                Problem(
                    str(base / r), "not in the split (unused)", "remove it or ignore", "warning"
                )
            )
    if ds.published is None and ds.info.images and len(on_disk) != ds.info.images:
        report.problems.append(
            Problem(
                str(base),
                f"{len(on_disk)} images on disk, {ds.info.images} expected",
                "check the copy is complete",
                "warning",
            )
        )
    todo = sorted((listed or on_disk) - ds.exclude)
    todo = [r for r in todo if (base / r).is_file()]
    if decode:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            results = pool.map(lambda r: image_problem(base / r), todo)
            for r, problem in progress_bar(
                zip(todo, results, strict=True),
                total=len(todo),
                desc=f"decode {ds.name}",
                enabled=progress,
                unit="img",
            ):
                if problem is not None:
                    report.problems.append(Problem(str(base / r), problem, BAD_IMAGE_FIX))
        report.checked = len(todo)
    return report
