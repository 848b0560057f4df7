"""PatternNet: 38 classes x 800 aerial images (256 x 256 px, 0.06-4.7 m/px), published split.

Source: https://sites.google.com/view/zhouwx/dataset (Google Drive); the
archive ``PatternNet.zip`` is also mirrored by TorchGeo on Hugging Face, which
``bimors data download patternnet`` uses (SHA-256 pinned from TorchGeo's code).
Licence: the authors offer it for research; we found no standard licence text.
Cite: W. Zhou, S. Newsam, C. Li, Z. Shao, "PatternNet: A benchmark dataset for
performance evaluation of remote sensing image retrieval", ISPRS J. Photogramm.
Remote Sens. 145 (2018) 197-209, doi:10.1016/j.isprsjprs.2018.01.004.
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.info import Archive, DatasetInfo, HubSource
from bimors.data.published import PUBLISHED_SPLITS

#: Label order of the published split (APPLeNet ``patternnet.json``); not alphabetical.
CLASSES = (
    "oil_well", "runway", "baseball_field", "sparse_residential", "parking_lot", "oil_gas_field",
    "wastewater_treatment_plant", "crosswalk", "swimming_pool", "shipping_yard", "harbor",
    "intersection", "forest", "nursing_home", "mobile_home_park", "bridge", "closed_road",
    "coastal_mansion", "golf_course", "runway_marking", "overpass", "transformer_station",
    "tennis_court", "railway", "basketball_court", "christmas_tree_farm", "parking_space",
    "cemetery", "river", "solar_panel", "chaparral", "ferry_terminal", "storage_tank",
    "dense_residential", "beach", "football_field", "freeway", "airplane",
)  # fmt: skip


class PatternNet(SceneDataset):
    name = "patternnet"
    folder = "PatternNet"
    classes = CLASSES
    image_dirs = ("images", "PatternNet/images", ".")
    published = PUBLISHED_SPLITS["patternnet"]
    info = DatasetInfo(
        title="PatternNet",
        source="https://sites.google.com/view/zhouwx/dataset",
        licence="research use per the authors; no standard licence text found",
        citation="Zhou et al., PatternNet, ISPRS J. Photogramm. Remote Sens. 145, 2018",
        layout="<root>/images/<class>/<name><n>.jpg (e.g. images/oil_well/oilwell<n>.jpg); "
        "the downloaded archive's PatternNet/images/ is found too",
        images=30400,
        archive=Archive(
            urls=(
                "https://hf.co/datasets/torchgeo/PatternNet/resolve/"
                "2dbd901b00e301967a5c5146b25454f5d3455ad0/PatternNet.zip",
            ),
            filename="PatternNet.zip",
            sha256="456dd031950b0429518b8ec7d30a5c4b3f6456261ee1dd573a3eee43efb29958",
            note="TorchGeo's mirror of the authors' archive; pin from TorchGeo's code",
        ),
        hub=HubSource(
            "blanchon/PatternNet",
            note="the copy fewshot_RSVLMs reads; the published split needs the original "
            "file names, checked after the download",
        ),
    )
