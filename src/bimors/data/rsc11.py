"""RSC11: 11 classes, 1,232 Google Earth images (512 x 512 px); no published split.

Source: https://huggingface.co/datasets/jonathan-roberts1/RS_C11 (the copy
fewshot_RSVLMs reads). Licence: not stated in a standard form; research use.
Cite: L. Zhao, P. Tang, L. Huo, "Feature significance-based multibag-of-
visual-words model for remote sensing image scene classification", J. Appl.
Remote Sens. 10(3) 2016, 035004.

Class folder names are fewshot_RSVLMs's (lower case, words joined); label
order = sorted folder names. The split is ours (seeded 50/20/30, from file
names and the seed only): fewshot_RSVLMs shuffles ``os.listdir`` order, which
differs between file systems, so its split cannot be reproduced. Readable
names are the ones fewshot_RSVLMs puts into prompts.
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.info import DatasetInfo, HubSource

READABLE = {
    "denseforest": "dense forest", "grassland": "grassland", "harbor": "harbor",
    "highbuildings": "high buildings", "lowbuildings": "low buildings", "overpass": "overpass",
    "railway": "railway", "residentialarea": "residential area", "roads": "roads",
    "sparseforest": "sparse forest", "storagetanks": "storage tanks",
}  # fmt: skip

CLASSES = tuple(sorted(READABLE))


class RSC11(SceneDataset):
    name = "rsc11"
    folder = "RSC11"
    classes = CLASSES
    image_dirs = ("images", ".")
    readable_names = READABLE
    info = DatasetInfo(
        title="RSC11",
        source="https://huggingface.co/datasets/jonathan-roberts1/RS_C11",
        licence="not stated in a standard form; research use",
        citation="Zhao, Tang, Huo, Feature significance-based multibag-of-visual-words model "
        "for remote sensing image scene classification, J. Appl. Remote Sens. 10(3), 2016",
        layout="<root>/images/<class>/<image> (e.g. images/denseforest/...)",
        images=1232,
        manual="download the Hugging Face dataset jonathan-roberts1/RS_C11 and write its "
        "images into <root>/images/<class>/ (class names lower case, words joined)",
        hub=HubSource(
            "jonathan-roberts1/RS_C11",
            note="the copy fewshot_RSVLMs reads",
        ),
    )
