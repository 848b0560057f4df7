"""The base class of every dataset: where the images are, the split, and class names.

A dataset object knows files, never models. The protocol code asks it for a
:class:`~bimors.data.split.Split` and for the names that go into prompts.

A dataset either has a published split (``published``: fetched, checked
against its SHA-256, its label order is the protocol's) or makes a seeded one
(disjoint 50/20/30 per class) and saves it in the same format beside the
images, so later runs read the same split back. Loading checks the layout
(no class folder missing or extra) and that every listed image exists, and
fails with every offending name rather than the first. Bad images are never
skipped silently: ``exclude`` drops named files on purpose, and
:attr:`SceneDataset.excluded` lists them so a run can save the list.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar, Literal

from bimors.core.errors import ConfigError, DataError
from bimors.data.info import DatasetInfo
from bimors.data.published import PublishedSplit, cache_dir, path_key, resolve_split_file
from bimors.data.split import Split, seeded_split

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
NameStyle = Literal["reference", "readable"]
NAME_STYLES = ("reference", "readable")


def reference_name(folder_name: str) -> str:
    """The reference code's prompt name: underscores become spaces, nothing else."""
    return folder_name.replace("_", " ")


def readable_name(folder_name: str) -> str:
    """A generic readable name: separators and camelCase become spaces, lower case."""
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", folder_name)
    return re.sub(r"[\s_\-]+", " ", text).strip().lower()


def folder_title(title: str) -> str:
    """``"AID folder"``; ``"image folder"`` stays as it is (not "image folder folder")."""
    return title if title.lower().endswith("folder") else f"{title} folder"


