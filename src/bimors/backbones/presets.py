"""Named CLIP backbones for remote sensing: where the weights are and how they must be built.

A preset resolves to the three ``backbone`` fields (``adapter``, ``model``,
``pretrained``), so a run folder records exactly what was loaded, and a raw
path or hub id keeps working without one. Each fact below was read from the
checkpoint's own public repository or model card; where that source left a
fact open it says so in ``note``.

The QuickGELU rule: CLIP's original OpenAI weights use QuickGELU
(``x * sigmoid(1.702 x)``); every checkpoint fine-tuned from them must be
built with it, i.e. with an open_clip ``-quickgelu`` architecture. Loading
such a checkpoint into plain ``ViT-B-32`` raises no error and silently runs
the wrong activation (open_clip 2.29 and later no longer switch QuickGELU on
for ``pretrained='openai'`` either; the open_clip adapter does, for every
release). Checkpoints trained from LAION weights (GeoRSCLIP ViT-H-14, SkyCLIP
ViT-B-32) use plain GELU.
"""

from __future__ import annotations

from dataclasses import dataclass

from bimors.backbones.base import OPENAI_MEAN, OPENAI_STD
from bimors.core.errors import UnknownNameError

_OPENAI_CITE = (
    "Radford et al., Learning Transferable Visual Models From Natural Language Supervision, "
    "ICML 2021, arXiv:2103.00020"
)
#: open_clip architectures of OpenAI's shape: OpenAI trained them with QuickGELU, so
#: a checkpoint file fine-tuned from OpenAI (RemoteCLIP, GeoRSCLIP) needs the
#: ``-quickgelu`` variant, and the weights cannot tell GELU from QuickGELU. A
#: checkpoint file on one of these plain names is refused unless
#: ``backbone.activation=gelu`` (which the GELU presets here set).
OPENAI_SHAPED = frozenset(
    {"RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B-32", "ViT-B-16", "ViT-L-14"}
    | {"ViT-L-14-336"}
)

_OPENAI_LICENCE = "MIT (code); model card: research use, deployed use out of scope"
_REMOTECLIP_CITE = (
    "Liu et al., RemoteCLIP: A Vision Language Foundation Model for Remote Sensing, "
    "IEEE TGRS 62, 2024, arXiv:2306.11029"
)
_GEORSCLIP_CITE = (
    "Zhang et al., RS5M and GeoRSCLIP: A Large-Scale Vision-Language Dataset and a Large "
    "Vision-Language Model for Remote Sensing, arXiv:2306.11300"
)
_SKYCLIP_CITE = (
    "Wang et al., SkyScript: A Large and Semantically Diverse Vision-Language Dataset for "
    "Remote Sensing, AAAI 2024, arXiv:2312.12856"
)
_SKYSCRIPT_CKPT = "https://opendatasharing.s3.us-west-2.amazonaws.com/SkyScript/ckpt"


@dataclass(frozen=True)
class BackbonePreset:
    """One named checkpoint.

    Attributes:
        name: the preset's name (``backbone.preset=NAME``).
        family: OpenAI CLIP, RemoteCLIP, GeoRSCLIP or SkyCLIP.
        adapter: ``hf`` or ``open_clip``.
        model: hub id (``hf``) or open_clip architecture (``-quickgelu`` where needed).
        pretrained: open_clip tag, ``hf-file:REPO/PATH`` or an https URL; None for ``hf``.
        quick_gelu: whether the weights need QuickGELU, and why (``activation_reason``).
        source: the checkpoint's own repository, where the facts were read.
    """

    name: str
    family: str
    adapter: str
    model: str
    pretrained: str | None
    quick_gelu: bool
    activation_reason: str
    licence: str
    citation: str
    source: str
    image_size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"
    note: str = ""

    @property
    def fields(self) -> dict[str, str | None]:
        """The ``backbone`` config fields this preset stands for."""
        gelu = self.adapter == "open_clip" and self.model in OPENAI_SHAPED
        return {
            "adapter": self.adapter,
            "model": self.model,
            "pretrained": self.pretrained,
            "activation": "gelu" if gelu else None,  # a GELU file on an OpenAI-shaped name
        }


