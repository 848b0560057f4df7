"""The ``data`` section of a run config: which dataset, split, shots and sampler a run uses."""

from __future__ import annotations

import dataclasses
from typing import Literal


def check_shots(shots: object, field: str = "data.shots") -> int:
    """``shots`` as a positive integer, or a ConfigError naming ``field`` and the fix.

    Zero or a negative number used to mean "every training image" without a word,
    and was recorded as such; a class with fewer images than asked now keeps all of
    them, so a large value is how to ask for every image.
    """
    from bimors.core.errors import ConfigError

    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise ConfigError(
            f"{field}={shots!r}: must be a positive whole number of images per class (the "
            "papers use 1, 2, 4, 8, 16); a class with fewer images keeps all of them, so "
            "a large value (e.g. 100000) trains on every training image"
        )
    return shots


@dataclasses.dataclass
class DataConfig:
    """Which data a run uses; ``bimors.data.dataset_options`` turns it into dataset options.

    ``classnames``: ``reference`` (the official code's prompt names, reproduces
    the paper) or ``readable``. ``split_file``: an explicit split file (else the
    published one, or a seeded one saved beside the images). ``split_seed``:
    seed of a seeded split. ``exclude``: a file of relpaths left out on purpose
    (the dataset's ``excluded`` list is what to save with the run); one list
    serves the training dataset and every transfer target.
    ``check_split``: false to train on your own ``split_file`` for a dataset
    with a published split (its SHA-256 pin is then not checked, and the run's
    ``data.json`` says ``published_split: false``).
    ``fewshot_sampler``: ``hash`` (ours: independent of Python's ``random``
    and of the class set) or ``dassl`` (exactly the images the official
    Dassl-based codes draw for the seed; see :mod:`bimors.data.dassl`).
    """

    dataset: str = "imagefolder"
    root: str = ""
    shots: int = 16  # per class, >= 1; a class with fewer images keeps all of them
    classnames: Literal["reference", "readable"] = "reference"
    num_workers: int = 2
    split_file: str | None = None
    split_seed: int = 0
    exclude: str | None = None
    check_split: bool = True  # false: use your own split_file for a published dataset
    fewshot_sampler: Literal["hash", "dassl", "lpclip"] = "hash"

    def __post_init__(self) -> None:
        check_shots(self.shots)
        if self.num_workers < 0:
            raise ValueError("data.num_workers must be >= 0")
