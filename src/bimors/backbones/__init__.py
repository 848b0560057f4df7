"""Frozen CLIP backbones behind one interface, and the registry that builds them."""

from __future__ import annotations

from collections.abc import Callable

from bimors.backbones.base import FrozenCLIP, ImageFeatures, Preprocess
from bimors.core.registry import Registry

BACKBONES: Registry[Callable[..., FrozenCLIP]] = Registry("backbone")


@BACKBONES.register("hf")
def _hf(model: str, pretrained: str | None = None, activation: str | None = None) -> FrozenCLIP:
    """transformers CLIPModel: a hub id (openai/clip-vit-base-patch16) or a folder.

    Its config names the activation, so ``activation`` is not needed (and refused)."""
    from bimors.backbones.hf_clip import HFCLIP

    if activation is not None:
        from bimors.backbones.loading import ModelLoadError

        raise ModelLoadError(
            f"backbone.activation={activation!r} is for open_clip checkpoint files; an hf "
            "backbone's config names its activation: drop backbone.activation"
        )
    return HFCLIP.from_pretrained(model, pretrained)


@BACKBONES.register("open_clip")
def _open_clip(
    model: str, pretrained: str | None = None, activation: str | None = None
) -> FrozenCLIP:
    """open_clip: an architecture name with a pretrained tag or file, hf-hub: id, or folder."""
    from bimors.backbones.openclip import OpenCLIP

    return OpenCLIP.from_pretrained(model, pretrained, activation)


def load_backbone(
    adapter: str, model: str, pretrained: str | None = None, activation: str | None = None
) -> FrozenCLIP:
    """Build the frozen CLIP ``model`` with the registered ``adapter``
    (``activation``: ``backbone.activation``, see :mod:`bimors.backbones.openclip`)."""
    return BACKBONES.get(adapter)(model, pretrained, activation)


__all__ = ["BACKBONES", "FrozenCLIP", "ImageFeatures", "Preprocess", "load_backbone"]
