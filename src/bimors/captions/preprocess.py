"""What a captioner is shown: the decoded image, or the official script's preprocessed one.

The official ``gen_caption.py`` of BiMoRS (ipankhi/BiMoRS) does not hand the
decoded image to the BLIP-2 processor. It first resizes it to 224 x 224
(torchvision ``Resize((224, 224))``: PIL bilinear, aspect ratio not kept),
turns it into a float tensor in [0, 1] (``ToTensor``: ``uint8 / 255`` in
float32), stretches it to the full range with one minimum and maximum over
all pixels and channels (``(t - t.min()) / (t.max() - t.min())``), and turns
it back into an 8-bit image (``ToPILImage``: ``t * 255`` truncated to
``uint8``). Only then does the processor resize and normalise it as usual.

``official`` reproduces that in float32 with the same operations in the same
order, so the bytes equal torchvision's (tested); ``none`` shows the captioner
the decoded image, which is what its own processor expects. A constant image
(maximum equal to minimum), where the official division is 0 / 0, becomes
black: the official NaN cast to ``uint8`` gives 0 on common hardware, but
relying on undefined behaviour is not reproduction, so it is made explicit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from bimors.core.errors import ConfigError

#: Side of the official script's square resize.
OFFICIAL_SIZE = 224


def no_preprocess(image: Image.Image) -> Image.Image:
    """The decoded image, as RGB."""
    return image.convert("RGB")


def official_preprocess(image: Image.Image) -> Image.Image:
    """The official caption script's image: 224 x 224 bilinear, min-max stretched, 8-bit."""
    resized = image.convert("RGB").resize((OFFICIAL_SIZE, OFFICIAL_SIZE), Image.BILINEAR)
    x = np.asarray(resized, dtype=np.uint8).astype(np.float32) / np.float32(255)
    lo, hi = x.min(), x.max()
    if hi == lo:
        return Image.fromarray(np.zeros_like(x, dtype=np.uint8), "RGB")
    stretched = (x - lo) / (hi - lo)
    return Image.fromarray((stretched * np.float32(255)).astype(np.uint8), "RGB")


PREPROCESS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "none": no_preprocess,
    "official": official_preprocess,
}


def preprocessor(name: str) -> Callable[[Image.Image], Image.Image]:
    """The image preprocessing called ``name`` (``none`` or ``official``)."""
    try:
        return PREPROCESS[name]
    except KeyError:
        raise ConfigError(
            f"captions.preprocess: {name!r} is not allowed; choose one of {', '.join(PREPROCESS)}"
        ) from None
