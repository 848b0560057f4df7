"""Any folder of class sub-folders, e.g. a user's own data or the synthetic scenes."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from bimors.core.errors import DataError
from bimors.data.base import SceneDataset
from bimors.data.info import DatasetInfo


class ImageFolder(SceneDataset):
    """``root/<class>/<image>``; classes in sorted folder order unless ``class_order`` is given.

    There is no published split: one is made with ``split_seed`` (disjoint
    50/20/30 per class) and saved to ``split_file`` (default
    ``root/split_bimors_seed<seed>.json``) in the published format; later runs
    read it back, so every run sees the same split. ``class_order`` fixes the
    label order (and so base/new classes); it must name every class folder.
    """

    name = "imagefolder"
    info = DatasetInfo(
        title="image folder",
        source="your own images",
        licence="yours",
        layout="<root>/<class>/<image>.(jpg|png|tif|...); one folder per class",
    )

    def __init__(
        self,
        root: str | Path,
        class_order: list[str] | None = None,
        split_file: str | Path | None = None,
        split_seed: int = 0,
        exclude: str | os.PathLike[str] | Iterable[str] | None = None,
        **options: bool,
    ) -> None:
        super().__init__(root, split_file, split_seed, exclude, **options)
        folders = sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
        if not folders:
            raise DataError(
                f"{self.root} has no class folders; expected {self.root}/<class>/<image>"
            )
        if class_order is not None:
            missing = [c for c in class_order if c not in folders]
            extra = [c for c in folders if c not in class_order]
            if missing or extra:
                raise DataError(
                    f"{self.root}: class_order does not match the class folders "
                    f"(missing folders: {', '.join(missing) or 'none'}; folders not in "
                    f"class_order: {', '.join(extra) or 'none'}); fix class_order or the folders"
                )
            folders = list(class_order)
        self.classnames = folders
