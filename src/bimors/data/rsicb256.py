"""RSI-CB256: 35 classes, about 24,000 images (256 x 256 px); no published split.

Source: https://github.com/lehaifeng/RSI-CB; fewshot_RSVLMs reads the copy
https://huggingface.co/datasets/jonathan-roberts1/RSI-CB256 (fine classes in
its ``label_2`` column). Licence: not stated in a standard form; research
use. Cite: H. Li et al., "RSI-CB: A Large-Scale Remote Sensing Image
Classification Benchmark Using Crowdsourced Data", Sensors 20(6) 2020, 1594.

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
    "airplane": "airplane", "airportrunway": "airport runway",
    "artificialgrassland": "artificial grassland", "avenue": "avenue",
    "bareland": "bare land", "bridge": "bridge", "citybuilding": "city building",
    "coastline": "coastline", "container": "container", "crossroads": "crossroads",
    "dam": "dam", "desert": "desert", "dryfarm": "dry farm", "forest": "forest",
    "greenfarmland": "green farmland", "highway": "highway", "hirst": "hirst",
    "lakeshore": "lakeshore", "mangrove": "mangrove", "marina": "marina",
    "mountain": "mountain", "parkinglot": "parking lot", "pipeline": "pipeline",
    "residents": "residents", "river": "river",
    "riverprotectionforest": "river protection forest", "sandbeach": "sandbeach",
    "sapling": "sapling", "sea": "sea", "shrubwood": "shrubwood",
    "snowmountain": "snow mountain", "sparseforest": "sparse forest",
    "storageroom": "storage room", "stream": "stream", "town": "town",
}  # fmt: skip

CLASSES = tuple(sorted(READABLE))


class RSICB256(SceneDataset):
    name = "rsicb256"
    folder = "RSI-CB256"
    classes = CLASSES
    image_dirs = ("images", ".")
    readable_names = READABLE
    info = DatasetInfo(
        title="RSI-CB256",
        source="https://github.com/lehaifeng/RSI-CB",
        licence="not stated in a standard form; research use",
        citation="Li et al., RSI-CB: A Large-Scale Remote Sensing Image Classification "
        "Benchmark Using Crowdsourced Data, Sensors 20(6), 2020",
        layout="<root>/images/<class>/<image> (35 class folders, lower case, words joined)",
        images=None,
        manual="download the Hugging Face dataset jonathan-roberts1/RSI-CB256 and write its "
        "images into <root>/images/<class>/ (class names lower case, words joined)",
        hub=HubSource(
            "jonathan-roberts1/RSI-CB256",
            label_column="label_2",
            note="the copy fewshot_RSVLMs reads (fine classes: label_2)",
        ),
    )
