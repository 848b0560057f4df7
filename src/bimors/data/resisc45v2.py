"""RESISC45v2: NWPU-RESISC45 restricted to the 16 classes shared by the four v2 datasets.

Released by APPLeNet (Singha et al., CVPR Workshops 2023) for domain
generalisation; same 16 classes, folder names and label order as
:mod:`bimors.data.patternnetv2`. Source: Google Drive link in
https://github.com/mainaksingha01/APPLeNet (README): a manual download.
Licence: derived from NWPU-RESISC45; its terms apply. Cite APPLeNet and NWPU-RESISC45.
The archive's internal layout is not documented; the loader accepts the class
folders under ``<root>/images/`` or directly under ``<root>``.
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.info import DatasetInfo
from bimors.data.patternnetv2 import (
    APPLENET_CITATION,
    SHARED_CLASSES,
    SHARED_READABLE,
    V2_LAYOUT,
    v2_manual,
)
from bimors.data.published import PUBLISHED_SPLITS


class RESISC45v2(SceneDataset):
    name = "resisc45v2"
    folder = "RESISC45v2"
    classes = SHARED_CLASSES
    image_dirs = ("images", ".")
    published = PUBLISHED_SPLITS["resisc45v2"]
    readable_names = SHARED_READABLE
    info = DatasetInfo(
        title="RESISC45v2 (APPLeNet)",
        source="https://github.com/mainaksingha01/APPLeNet",
        licence="derived from NWPU-RESISC45; its terms apply",
        citation=APPLENET_CITATION,
        layout=V2_LAYOUT,
        images=11200,
        manual=v2_manual("https://drive.google.com/file/d/1Zfsko5swyQqu5HiuRwZe5jIGoUKfBgxq"),
    )
