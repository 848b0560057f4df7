"""MLRSNetv2: MLRSNet restricted to the 16 classes shared by the four v2 datasets.

Released by APPLeNet (Singha et al., CVPR Workshops 2023) for domain
generalisation; same 16 classes, folder names and label order as
:mod:`bimors.data.patternnetv2`. Source: Google Drive link in
https://github.com/mainaksingha01/APPLeNet (README): a manual download.
Licence: derived from MLRSNet; its terms apply. Cite APPLeNet and MLRSNet.
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


class MLRSNetv2(SceneDataset):
    name = "mlrsnetv2"
    folder = "MLRSNetv2"
    classes = SHARED_CLASSES
    image_dirs = ("images", ".")
    published = PUBLISHED_SPLITS["mlrsnetv2"]
    readable_names = SHARED_READABLE
    info = DatasetInfo(
        title="MLRSNetv2 (APPLeNet)",
        source="https://github.com/mainaksingha01/APPLeNet",
        licence="derived from MLRSNet; its terms apply",
        citation=APPLENET_CITATION,
        layout=V2_LAYOUT,
        images=39123,
        manual=v2_manual("https://drive.google.com/file/d/1OJrAwU1i9hYe7kEsHIIq_TodJDiwnnAz"),
    )