def _openai(arch: str, hub: str) -> list[BackbonePreset]:
    slug = arch.lower()
    common = dict(
        family="OpenAI CLIP",
        quick_gelu=True,
        activation_reason="OpenAI's own weights (trained with QuickGELU)",
        licence=_OPENAI_LICENCE,
        citation=_OPENAI_CITE,
    )
    return [
        BackbonePreset(
            name=f"openai-{slug}",
            adapter="hf",
            model=hub,
            pretrained=None,
            source=f"https://huggingface.co/{hub}",
            **common,
        ),
        BackbonePreset(
            name=f"openai-{slug}-openclip",
            adapter="open_clip",
            model=f"{arch}-quickgelu",
            pretrained="openai",
            source="https://github.com/openai/CLIP",
            **common,
        ),
    ]


def _remoteclip(arch: str) -> BackbonePreset:
    return BackbonePreset(
        name=f"remoteclip-{arch.lower()}",
        family="RemoteCLIP",
        adapter="open_clip",
        model=f"{arch}-quickgelu",
        pretrained=f"hf-file:chendelong/RemoteCLIP/RemoteCLIP-{arch}.pt",
        quick_gelu=True,
        activation_reason="continual pre-training from OpenAI CLIP weights",
        licence="see the repository (a licence was added in 2024; the weights state none)",
        citation=_REMOTECLIP_CITE,
        source="https://github.com/ChenDelong1999/RemoteCLIP",
        note=(
            "the repository's README demo builds the plain architecture while its retrieval "
            "script uses pretrained='openai' (QuickGELU on open_clip <= 2.28); we follow the "
            "OpenAI initialisation"
        ),
    )


def _georsclip(arch: str, quick: bool, reason: str, note: str = "") -> BackbonePreset:
    return BackbonePreset(
        name=f"georsclip-{arch.lower()}",
        family="GeoRSCLIP",
        adapter="open_clip",
        model=f"{arch}-quickgelu" if quick else arch,
        pretrained=f"hf-file:Zilun/GeoRSCLIP/ckpt/RS5M_{arch}.pt",
        quick_gelu=quick,
        activation_reason=reason,
        licence="MIT (code); model card: CC (version not stated)",
        citation=_GEORSCLIP_CITE,
        source="https://github.com/om-ai-lab/RS5M",
        note=note,
    )


def _skyclip(arch: str, archive: str, quick: bool, reason: str) -> BackbonePreset:
    return BackbonePreset(
        name=f"skyclip-{arch.lower()}",
        family="SkyCLIP",
        adapter="open_clip",
        model=f"{arch}-quickgelu" if quick else arch,
        pretrained=f"{_SKYSCRIPT_CKPT}/{archive}",
        quick_gelu=quick,
        activation_reason=reason,
        licence="MIT",
        citation=_SKYCLIP_CITE,
        source="https://github.com/wangzhecheng/SkyScript",
        note="a zip archive holding one open_clip training checkpoint",
    )


PRESETS: dict[str, BackbonePreset] = {
    p.name: p
    for p in [
        *_openai("ViT-B-32", "openai/clip-vit-base-patch32"),
        *_openai("ViT-B-16", "openai/clip-vit-base-patch16"),
        *_openai("ViT-L-14", "openai/clip-vit-large-patch14"),
        _remoteclip("RN50"),
        _remoteclip("ViT-B-32"),
        _remoteclip("ViT-L-14"),
        _georsclip("ViT-B-32", True, "fine-tuned from OpenAI CLIP (pretrained='openai')"),
        _georsclip(
            "ViT-L-14",
            True,
            "fine-tuned from OpenAI CLIP",
            note="the base model of L-14 is not stated by the repository; OpenAI's is the "
            "only public L-14 CLIP of that family at 224 and 336 px",
        ),
        _georsclip("ViT-H-14", False, "fine-tuned from LAION-2B weights (laion2b_s32b_b79k)"),
        _skyclip("ViT-B-32", "SkyCLIP_ViT_B32_top50pct.zip", False, "trained from laion2b_e16"),
        _skyclip(
            "ViT-L-14",
            "SkyCLIP_ViT_L14_top30pct.zip",
            True,
            "initialised from OpenAI CLIP (trained with --force-quick-gelu)",
        ),
    ]
}


def get_preset(name: str) -> BackbonePreset:
    """The preset called ``name``, or an error listing them all."""
    if name not in PRESETS:
        raise UnknownNameError(
            f"unknown backbone preset {name!r}; valid presets: {', '.join(PRESETS)}"
        )
    return PRESETS[name]
