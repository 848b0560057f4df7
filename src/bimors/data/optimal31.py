"""OPTIMAL-31: 31 classes x 60 images (256 x 256 px); no published split.

Source: https://huggingface.co/datasets/jonathan-roberts1/Optimal-31 (the copy
fewshot_RSVLMs reads; the authors' release is a manual download). Licence:
not stated in a standard form; research use. Cite: Q. Wang, S. Liu,
J. Chanussot, X. Li, "Scene Classification With Recurrent Attention of VHR
Remote Sensing Images", IEEE TGRS 57(2) 2019, 1155-1167.

Class folder names are fewshot_RSVLMs's (lower case, words joined:
"baseballdiamond"); label order = sorted folder names, as there. The split
is ours (seeded 50/20/30, from file names and the seed only): fewshot_RSVLMs
shuffles ``os.listdir`` order with the global ``random`` state (its dataset
class 50/20/30, its partition script 50/25/25), which differs between file
systems, so no split of theirs can be reproduced. The readable names are the
ones fewshot_RSVLMs puts into prompts (``data.classnames=readable``).
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.info import DatasetInfo, HubSource

READABLE = {
    "airplane": "airplane", "airport": "airport", "baseballdiamond": "baseball diamond",
    "basketballcourt": "basketball court", "beach": "beach", "bridge": "bridge",
    "chaparral": "chaparral", "church": "church", "circularfarmland": "circular farmland",
    "commercialarea": "commercial area", "denseresidential": "dense residential",
    "desert": "desert", "forest": "forest", "freeway": "freeway", "golfcourse": "golf course",
    "groundtrackfield": "ground track field", "harbor": "harbor",
    "industrialarea": "industrial area", "intersection": "intersection", "island": "island",
    "lake": "lake", "meadow": "meadow", "mediumresidential": "medium residential",
    "mobilehomepark": "mobile home park", "mountain": "mountain", "overpass": "overpass",
    "parkinglot": "parking lot", "railway": "railway",
    "rectangularfarmland": "rectangular farmland", "roundabout": "roundabout",
    "runway": "runway",
}  # fmt: skip

CLASSES = tuple(sorted(READABLE))


class OPTIMAL31(SceneDataset):
    name = "optimal31"
    folder = "OPTIMAL-31"
    classes = CLASSES
    image_dirs = ("images", ".")
    readable_names = READABLE
    info = DatasetInfo(
        title="OPTIMAL-31",
        source="https://huggingface.co/datasets/jonathan-roberts1/Optimal-31",
        licence="not stated in a standard form; research use",
        citation="Wang et al., Scene Classification With Recurrent Attention of VHR Remote "
        "Sensing Images, IEEE TGRS 57(2), 2019",
        layout="<root>/images/<class>/<image> (e.g. images/baseballdiamond/...)",
        images=1860,
        manual="download the Hugging Face dataset jonathan-roberts1/Optimal-31 and write its "
        "images into <root>/images/<class>/ (class names lower case, words joined)",
        hub=HubSource(
            "jonathan-roberts1/Optimal-31",
            note="the copy fewshot_RSVLMs reads",
        ),
    )
