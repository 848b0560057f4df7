"""PatternNetv2: PatternNet restricted to 16 classes shared by the four v2 datasets.

The v2 datasets were curated and released by APPLeNet (Singha et al., CVPR
Workshops 2023) for domain generalisation: the same 16 classes, with the same
folder names and label order, drawn from PatternNet, RSICD, RESISC45 and
MLRSNet. Source: Google Drive link in https://github.com/mainaksingha01/APPLeNet
(README, "Released Datasets"): a manual download. Licence: derived from
PatternNet; its terms apply. Cite APPLeNet and PatternNet. The archive's
internal folder layout is not documented; the loader accepts the class folders
under ``<root>/images/`` (as APPLeNet's loader reads them) or directly under
``<root>``.
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.info import DatasetInfo
from bimors.data.published import PUBLISHED_SPLITS

#: The 16 shared classes in the published label order (identical in all four v2 splits).
SHARED_CLASSES = (
    "baseballfield", "sparse_residential", "harbor", "intersection", "forest", "bridge",
    "overpass", "railway", "parking", "meadow", "river", "desert", "stadium", "storage_tank",
    "dense_residential", "beach",
)  # fmt: skip

SHARED_READABLE = {"baseballfield": "baseball field"}

APPLENET_CITATION = (
    "Singha, Jha, Solanki, Bose, Banerjee, APPLeNet: Visual Attention Parameterized Prompt "
    "Learning for Few-Shot Remote Sensing Image Generalization using CLIP, CVPR Workshops 2023"
)
V2_LAYOUT = "<root>/images/<class>/<class>_<n>.jpg (16 shared classes)"


def v2_manual(drive_url: str) -> str:
    """The manual step of every v2 dataset: a Google Drive archive."""
    return (
        f"download the archive from {drive_url} in a browser (Google Drive needs a manual "
        "confirmation), extract it and arrange it as " + V2_LAYOUT
    )


class PatternNetv2(SceneDataset):
    name = "patternnetv2"
    folder = "PatternNetv2"
    classes = SHARED_CLASSES
    image_dirs = ("images", ".")
    published = PUBLISHED_SPLITS["patternnetv2"]
    readable_names = SHARED_READABLE
    info = DatasetInfo(
        title="PatternNetv2 (APPLeNet)",
        source="https://github.com/mainaksingha01/APPLeNet",
        licence="derived from PatternNet; PatternNet's terms apply",
        citation=APPLENET_CITATION,
        layout=V2_LAYOUT,
        images=12800,
        manual=v2_manual("https://drive.google.com/file/d/1K-GZ2KjQ3hn17JJBrxnmXsTxAFeg2XUT"),
    )
