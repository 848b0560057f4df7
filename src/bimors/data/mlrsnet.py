"""MLRSNet: 46 scene categories, 109,161 images (256 x 256 px); no published split.

Source: https://data.mendeley.com/datasets/7j9bv9vwsx/3 (and
https://github.com/cugbrs/MLRSNet). Its ``Images`` folder holds one RAR
archive per category, so the download is a manual step. Licence: listed as
CC BY 4.0 on Mendeley Data as far as we know; check the record. Cite: X. Qi et
al., "MLRSNet: A multi-label high spatial resolution remote sensing dataset for
semantic scene understanding", ISPRS J. Photogramm. Remote Sens. 169 (2020) 337-350.

APPLeNet did not publish ``mlrsnet.json``, so the protocol split here is ours:
seeded, disjoint 50/20/30 per category, saved beside the images. Its label
order is the sorted category folder names, the order CoOp-style loaders
(APPLeNet, BiMoRS) give when they make a split. Results on MLRSNet are
therefore not exactly comparable with the papers'. Category folder names are
the authors' own, typos included ("swimmimg_pool").
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.info import DatasetInfo

#: Category folders in sorted order, which is our label order.
CLASSES = (
    "airplane", "airport", "bareland", "baseball_diamond", "basketball_court", "beach", "bridge",
    "chaparral", "cloud", "commercial_area", "dense_residential_area", "desert",
    "eroded_farmland", "farmland", "forest", "freeway", "golf_course", "ground_track_field",
    "harbor&port", "industrial_area", "intersection", "island", "lake", "meadow",
    "mobile_home_park", "mountain", "overpass", "park", "parking_lot", "parkway", "railway",
    "railway_station", "river", "roundabout", "shipping_yard", "snowberg",
    "sparse_residential_area", "stadium", "storage_tank", "swimmimg_pool", "tennis_court",
    "terrace", "transmission_tower", "vegetable_greenhouse", "wetland", "wind_turbine",
)  # fmt: skip

READABLE = {"harbor&port": "harbor and port", "swimmimg_pool": "swimming pool"}


class MLRSNet(SceneDataset):
    name = "mlrsnet"
    folder = "MLRSNet"
    classes = CLASSES
    image_dirs = ("images", "Images", ".")
    readable_names = READABLE
    info = DatasetInfo(
        title="MLRSNet",
        source="https://data.mendeley.com/datasets/7j9bv9vwsx/3",
        licence="CC BY 4.0 as listed on Mendeley Data (as far as we know; check the record)",
        citation="Qi et al., MLRSNet, ISPRS J. Photogramm. Remote Sens. 169, 2020",
        layout="<root>/images/<category>/<category>_<nnnnn>.jpg; split saved as "
        "<root>/split_bimors_seed<seed>.json",
        images=109161,
        manual="download the Images folder from https://data.mendeley.com/datasets/7j9bv9vwsx/3 "
        "and extract every <category>.rar into <root>/images/ (one folder per category)",
    )
