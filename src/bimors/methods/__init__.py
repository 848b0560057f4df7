"""Methods in one registry; every method runs on the one trainer."""

from __future__ import annotations

from typing import Any

from bimors.backbones.base import FrozenCLIP
from bimors.core.errors import ConfigError
from bimors.core.registry import Registry
from bimors.methods.applenet import APPLeNet
from bimors.methods.base import Method, MethodConfig
from bimors.methods.bimors import BiMoRS
from bimors.methods.clap import CLAP
from bimors.methods.clip_adapter import CLIPAdapter
from bimors.methods.clip_lora import CLIPLoRA
from bimors.methods.cocoop import CoCoOp
from bimors.methods.coop import CoOp
from bimors.methods.ivlp import IVLP
from bimors.methods.kgcoop import KgCoOp
from bimors.methods.linear_probe import LinearProbe
from bimors.methods.lp_pp import LPpp
from bimors.methods.maple import MaPLe
from bimors.methods.prograd import ProGrad
from bimors.methods.promptsrc import PromptSRC
from bimors.methods.taskres import TaskRes
from bimors.methods.tcp import TCP
from bimors.methods.tip_adapter import TipAdapter
from bimors.methods.tip_adapter_f import TipAdapterF
from bimors.methods.zeroshot import ZeroShotCLIP

METHODS: Registry[type[Method]] = Registry("method")
for _cls in (
    ZeroShotCLIP,
    CoOp,
    CoCoOp,
    BiMoRS,
    CLIPAdapter,
    LinearProbe,
    ProGrad,
    MaPLe,
    APPLeNet,
    KgCoOp,
    TCP,
    IVLP,
    PromptSRC,
    CLIPLoRA,
    TipAdapter,
    TipAdapterF,
    TaskRes,
    LPpp,
    CLAP,
):
    METHODS.register(_cls.name)(_cls)


def method_config(name: str, params: dict[str, Any] | None = None) -> MethodConfig:
    """The validated config of method ``name`` from a plain dict of options."""
    from bimors.core.config import from_dict

    return from_dict(METHODS.get(name).config_cls, params or {}, f"method.{name}")


def build_method(
    name: str,
    backbone: FrozenCLIP,
    classnames: list[str],
    params: dict[str, Any] | MethodConfig | None = None,
    caption_dim: int | None = None,
    names: str | None = "reference",
) -> Method:
    """Build method ``name`` on ``backbone`` for ``classnames``.

    Class names given by hand go through the same prompt-name rule as a
    dataset's (``names``: ``reference``, the official code's, or
    ``readable``), so ``storage_tank`` reaches CLIP as ``storage tank`` as it
    does in every run; both rules leave names already in prompt form as they
    are. ``names=None`` uses ``classnames`` verbatim.
    """
    from bimors.data.base import prompt_names

    cls = METHODS.get(name)
    cfg = params if isinstance(params, MethodConfig) else method_config(name, params)
    if names is not None:
        classnames = prompt_names(list(classnames), names)
    try:
        return cls(
            backbone, classnames, cfg, caption_dim=caption_dim if cls.uses_captions else None
        )
    except ConfigError:
        raise
    except ValueError as err:  # a method option that cannot work with this backbone
        raise ConfigError(
            f"method {name!r} cannot be built with its method.* options: {err}"
        ) from None


__all__ = ["METHODS", "Method", "MethodConfig", "build_method", "method_config"]
