"""RSICDv2: RSICD restricted to the 16 classes shared by the four v2 datasets.

Released by APPLeNet (Singha et al., CVPR Workshops 2023) for domain
generalisation; same 16 classes, folder names and label order as
:mod:`bimors.data.patternnetv2`. Source: Google Drive link in
https://github.com/mainaksingha01/APPLeNet (README): a manual download.
Licence: derived from RSICD; its terms apply. Cite APPLeNet and RSICD.
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


class RSICDv2(SceneDataset):
    name = "rsicdv2"
    folder = "RSICDv2"
    classes = SHARED_CLASSES
    image_dirs = ("images", ".")
    published = PUBLISHED_SPLITS["rsicdv2"]
    readable_names = SHARED_READABLE
    info = DatasetInfo(
        title="RSICDv2 (APPLeNet)",
        source="https://github.com/mainaksingha01/APPLeNet",
        licence="derived from RSICD; its terms apply",
        citation=APPLENET_CITATION,
        layout=V2_LAYOUT,
        images=5360,
        manual=v2_manual("https://drive.google.com/file/d/1uhlTHQCHkE0KD04YGBAKsxPgG14eQez_"),
    )
