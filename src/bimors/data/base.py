"""The base class of every dataset: where the images are, the split, and class names.

A dataset object knows files, never models. The protocol code asks it for a
:class:`~bimors.data.split.Split` and for the names that go into prompts.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Literal

from bimors.data.split import Split
from bimors.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
NameStyle = Literal["reference", "readable"]


def reference_name(folder_name: str) -> str:
    """The reference code's prompt name: underscores become spaces, nothing else."""
    return folder_name.replace("_", " ")


def readable_name(folder_name: str) -> str:
    """A generic readable name: separators and camelCase become spaces, lower case."""
    text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", folder_name)
    return re.sub(r"[\s_\-]+", " ", text).strip().lower()


class SceneDataset(ABC):
    """A scene-classification dataset under ``root``.

    Subclasses set ``name`` and implement :meth:`split`; ``readable_names``
    maps folder names whose generic readable form is wrong (RSICD's
    "denseresidential" -> "dense residential").
    """

    name: ClassVar[str] = ""
    readable_names: ClassVar[dict[str, str]] = {}

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(
                f"dataset folder {self.root} does not exist; pass --root pointing at the "
                f"{self.name or 'image'} folder"
            )

    @property
    def image_root(self) -> Path:
        """Folder that split relpaths are relative to."""
        return self.root

    @abstractmethod
    def split(self) -> Split:
        """The train/val/test split in the protocol's label order."""

    def prompt_names(self, classnames: list[str], style: NameStyle = "reference") -> list[str]:
        """Names for prompts in the chosen ``style`` (``reference`` reproduces the paper)."""
        if style == "reference":
            return [reference_name(c) for c in classnames]
        return [self.readable_names.get(c, readable_name(c)) for c in classnames]


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (never file-system order)."""
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
