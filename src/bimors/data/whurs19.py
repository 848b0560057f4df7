"""WHU-RS19: 19 classes, about 50 images each (600 x 600 px); no published split.

Source: https://captain-whu.github.io/BED4RS/ (a manual download). Licence:
not stated in a standard form; research use. Cite: G.-S. Xia, W. Yang,
J. Delon, Y. Gousseau, H. Sun, H. Maitre, "Structural high-resolution satellite
image indexing", ISPRS TC VII Symposium, 2010; and D. Dai, W. Yang, "Satellite
image classification via two-layer sparse coding with biased image
representation", IEEE GRSL 8(1) 2011.

Reported sizes differ between copies (950 to 1,005 images); the loader uses
whatever the class folders hold. The split is ours (seeded 50/20/30); label
order = folder names sorted case-insensitively (two are lowerCamelCase).
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.info import DatasetInfo

CLASSES = (
    "Airport", "Beach", "Bridge", "Commercial", "Desert", "Farmland", "footballField", "Forest",
    "Industrial", "Meadow", "Mountain", "Park", "Parking", "Pond", "Port", "railwayStation",
    "Residential", "River", "Viaduct",
)  # fmt: skip


class WHURS19(SceneDataset):
    name = "whurs19"
    folder = "WHU-RS19"
    classes = CLASSES
    image_dirs = ("images", "WHU-RS19", ".")
    info = DatasetInfo(
        title="WHU-RS19",
        source="https://captain-whu.github.io/BED4RS/",
        licence="not stated in a standard form; research use",
        citation="Xia et al., Structural high-resolution satellite image indexing, ISPRS TC VII "
        "2010; Dai and Yang, IEEE GRSL 8(1), 2011",
        layout="<root>/<Class>/<class>_<nn>.jpg (e.g. Airport/airport_01.jpg) or "
        "<root>/images/<Class>/...",
        images=None,
        manual="download WHU-RS19 from https://captain-whu.github.io/BED4RS/ and extract it so "
        "that the 19 class folders are directly under <root> (or <root>/images)",
    )
