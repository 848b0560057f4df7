"""RSI-CB128: 45 classes, about 36,000 images (128 x 128 px); no published split.

Source: https://github.com/lehaifeng/RSI-CB (a manual download; fewshot_RSVLMs
points to a Kaggle copy). Licence: not stated in a standard form; research
use. Cite: H. Li, X. Dou, C. Tao, Z. Wu, J. Chen, J. Peng, M. Deng, L. Zhao,
"RSI-CB: A Large-Scale Remote Sensing Image Classification Benchmark Using
Crowdsourced Data", Sensors 20(6) 2020, 1594.

Class folder names are fewshot_RSVLMs's (lower case, words joined; the
release groups them under six parent folders, which must be flattened);
label order = sorted folder names. The split is ours (seeded 50/20/30, from
file names and the seed only): fewshot_RSVLMs shuffles ``os.listdir`` order,
which differs between file systems, so its split cannot be reproduced.
Readable names are the ones fewshot_RSVLMs puts into prompts (it calls "sea"
"sea or lake" here, but "sea" in RSI-CB256).
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.info import DatasetInfo

READABLE = {
    "airportrunway": "airport runway", "artificialgrassland": "artificial grassland",
    "avenue": "avenue", "bareland": "bare land", "bridge": "bridge",
    "cityavenue": "city avenue", "citybuilding": "city building",
    "citygreentree": "city green tree", "cityroad": "city road", "coastline": "coastline",
    "container": "container", "crossroads": "crossroads", "dam": "dam", "desert": "desert",
    "dryfarm": "dry farm", "forest": "forest", "forkroad": "fork road", "grave": "grave",
    "greenfarmland": "green farmland", "highway": "highway", "hirst": "hirst",
    "lakeshore": "lakeshore", "mangrove": "mangrove", "marina": "marina",
    "mountain": "mountain", "mountainroad": "mountain road",
    "naturalgrassland": "natural grassland", "overpass": "overpass",
    "parkinglot": "parking lot", "pipeline": "pipeline", "rail": "rail",
    "residents": "residents", "river": "river",
    "riverprotectionforest": "river protection forest", "sandbeach": "sandbeach",
    "sapling": "sapling", "sea": "sea or lake", "shrubwood": "shrubwood",
    "snowmountain": "snow mountain", "sparseforest": "sparse forest",
    "storageroom": "storage room", "stream": "stream", "tower": "tower", "town": "town",
    "turningcircle": "turning circle",
}  # fmt: skip

CLASSES = tuple(sorted(READABLE))


class RSICB128(SceneDataset):
    name = "rsicb128"
    folder = "RSI-CB128"
    classes = CLASSES
    image_dirs = ("images", ".")
    readable_names = READABLE
    info = DatasetInfo(
        title="RSI-CB128",
        source="https://github.com/lehaifeng/RSI-CB",
        licence="not stated in a standard form; research use",
        citation="Li et al., RSI-CB: A Large-Scale Remote Sensing Image Classification "
        "Benchmark Using Crowdsourced Data, Sensors 20(6), 2020",
        layout="<root>/images/<class>/<image> (45 class folders, lower case, words joined)",
        images=None,
        manual="download RSI-CB128 from https://github.com/lehaifeng/RSI-CB and move its 45 "
        "class folders (out of their six parent folders) into <root>/images, renamed lower "
        "case with words joined (e.g. airport_runway -> airportrunway)",
    )