def prompt_names(
    classnames: list[str], style: str = "reference", readable: dict[str, str] | None = None
) -> list[str]:
    """Names for prompts in ``style``: the one rule for datasets and names given by hand.

    ``reference`` is the official code's form (underscores become spaces,
    nothing else); ``readable`` uses ``readable`` (a dataset's own map) first,
    then the generic rule (camelCase and separators split, lower case). Both
    leave a name already in prompt form unchanged.
    """
    if style == "reference":
        return [reference_name(c) for c in classnames]
    if style == "readable":
        table = readable or {}
        return [table.get(c, readable_name(c)) for c in classnames]
    raise ConfigError(f"data.classnames: {style!r} is not allowed; choose reference or readable")


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (never file-system order)."""
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def read_exclude(exclude: str | os.PathLike[str] | Iterable[str] | None) -> set[str]:
    """Relpaths to exclude: a file (one relpath per line, ``#`` comments) or a list."""
    if exclude is None:
        return set()
    if isinstance(exclude, (str, os.PathLike)):
        path = Path(exclude)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise DataError(f"exclude file {path} does not exist; check the path") from None
        return {ln.split("#", 1)[0].strip() for ln in lines} - {""}
    return {str(x) for x in exclude}


def scope_exclusions(entries: set[str], dataset: str) -> set[str]:
    """The entries of an exclude list that concern ``dataset``.

    ``NAME:relpath`` names an image of dataset ``NAME`` only (one list can
    then serve a source and targets whose relpaths coincide, e.g.
    ``airport/airport_1.jpg``); a plain ``relpath`` concerns every dataset
    that has it.
    """
    out = set()
    for entry in entries:
        prefix, sep, rest = entry.partition(":")
        if sep and prefix and "/" not in prefix:
            if prefix == dataset:
                out.add(rest)
        else:
            out.add(entry)
    return out


def _preview(items: list[str], n: int = 10) -> str:
    more = f" ... and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(printable(i) for i in items[:n]) + more


def not_utf8(name: str) -> bool:
    """True for a file name whose bytes are not UTF-8 (Python keeps them as surrogates).

    Such a name cannot be written to a split file, a record or a terminal, so
    it is refused by name instead of failing later with ``UnicodeEncodeError``.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def printable(name: str) -> str:
    """``name`` with bytes that are not UTF-8 shown as ``\\xNN`` escapes (safe to print)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def dangling_links(folder: Path) -> list[Path]:
    """Symbolic links directly in ``folder`` whose target does not exist, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_symlink() and not p.exists())


class SceneDataset:
    """A scene-classification dataset under ``root``.

    Subclasses state facts as class attributes: ``name`` (registry name),
    ``folder`` (its usual folder name under a data directory), ``classes``
    (class folders in the protocol's label order; empty = discovered),
    ``image_dirs`` (where under ``root`` the class folders may be, first match
    wins), ``published`` (the published split, if any), ``info`` and
    ``readable_names`` (folder name -> readable prompt name where the generic
    rule is wrong, e.g. RSICD's "denseresidential" -> "dense residential").

    Args:
        root: the dataset folder.
        split_file: an explicit split file (published format).
        split_seed: seed of a seeded split (datasets without a published split).
        exclude: relpaths to leave out on purpose: a file or a list (an entry
            ``NAME:relpath`` concerns dataset ``NAME`` only).
        fetch: allow fetching a published split file from the network.
        check_split: check a published split against its SHA-256 pin; turn off
            only to use your own split file on purpose.
        exclude_shared: the exclude list is shared by every dataset of a run
            (source and transfer targets): entries not in this dataset's
            split belong to another one and are ignored here; the caller
            checks that each entry matched some dataset
            (:func:`bimors.data.check_exclusions`).
    """

    name: ClassVar[str] = ""
    folder: ClassVar[str] = ""
    classes: ClassVar[tuple[str, ...]] = ()
    image_dirs: ClassVar[tuple[str, ...]] = (".",)
    published: ClassVar[PublishedSplit | None] = None
    info: ClassVar[DatasetInfo] = DatasetInfo()
    readable_names: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        root: str | Path,
        split_file: str | Path | None = None,
        split_seed: int = 0,
        exclude: str | os.PathLike[str] | Iterable[str] | None = None,
        fetch: bool = True,
        check_split: bool = True,
        exclude_shared: bool = False,
    ) -> None:
        self.root = Path(root).expanduser().absolute()  # saved with runs: valid from any folder
        if self.root.is_file():
            raise DataError(
                f"--root {self.root} is a file, not a folder; pass the "
                f"{self.info.title or self.name or 'image'} folder that holds it "
                f"(expected layout: {self.info.layout})"
            )
        if not self.root.is_dir():
            raise DataError(
                f"dataset folder {self.root} does not exist; pass --root pointing at the "
                f"{folder_title(self.info.title or self.name or 'image')} (expected layout: "
                f"{self.info.layout})"
            )
        self.classnames: list[str] = list(self.classes)
        self.split_file = Path(split_file) if split_file else None
        self.split_seed = split_seed
        self.fetch = fetch
        self.check_split = check_split
        self.exclude = scope_exclusions(read_exclude(exclude), self.name)
        self.exclude_shared = exclude_shared
        #: Relpaths left out on purpose (set by :meth:`split`); save it with the run.
        self.excluded: list[str] = []
        #: Relpaths of dangling symbolic links left out of a seeded split (set by :meth:`scan`).
        self.dangling: list[str] = []
        #: The split file actually used (set by :meth:`split`).
        self.split_path: Path | None = None
        self._split: Split | None = None

    # -- where the images are ------------------------------------------------------------------
    def _candidates(self) -> list[Path]:
        return [self.root if d == "." else self.root / d for d in self.image_dirs]

    def find_image_root(self) -> Path | None:
        """The first of ``image_dirs`` that holds a class folder, or None."""
        wanted = {c.lower() for c in self.classnames}
        for path in self._candidates():
            if not path.is_dir():
                continue
            subdirs = [p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
            if any(n.lower() in wanted for n in subdirs) or (not wanted and subdirs):
                return path
        return None

    @property
    def image_root(self) -> Path:
        """Folder that split relpaths are relative to."""
        return self.find_image_root() or self._candidates()[0]

    def class_folders(self) -> tuple[dict[str, Path], list[str], list[str]]:
        """``(class -> folder, missing classes, extra folders)`` under the image root.

        Folder names match case-insensitively, so "footballField" and
        "footballfield" copies of a dataset both load.
        """
        base = self.image_root
        present = (
            {p.name: p for p in sorted(base.iterdir()) if p.is_dir() and not p.name.startswith(".")}
            if base.is_dir()
            else {}
        )
        lower = {}
        for folder_name, p in present.items():
            lower.setdefault(folder_name.lower(), p)
        found: dict[str, Path] = {}
        missing = []
        for c in self.classnames:
            p = present.get(c) or lower.get(c.lower())
            if p is None:
                missing.append(c)
            else:
                found[c] = p
        used = {p.name for p in found.values()}
        return found, missing, [n for n in present if n not in used]

    def layout_problems(self) -> list[str]:
        """Messages about missing or extra class folders (empty when the layout is right)."""
        _, missing, extra = self.class_folders()
        out = []
        if self.find_image_root() is None:
            tried = ", ".join(str(p) for p in self._candidates())
            out.append(f"no class folders found (looked in {tried})")
        elif missing:
            out.append(f"class folder(s) missing in {self.image_root}: {_preview(missing)}")
        if extra:
            out.append(
                f"unexpected folder(s) in {self.image_root}: {_preview(extra)} "
                "(not classes of this dataset: move them out)"
            )
        return out

    def check_layout(self) -> dict[str, Path]:
        """Class -> folder, or one DataError naming every missing and extra folder."""
        problems = self.layout_problems()
        if problems:
            raise DataError(
                f"{self.name} at {self.root}: {'; '.join(problems)}. Expected layout: "
                f"{self.info.layout}. Run `bimors data verify {self.name} --root {self.root}` "
                "for a full report"
            )
        return self.class_folders()[0]

    def scan(self) -> list[tuple[str, str]]:
        """``(relpath, classname)`` of every image in the class folders, in sorted order.

        Dangling symbolic links are left out and listed in :attr:`dangling`
        (saved with the run beside the excluded files); names that are not
        UTF-8 are refused by name.
        """
        base = self.image_root
        items = []
        empty = []
        folders = self.check_layout()
        bad_names = [str(p) for p in base.iterdir() if not_utf8(p.name)] + [
            str(f) for folder in folders.values() for f in folder.iterdir() if not_utf8(f.name)
        ]
        if bad_names:
            raise DataError(
                f"{len(bad_names)} file or folder name(s) under {printable(str(base))} are not "
                f"valid UTF-8: {_preview(sorted(bad_names))}; rename them to UTF-8 (for example "
                "`convmv -f latin1 -t utf8 -r --notest DIR`) or move them out"
            )
        for name, folder in folders.items():
            for link in dangling_links(folder):
                self.dangling.append(link.relative_to(base).as_posix())
            files = list_images(folder)
            if not files:
                empty.append(str(folder))
            rel = folder.relative_to(base).as_posix()
            items.extend((f"{rel}/{f.name}", name) for f in files)
        if empty:
            raise DataError(
                f"class folder(s) with no images ({', '.join(IMAGE_EXTENSIONS)}): "
                f"{_preview(empty)}; add images or remove the folders"
            )
        return items

    # -- the split -----------------------------------------------------------------------------
    def default_split_file(self) -> Path:
        """Where a seeded split is saved: beside the images, or the cache if that is read-only."""
        name = f"split_bimors_seed{self.split_seed}.json"
        if os.access(self.root, os.W_OK) or (self.root / name).is_file():
            return self.root / name
        return cache_dir() / "splits" / f"{self.name}-{path_key(self.root)}-{name}"

    def load_split(self) -> Split:
        """The full split (before exclusions): the published one or a seeded, saved one."""
        if self.published is not None:
            path = resolve_split_file(
                self.published, self.root, self.split_file, self.fetch, self.check_split
            )
            split = Split.load(path)
            if split.classnames != self.classnames:
                raise DataError(
                    f"{path} lists classes {split.classnames}, but the {self.name} protocol's "
                    f"label order is {self.classnames}; use the published split file"
                )
        else:
            path = self.split_file or self.default_split_file()
            if path.is_file():
                split = Split.load(path)
                if split.classnames != self.classnames:
                    raise DataError(
                        f"{path} lists classes {split.classnames} but {self.name} at {self.root} "
                        f"has {self.classnames}; delete the split file to make a new one"
                    )
            else:
                split = seeded_split(self.scan(), self.classnames, self.split_seed)
                split.save(path)
                logger.info(
                    "made a seeded split (seed %d) of %s: %s", self.split_seed, self.name, path
                )
        self.split_path = path
        return split

    def missing_files(self, split: Split) -> list[str]:
        """Relpaths of ``split`` (excluded ones aside) that are not files under the image root."""
        base = self.image_root
        return sorted(r for r in split.relpaths() - self.exclude if not (base / r).is_file())

    def split(self) -> Split:
        """The train/val/test split in the protocol's label order, minus explicit exclusions."""
        if self._split is None:
            self.check_layout()
            split = self.load_split()
            missing = self.missing_files(split)
            if missing:
                raise DataError(
                    f"{len(missing)} image(s) listed in {self.split_path} are missing under "
                    f"{self.image_root}: {_preview(missing)}. Check that --root is the "
                    f"{folder_title(self.info.title or self.name)} ({self.info.layout}); "
                    "restore the files, or exclude them explicitly (exclude=<file listing them>)"
                )
            if self.exclude_shared:  # the other entries are other datasets' images
                self.exclude = self.exclude & split.relpaths()
            unknown = sorted(self.exclude - split.relpaths())
            if unknown:
                raise DataError(
                    f"the exclude list names {len(unknown)} file(s) that are not in the split of "
                    f"{self.name}: {_preview(unknown)}; remove them from the list"
                )
            self.excluded = sorted(self.exclude)
            if self.dangling:
                logger.warning(
                    "%s: left out %d dangling symbolic link(s) (their targets do not exist): %s",
                    self.name,
                    len(self.dangling),
                    _preview(self.dangling, 5),
                )
            if self.excluded:
                logger.warning(
                    "%s: excluding %d image(s) on request: %s",
                    self.name,
                    len(self.excluded),
                    _preview(self.excluded, 5),
                )
            kept = split.without(self.exclude)
            empty = [
                p for p, n in zip(("train", "val", "test"), kept.counts(), strict=True) if not n
            ]
            if empty:
                raise DataError(
                    f"{self.name} at {self.root}: the {'/'.join(empty)} part of the split "
                    f"({self.split_path}) has no images"
                    + (f" after excluding {len(self.excluded)}" if self.excluded else "")
                    + "; nothing could be measured on it: exclude fewer images or restore them"
                )
            self._split = kept
        return self._split

    def provenance(self) -> dict:
        """Where the data of a run came from; save it with the run record."""
        from bimors.data.download import file_digest

        self.split()
        assert self.split_path is not None
        return {
            "dataset": self.name,
            "root": str(self.root),
            "image_root": str(self.image_root),
            "split_file": str(self.split_path),
            "split_sha256": file_digest(self.split_path),
            "published_split": self.published is not None and self.check_split,
            "split_seed": None if self.published is not None else self.split_seed,
            "excluded": list(self.excluded),
            "dangling_links": list(self.dangling),
        }

    # -- class names for prompts ---------------------------------------------------------------
    @classmethod
    def prompt_names(cls, classnames: list[str], style: NameStyle = "reference") -> list[str]:
        """Names for prompts in the chosen ``style`` (``reference`` reproduces the paper).

        ``reference`` is the official code's form (underscores become spaces,
        nothing else); ``readable`` uses the dataset's readable map, then the
        generic rule (camelCase and separators split, lower case).
        """
        return prompt_names(classnames, style, cls.readable_names)
