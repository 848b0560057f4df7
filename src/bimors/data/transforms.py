"""Image transforms of the reference recipe, sized and normalised from the backbone."""

from __future__ import annotations

from torchvision import transforms as T

from bimors.backbones.base import Preprocess

_MODES = {
    "bicubic": T.InterpolationMode.BICUBIC,
    "bilinear": T.InterpolationMode.BILINEAR,
    "nearest": T.InterpolationMode.NEAREST,
}


def build_transform(
    pre: Preprocess, train: bool, scale: tuple[float, float] | None = None
) -> T.Compose:
    """Train: random-resized crop + flip; test: resize + centre crop (Dassl's CLIP recipe).

    ``scale`` is the crop's area range (default torchvision's (0.08, 1), Dassl's);
    Tip-Adapter and LP++ augment their training images with (0.5, 1).
    """
    mode = _MODES.get(pre.interpolation, T.InterpolationMode.BICUBIC)
    norm = T.Normalize(pre.mean, pre.std)
    if train:
        area = {} if scale is None else {"scale": tuple(scale)}
        steps = [
            T.RandomResizedCrop(pre.image_size, interpolation=mode, **area),
            T.RandomHorizontalFlip(),
        ]
    else:
        steps = [T.Resize(pre.image_size, interpolation=mode), T.CenterCrop(pre.image_size)]
    return T.Compose([*steps, T.ToTensor(), norm])
