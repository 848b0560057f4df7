"""NWPU-RESISC45: 45 classes x 700 images (256 x 256 px), published split.

Source: G. Cheng et al. (Northwestern Polytechnical University; OneDrive link
listed at https://www.tensorflow.org/datasets/catalog/resisc45). The archive
``NWPU-RESISC45.zip`` is mirrored by TorchGeo on Hugging Face, which
``bimors data download resisc45`` uses (MD5 pinned from TorchGeo's code; no
SHA-256 is published). Licence: not stated in a standard form; research use.
Cite: G. Cheng, J. Han, X. Lu, "Remote Sensing Image Scene Classification:
Benchmark and State of the Art", Proc. IEEE 105(10) 2017, 1865-1883.
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.info import Archive, DatasetInfo, HubSource
from bimors.data.published import PUBLISHED_SPLITS

#: Label order of the published split (APPLeNet ``resisc45.json``); not alphabetical.
CLASSES = (
    "runway", "lake", "sparse_residential", "wetland", "parking_lot", "roundabout", "terrace",
    "sea_ice", "baseball_diamond", "harbor", "palace", "ship", "intersection", "forest",
    "ground_track_field", "mobile_home_park", "commercial_area", "bridge", "island",
    "golf_course", "thermal_power_station", "airport", "mountain", "overpass", "industrial_area",
    "tennis_court", "railway", "cloud", "basketball_court", "circular_farmland", "meadow",
    "railway_station", "river", "chaparral", "desert", "church", "stadium", "medium_residential",
    "rectangular_farmland", "snowberg", "storage_tank", "dense_residential", "beach", "freeway",
    "airplane",
)  # fmt: skip


class RESISC45(SceneDataset):
    name = "resisc45"
    folder = "RESISC45"
    classes = CLASSES
    image_dirs = ("images", "NWPU-RESISC45", ".")
    published = PUBLISHED_SPLITS["resisc45"]
    info = DatasetInfo(
        title="NWPU-RESISC45",
        source="https://www.tensorflow.org/datasets/catalog/resisc45 (authors' OneDrive link)",
        licence="not stated in a standard form; research use",
        citation="Cheng, Han, Lu, Remote Sensing Image Scene Classification: Benchmark and "
        "State of the Art, Proc. IEEE 105(10), 2017",
        layout="<root>/images/<class>/<class>_<nnn>.jpg; "
        "the archive's NWPU-RESISC45/<class>/ is found too",
        images=31500,
        archive=Archive(
            urls=(
                "https://hf.co/datasets/torchgeo/resisc45/resolve/"
                "a826b44d938a883185f11ebe3d512d38b464312f/NWPU-RESISC45.zip",
            ),
            filename="NWPU-RESISC45.zip",
            md5="75206b2e16446591afa88e2628744886",
            note="TorchGeo's mirror; MD5 from TorchGeo's code (no SHA-256 published)",
        ),
        hub=HubSource(
            "timm/resisc45",
            note="the copy fewshot_RSVLMs reads; the published split needs the original "
            "file names, checked after the download",
        ),
    )
