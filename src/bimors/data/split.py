"""Train/val/test splits in the published format of the RS protocols.

A split file is JSON ``{"train"|"val"|"test": [[relpath, label, classname], ...]}``
(the CoOp/APPLeNet format). The label order it defines is the protocol's label
order: the class with label 0 comes first, and base/new partitions follow it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from pathlib import Path, PurePosixPath, PureWindowsPath

from bimors.core import atomic
from bimors.core.errors import DataError

PARTS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One image: its path relative to the dataset's image root, label and class folder name."""

    relpath: str
    label: int
    classname: str


@dataclasses.dataclass
class Split:
    """Disjoint train, val and test samples over classes in label order."""

    classnames: list[str]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]

    def part(self, name: str) -> list[Sample]:
        if name not in PARTS:
            raise ValueError(f"unknown split part {name!r}; valid: {', '.join(PARTS)}")
        return getattr(self, name)

    def to_json(self) -> dict[str, list[list]]:
        return {p: [[s.relpath, s.label, s.classname] for s in self.part(p)] for p in PARTS}

    @classmethod
    def from_json(cls, data: dict, source: str = "split") -> Split:
        """Parse the published format, checking labels are 0..n-1 with one name each."""
        if not isinstance(data, dict) or not all(p in data for p in PARTS):
            raise DataError(f"{source}: a split file needs the keys train, val and test")
        names: dict[int, str] = {}
        parts: dict[str, list[Sample]] = {}
        for p in PARTS:
            items = []
            for i, row in enumerate(data[p]):
                if not (isinstance(row, list) and len(row) == 3 and isinstance(row[1], int)):
                    raise DataError(
                        f"{source}: {p}[{i}] must be [relpath, label, classname], got {row!r}"
                    )
                relpath, label, name = row
                problem = outside_root(relpath)
                if problem:
                    raise DataError(
                        f"{source}: {p}[{i}] {relpath!r} {problem}; a split entry must be a "
                        "path inside the dataset folder, like class/image.jpg: fix the split file"
                    )
                if names.setdefault(label, name) != name:
                    raise DataError(
                        f"{source}: label {label} is both {names[label]!r} and {name!r} ({p}[{i}])"
                    )
                items.append(Sample(str(relpath), label, str(name)))
            parts[p] = items
        if sorted(names) != list(range(len(names))):
            raise DataError(f"{source}: labels must be 0..{len(names) - 1}, got {sorted(names)}")
        _check_disjoint(parts, source)
        return cls(
            [names[i] for i in range(len(names))], parts["train"], parts["val"], parts["test"]
        )

    def counts(self) -> tuple[int, int, int]:
        """Number of (train, val, test) samples."""
        return len(self.train), len(self.val), len(self.test)

    def relpaths(self) -> set[str]:
        """Every relpath of the split, all parts together."""
        return {s.relpath for p in PARTS for s in self.part(p)}

    def without(self, relpaths: set[str]) -> Split:
        """A copy without the samples whose relpath is in ``relpaths`` (labels unchanged)."""
        keep = {p: [s for s in self.part(p) if s.relpath not in relpaths] for p in PARTS}
        return Split(list(self.classnames), keep["train"], keep["val"], keep["test"])

    def save(self, path: str | Path) -> None:
        atomic.write_text(path, json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: str | Path) -> Split:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"split file {path} does not exist") from None
        except json.JSONDecodeError as err:
            raise DataError(
                f"split file {path} is not valid JSON ({err}); delete or re-fetch it"
            ) from None
        return cls.from_json(data, str(path))


def outside_root(relpath: object) -> str | None:
    """Why ``relpath`` may not name an image of the dataset, or None if it may.

    Checked on the path as written, not on the file system: ``..`` or an
    absolute path could open any file on the machine (and a valid image
    outside the root would be trained on silently), whereas a symlinked image
    folder inside the root is a legitimate way to store a dataset elsewhere.
    """
    if not isinstance(relpath, str) or not relpath.strip():
        return "is not a relative path"
    text = relpath.replace("\\", "/")
    if text.startswith("/") or PureWindowsPath(relpath).drive or PurePosixPath(text).is_absolute():
        return "is an absolute path"
    if ".." in PurePosixPath(text).parts:
        return "leaves the dataset folder (it contains '..')"
    return None


def _check_disjoint(parts: dict[str, list[Sample]], source: str) -> None:
    """Every image in one part only, once: test is never val, train never test."""
    where: dict[str, str] = {}
    clashes = []
    for p in PARTS:
        for s in parts[p]:
            if s.relpath in where:
                clashes.append(f"{s.relpath} ({where[s.relpath]} and {p})")
            where.setdefault(s.relpath, p)
    if clashes:
        more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        raise DataError(
            f"{source}: {len(clashes)} image(s) listed twice: {'; '.join(clashes[:5])}{more}; "
            "a split must keep train, val and test disjoint: fix or regenerate the split file"
        )


def stable_seed(*parts: object) -> int:
    """A seed from ``parts`` that is the same on every run, process and machine.

    Python's ``hash`` of a string changes per process; SHA-256 does not.
    """
    digest = hashlib.sha256("|".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def seeded_split(
    items: list[tuple[str, str]],
    classnames: list[str],
    seed: int = 0,
    p_train: float = 0.5,
    p_val: float = 0.2,
) -> Split:
    """Per-class random split of ``(relpath, classname)`` items; test is the rest.

    The proportions (50/20/30) follow CoOp's ``read_and_split_data``. Each
    class's images are ordered by a SHA-256 of (seed, class, relpath) and cut
    in that order, so the result depends only on the file names and the seed:
    not on file-system order, Python's hash seed, or the ``random`` module's
    algorithms (which Python does not promise to keep across versions). Every
    class with at least 3 images gets at least one image in each part.
    """
    label_of = {c: i for i, c in enumerate(classnames)}
    by_class: dict[str, list[str]] = defaultdict(list)
    for relpath, name in items:
        if name not in label_of:
            raise DataError(f"{relpath}: class {name!r} is not one of the split's classes")
        by_class[name].append(relpath)
    parts: dict[str, list[Sample]] = {p: [] for p in PARTS}
    for name in classnames:
        paths = by_class.get(name, [])
        if len(paths) < 3:
            raise DataError(f"class {name!r} has {len(paths)} images; a split needs at least 3")
        paths = [r for _, r in sorted((stable_seed("split", seed, name, r), r) for r in set(paths))]
        n_train = max(1, round(len(paths) * p_train))
        n_val = max(1, round(len(paths) * p_val))
        n_train = min(n_train, len(paths) - 2)
        n_val = min(n_val, len(paths) - n_train - 1)
        cut = {
            "train": paths[:n_train],
            "val": paths[n_train : n_train + n_val],
            "test": paths[n_train + n_val :],
        }
        for p, ps in cut.items():
            parts[p].extend(Sample(r, label_of[name], name) for r in ps)
    return Split(list(classnames), parts["train"], parts["val"], parts["test"])
