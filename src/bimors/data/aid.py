"""AID (Aerial Image Dataset): 30 classes, 10,000 images (600 x 600 px); no published split.

Source: https://captain-whu.github.io/AID/ (Baidu Pan / OneDrive links: a
manual download). Licence: not stated in a standard form; research use.
Cite: G.-S. Xia et al., "AID: A Benchmark Data Set for Performance Evaluation
of Aerial Scene Classification", IEEE TGRS 55(7) 2017, 3965-3981.

The split is ours (seeded 50/20/30); label order = sorted folder names.
Folder names are CamelCase ("DenseResidential"): the reference prompt form
keeps them as one word, the readable form splits them.
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.info import DatasetInfo

CLASSES = (
    "Airport", "BareLand", "BaseballField", "Beach", "Bridge", "Center", "Church", "Commercial",
    "DenseResidential", "Desert", "Farmland", "Forest", "Industrial", "Meadow",
    "MediumResidential", "Mountain", "Park", "Parking", "Playground", "Pond", "Port",
    "RailwayStation", "Resort", "River", "School", "SparseResidential", "Square", "Stadium",
    "StorageTanks", "Viaduct",
)  # fmt: skip


class AID(SceneDataset):
    name = "aid"
    folder = "AID"
    classes = CLASSES
    image_dirs = ("images", "AID", ".")
    info = DatasetInfo(
        title="AID",
        source="https://captain-whu.github.io/AID/",
        licence="not stated in a standard form; research use",
        citation="Xia et al., AID, IEEE TGRS 55(7), 2017",
        layout="<root>/<Class>/<class>_<n>.jpg (e.g. Airport/airport_1.jpg) or "
        "<root>/images/<Class>/...",
        images=10000,
        manual="download AID from the links at https://captain-whu.github.io/AID/ and "
        "extract it so that the 30 class folders are directly under <root> (or <root>/images)",
    )
