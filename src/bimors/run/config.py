"""The resolved configuration of one run: backbone, data, captions, method and training.

Presets (``bimors/methods/configs/<method>.yaml``) give each method its reference
hyper-parameters, per protocol and dataset where the official code differs
(see :mod:`bimors.methods.presets`); a user file and dotted overrides go on top. The
resolved config, with the record of the preset layers applied, is saved with
every run and checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from bimors.captions.config import CaptionConfig
from bimors.core.config import (
    apply_overrides,
    deep_merge,
    from_dict,
    load_yaml,
    to_dict,
)
from bimors.core.errors import ConfigError
from bimors.data.config import DataConfig
from bimors.engine.config import DEVICE, FeatureConfig, TrainConfig
from bimors.methods import METHODS, MethodConfig, method_config
from bimors.methods.presets import PresetRecord, resolve_preset

__all__ = [
    "DEVICE",
    "BackboneConfig",
    "CaptionConfig",
    "DataConfig",
    "FeatureConfig",
    "RunConfig",
    "TrainConfig",
    "absolute_paths",
    "resolve_config",
]


@dataclasses.dataclass
class BackboneConfig:
    """``adapter`` is ``hf`` (transformers) or ``open_clip``; ``model`` a hub id, name or folder."""

    adapter: str = "hf"
    model: str = "openai/clip-vit-base-patch16"
    pretrained: str | None = None  # open_clip tag, checkpoint file, hf-file:REPO/PATH or URL
    #: A named checkpoint (``bimors list`` shows them); it sets the three fields above.
    preset: str | None = None
    #: ``gelu``: a checkpoint file on a plain OpenAI-shaped open_clip name really is GELU
    #: (else refused: such files are QuickGELU); ``quick_gelu``: build the ``-quickgelu`` variant.
    activation: Literal["gelu", "quick_gelu"] | None = None

    def __post_init__(self) -> None:
        if self.preset is None:
            return
        from bimors.backbones.presets import get_preset

        fields = get_preset(self.preset).fields
        for key, want in fields.items():
            if key == "pretrained" and local_weights(self.pretrained):
                # a local copy of the preset's checkpoint (the loader checks that it fits)
                if not Path(str(self.pretrained)).expanduser().is_file():
                    raise ConfigError(
                        f"backbone.pretrained={self.pretrained!r}: no such checkpoint file; give "
                        f"the path of a local copy of the {self.preset} weights"
                    )
                continue
            if getattr(self, key) != want:
                raise ConfigError(
                    f"backbone.{key}={getattr(self, key)!r} contradicts backbone.preset="
                    f"{self.preset} (which sets {want!r}); drop one of the two"
                )


def local_weights(pretrained: str | None) -> bool:
    """Whether ``backbone.pretrained`` names a checkpoint file (not an open_clip tag or URL)."""
    from bimors.backbones.loading import is_remote_weights, looks_like_path

    if not pretrained or is_remote_weights(pretrained):
        return False
    return looks_like_path(pretrained) or Path(pretrained).suffix in WEIGHT_SUFFIXES


#: The file types of checkpoint files.
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


@dataclasses.dataclass
class RunConfig:
    method: str = "bimors"
    method_params: MethodConfig = dataclasses.field(default_factory=MethodConfig)
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    captions: CaptionConfig = dataclasses.field(default_factory=CaptionConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    preset: PresetRecord = dataclasses.field(default_factory=PresetRecord)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict; the method section holds its name and its options."""
        out = to_dict(self)
        out["method"] = {"name": self.method, **out.pop("method_params")}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Validate a nested dict (as :meth:`to_dict` writes it)."""
        data = dict(data)
        method = data.pop("method", {}) or {}
        if isinstance(method, str):
            method = {"name": method}
        if not isinstance(method, dict):
            raise ConfigError(f"method: expected a mapping with a name, got {method!r}")
        method = dict(method)
        name = method.pop("name", "bimors")
        METHODS.get(name)
        sections = from_dict(_Sections, data, "config")
        return cls(
            method=name,
            method_params=method_config(name, method),
            backbone=sections.backbone,
            data=sections.data,
            captions=sections.captions,
            train=sections.train,
            features=sections.features,
            preset=sections.preset,
        )


@dataclasses.dataclass
class _Sections:
    backbone: BackboneConfig = dataclasses.field(default_factory=BackboneConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    captions: CaptionConfig = dataclasses.field(default_factory=CaptionConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    preset: PresetRecord = dataclasses.field(default_factory=PresetRecord)


def resolve_config(
    method: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    protocol: str | None = None,
) -> RunConfig:
    """Preset of ``method`` (if any) <- ``config_file`` <- ``overrides``, validated.

    The method may come from the argument, the file or an override
    (``method.name=coop``); its preset is applied first, with its layers for
    ``protocol``, for the dataset the file or overrides name (``data.dataset``)
    and for their shot count (``data.shots``, else the preset's). The layers
    applied are recorded in ``preset``.
    """
    user = load_yaml(config_file) if config_file else {}
    user = apply_overrides(user, overrides or [])
    user_method = user.get("method", {})
    if isinstance(user_method, str):
        user_method = {"name": user_method}
        user["method"] = user_method
    name = method or (user_method or {}).get("name") or "bimors"
    METHODS.get(name)
    user_name = (user_method or {}).get("name")
    if method and user_name and user_name != method:
        raise ConfigError(
            f"method.name={user_name!r} (config file or --set) conflicts with --method {method}; "
            "name the method once"
        )
    data = user.get("data") if isinstance(user.get("data"), dict) else {}
    dataset = data.get("dataset") or DataConfig.dataset
    user_shots = data.get("shots")
    # a per-shot preset layer needs the count; any other value is refused by name below
    shots = user_shots if type(user_shots) is int else None
    base, record = resolve_preset(name, protocol, str(dataset), shots)
    merged = deep_merge(base, user)
    merged = _apply_backbone_preset(merged, user)
    merged.setdefault("method", {})
    merged["method"] = {**merged["method"], "name": name}
    merged["preset"] = dataclasses.asdict(record)
    return absolute_paths(RunConfig.from_dict(merged))


def _local(value: str | None) -> str | None:
    """A model id that names an existing local file or folder, as an absolute path."""
    if not value:
        return value
    path = Path(value).expanduser()
    return str(path.resolve()) if path.exists() else value


def _absolute(value: str | None) -> str | None:
    return str(Path(value).expanduser().absolute()) if value else value


def absolute_paths(cfg: RunConfig) -> RunConfig:
    """``cfg`` with every path made absolute, so the saved config works from any folder.

    Data paths become absolute as typed (relative to the current folder); a
    model id becomes an absolute path only when it names something local
    (``tiny/clip-hf``), so hub ids (``openai/clip-vit-base-patch16``) stay ids.
    """
    d, c, b, f = cfg.data, cfg.captions, cfg.backbone, cfg.features
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(
            d,
            root=_absolute(d.root) or "",
            split_file=_absolute(d.split_file),
            exclude=_absolute(d.exclude),
        ),
        captions=dataclasses.replace(
            c,
            store=_absolute(c.store),
            captioner=_local(c.captioner) or c.captioner,
            encoder=_local(c.encoder) or c.encoder,
        ),
        backbone=dataclasses.replace(
            b, model=_local(b.model) or b.model, pretrained=_local(b.pretrained)
        ),
        features=dataclasses.replace(f, dir=_absolute(f.dir)),
    )


def _apply_backbone_preset(merged: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """Fill ``backbone.adapter/model/pretrained/activation`` from ``backbone.preset``.

    The method preset's backbone fields give way to the named checkpoint; the
    user's own, where they differ from it, are refused in BackboneConfig.
    """
    backbone = merged.get("backbone") or {}
    if not isinstance(backbone, dict) or not backbone.get("preset"):
        return merged
    from bimors.backbones.presets import get_preset

    fields = get_preset(str(backbone["preset"])).fields
    mine = user.get("backbone") or {}
    resolved = {**backbone, **fields}
    resolved.update({k: v for k, v in mine.items() if k in fields})  # clashes fail validation
    return {**merged, "backbone": resolved}
