"""EuroSAT (RGB): 10 land-cover classes, 27,000 Sentinel-2 images (64 x 64 px); no published split.

Source: https://github.com/phelber/EuroSAT; the RGB archive ``EuroSAT.zip`` is
downloaded from TorchGeo's Hugging Face mirror (the one torchvision uses) or
DFKI's original address (MD5 pinned as in torchvision/TorchGeo; no SHA-256
is published). Licence: MIT per the authors' repository (as reported there);
Sentinel-2 data are Copernicus open data. Cite: P. Helber, B. Bischke,
A. Dengel, D. Borth, "EuroSAT: A Novel Dataset and Deep Learning Benchmark for
Land Use and Land Cover Classification", IEEE JSTARS 12(7) 2019, 2217-2226.

The split is ours (seeded 50/20/30); label order = sorted folder names.
Readable names are the descriptive forms the CoOp family uses for prompts.
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.info import Archive, DatasetInfo, HubSource

CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
    "PermanentCrop", "Residential", "River", "SeaLake",
)  # fmt: skip

READABLE = {
    "AnnualCrop": "annual crop land",
    "HerbaceousVegetation": "herbaceous vegetation land",
    "Highway": "highway or road",
    "Industrial": "industrial buildings",
    "Pasture": "pasture land",
    "PermanentCrop": "permanent crop land",
    "Residential": "residential buildings",
    "SeaLake": "sea or lake",
}


class EuroSAT(SceneDataset):
    name = "eurosat"
    folder = "EuroSAT"
    classes = CLASSES
    image_dirs = ("images", "2750", "EuroSAT_RGB", ".")
    readable_names = READABLE
    info = DatasetInfo(
        title="EuroSAT (RGB)",
        source="https://github.com/phelber/EuroSAT",
        licence="MIT per the authors' repository; Copernicus Sentinel-2 data",
        citation="Helber et al., EuroSAT, IEEE JSTARS 12(7), 2019",
        layout="<root>/2750/<Class>/<Class>_<n>.jpg (as the archive extracts) or "
        "<root>/images/<Class>/...",
        images=27000,
        archive=Archive(
            urls=(
                "https://huggingface.co/datasets/torchgeo/eurosat/resolve/"
                "c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
                "https://madm.dfki.de/files/sentinel/EuroSAT.zip",
            ),
            filename="EuroSAT.zip",
            md5="c8fa014336c82ac7804f0398fcb19387",
            note="authors' RGB archive (mirrored by TorchGeo); MD5 as pinned by torchvision",
        ),
        hub=HubSource(
            "blanchon/EuroSAT_RGB",
            note="the copy fewshot_RSVLMs reads; its file names may differ from the "
            "archive's, and so may the seeded split",
        ),
    )
