"""Any folder of class sub-folders, e.g. a user's own data or the synthetic scenes."""

from __future__ import annotations

from pathlib import Path

from bimors.data.base import SceneDataset, list_images
from bimors.data.split import Split, seeded_split
from bimors.errors import DataError


class ImageFolder(SceneDataset):
    """``root/<class>/<image>``; classes in sorted folder order unless ``class_order`` is given.

    The split is made once with ``split_seed`` (50/20/30 per class) and saved
    to ``split_file`` (default ``root/split_bimors.json``) in the published
    format; later runs read it back, so every run sees the same split.
    """

    name = "imagefolder"

    def __init__(
        self,
        root: str | Path,
        class_order: list[str] | None = None,
        split_file: str | Path | None = None,
        split_seed: int = 0,
    ) -> None:
        super().__init__(root)
        folders = sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        if not folders:
            raise DataError(
                f"{self.root} has no class folders; expected {self.root}/<class>/<image>"
            )
        if class_order is not None:
            missing = [c for c in class_order if c not in folders]
            if missing:
                raise DataError(f"{self.root}: class folders missing: {', '.join(missing)}")
            folders = list(class_order)
        self.classnames = folders
        self.split_file = Path(split_file) if split_file else self.root / "split_bimors.json"
        self.split_seed = split_seed

    def scan(self) -> list[tuple[str, str]]:
        """``(relpath, classname)`` of every image; an empty class folder is an error."""
        items = []
        for name in self.classnames:
            files = list_images(self.root / name)
            if not files:
                raise DataError(
                    f"class folder {self.root / name} has no images "
                    "(.jpg, .jpeg, .png, .tif, .tiff, .bmp, .webp); add images or remove the folder"
                )
            items.extend((f"{name}/{f.name}", name) for f in files)
        return items

    def split(self) -> Split:
        if self.split_file.is_file():
            split = Split.load(self.split_file)
            if split.classnames != self.classnames:
                raise DataError(
                    f"{self.split_file} lists classes {split.classnames} but {self.root} has "
                    f"{self.classnames}; delete the split file to make a new one"
                )
            return split
        split = seeded_split(self.scan(), self.classnames, self.split_seed)
        split.save(self.split_file)
        return split
