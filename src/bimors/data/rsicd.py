"""RSICD as a 30-class scene dataset (10,000 images, 224 x 224 px), published split.

Source: https://github.com/201528014227051/RSICD_optimal (Baidu Pan / Google
Drive links there: a manual download). RSICD is a captioning set of 10,921
images in one flat folder; the classification protocol (APPLeNet) uses the
10,000 whose file names start with a class name (``<class>_<n>.jpg``), sorted
into one folder per class. Licence: not stated in a standard form; research
use. Cite: X. Lu, B. Wang, X. Zheng, X. Li, "Exploring Models and Data for
Remote Sensing Image Caption Generation", IEEE TGRS 56(4) 2018, 2183-2195.

Its class names are single words ("denseresidential"), which the reference
prompt form passes to CLIP as is; ``readable`` names split them.
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.info import DatasetInfo
from bimors.data.published import PUBLISHED_SPLITS

#: Label order of the published split (APPLeNet ``rsicd.json``); not alphabetical.
CLASSES = (
    "center", "farmland", "baseballfield", "playground", "industrial", "storagetanks", "resort",
    "forest", "bridge", "port", "railwaystation", "sparseresidential", "viaduct", "airport",
    "denseresidential", "school", "mountain", "park", "commercial", "parking",
    "mediumresidential", "meadow", "pond", "river", "bareland", "desert", "church", "stadium",
    "square", "beach",
)  # fmt: skip

READABLE = {
    "baseballfield": "baseball field",
    "storagetanks": "storage tanks",
    "railwaystation": "railway station",
    "sparseresidential": "sparse residential",
    "denseresidential": "dense residential",
    "mediumresidential": "medium residential",
    "bareland": "bare land",
}


class RSICD(SceneDataset):
    name = "rsicd"
    folder = "RSICD"
    classes = CLASSES
    image_dirs = ("images", ".")
    published = PUBLISHED_SPLITS["rsicd"]
    readable_names = READABLE
    info = DatasetInfo(
        title="RSICD",
        source="https://github.com/201528014227051/RSICD_optimal",
        licence="not stated in a standard form; research use",
        citation="Lu et al., Exploring Models and Data for Remote Sensing Image Caption "
        "Generation, IEEE TGRS 56(4), 2018",
        layout="<root>/images/<class>/<class>_<n>.jpg",
        images=10000,
        manual="download RSICD_images from the links at "
        "https://github.com/201528014227051/RSICD_optimal, then move every file named "
        "<class>_<n>.jpg (class = one of the 30 classes) into <root>/images/<class>/; "
        "files with purely numeric names are not part of the protocol",
    )
