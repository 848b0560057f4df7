"""UC Merced Land Use: 21 classes x 100 images (about 256 x 256 px, .tif); no published split.

Source: http://weegee.vision.ucmerced.edu/datasets/landuse.html; the archive
``UCMerced_LandUse.zip`` is downloaded from TorchGeo's Hugging Face mirror or
the authors' site (SHA-256 pinned from TorchGeo's code). Licence: the images
come from the USGS National Map Urban Area Imagery (US public domain); the
authors ask to be cited. Cite: Y. Yang, S. Newsam, "Bag-of-visual-words and
spatial extensions for land-use classification", ACM SIGSPATIAL GIS 2010.

A few images are not exactly 256 x 256; the transforms resize every image.
The split is ours (seeded 50/20/30); label order = sorted folder names.
"""

from __future__ import annotations

from bimors.data.base import SceneDataset
from bimors.data.info import Archive, DatasetInfo

CLASSES = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral",
    "denseresidential", "forest", "freeway", "golfcourse", "harbor", "intersection",
    "mediumresidential", "mobilehomepark", "overpass", "parkinglot", "river", "runway",
    "sparseresidential", "storagetanks", "tenniscourt",
)  # fmt: skip

READABLE = {
    "agricultural": "agricultural land",
    "baseballdiamond": "baseball diamond",
    "denseresidential": "dense residential",
    "golfcourse": "golf course",
    "mediumresidential": "medium residential",
    "mobilehomepark": "mobile home park",
    "parkinglot": "parking lot",
    "sparseresidential": "sparse residential",
    "storagetanks": "storage tanks",
    "tenniscourt": "tennis court",
}


class UCMerced(SceneDataset):
    name = "ucmerced"
    folder = "UCMerced_LandUse"
    classes = CLASSES
    image_dirs = ("images", "UCMerced_LandUse/Images", "Images", ".")
    readable_names = READABLE
    info = DatasetInfo(
        title="UC Merced Land Use",
        source="http://weegee.vision.ucmerced.edu/datasets/landuse.html",
        licence="USGS National Map imagery (US public domain); cite the authors",
        citation="Yang and Newsam, Bag-of-visual-words and spatial extensions for land-use "
        "classification, ACM SIGSPATIAL GIS 2010",
        layout="<root>/UCMerced_LandUse/Images/<class>/<class><nn>.tif (as the archive "
        "extracts) or <root>/images/<class>/...",
        images=2100,
        archive=Archive(
            urls=(
                "https://hf.co/datasets/torchgeo/ucmerced/resolve/"
                "7c5ef3454d9b1cccfa7ccde0c01fc8f00a45909a/UCMerced_LandUse.zip",
                "http://weegee.vision.ucmerced.edu/datasets/UCMerced_LandUse.zip",
            ),
            filename="UCMerced_LandUse.zip",
            sha256="06c539ef28703a58fb07bd2837991ac7c48b813b00bb12ac197efd813a18daeb",
            size=332468434,
            note="authors' archive (also mirrored by TorchGeo); pin from TorchGeo's code",
        ),
    )
