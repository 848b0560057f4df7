"""What a dataset is: source, licence, citation, layout, and how to obtain it.

Every dataset class carries one :class:`DatasetInfo` so that ``bimors data
list`` can tell a user where the images come from, under which terms, how to
cite them, and which folder layout the loader expects, without reading code.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Archive:
    """A public archive that ``bimors data download`` can fetch and check.

    Attributes:
        urls: mirrors tried in order; all must serve the same bytes.
        filename: the archive's file name under the dataset root.
        sha256: expected SHA-256 (preferred), or None.
        md5: expected MD5 where only that is published, or None.
        size: expected size in bytes where known (for progress only).
        note: where the pin comes from, so a user can judge it.
    """

    urls: tuple[str, ...]
    filename: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if not (self.sha256 or self.md5):
            raise ValueError(f"archive {self.filename} needs a checksum (sha256 or md5)")


@dataclasses.dataclass(frozen=True)
class HubSource:
    """A Hugging Face dataset repository that ``bimors data download`` can materialise.

    The repository holds parquet shards (an ``image`` struct of bytes and path,
    and a label column whose ``ClassLabel`` names are in the README's
    ``dataset_info``) or class folders of images. Labels map to the dataset's
    class folders by name (case, spaces, ``_`` and ``-`` ignored).

    Attributes:
        repo: the dataset repository, ``owner/name``.
        label_column: the column holding the class label.
        revision: a commit or tag to pin, or None for the default branch (the
            commit actually used is recorded in the marker file).
        note: where the source comes from, so a user can judge it.
    """

    repo: str
    label_column: str = "label"
    revision: str | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Facts about one dataset, shown by ``bimors data list NAME``.

    Attributes:
        title: the dataset's usual name.
        source: the authors' page.
        licence: the terms as far as we know them (we say so where unsure).
        citation: the paper to cite.
        layout: the expected folder layout under ``--root``.
        images: number of images the loader expects (None where unknown).
        archive: a public archive to download, or None where a manual step is needed.
        hub: a Hugging Face dataset repository to materialise, or None.
        manual: what the user must do by hand when ``archive`` is None.
    """

    title: str = ""
    source: str = ""
    licence: str = "unknown; check the source"
    citation: str = ""
    layout: str = "<root>/<class>/<image>"
    images: int | None = None
    archive: Archive | None = None
    manual: str = ""
    hub: HubSource | None = None
