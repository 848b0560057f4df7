"""The resolved configuration of one run: backbone, data, captions, method and training.

Presets (``bimors/configs/<method>.yaml``) give each method its reference
hyper-parameters, per protocol and dataset where the official code differs
(see :mod:`bimors.presets`); a user file and dotted overrides go on top. The
resolved config, with the record of the preset layers applied, is saved with
every run and checkpoint.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Literal

from bimors.config import (
    apply_overrides,
    deep_merge,
    from_dict,
    load_yaml,
    to_dict,
)
from bimors.errors import ConfigError
from bimors.methods import METHODS, MethodConfig, method_config
from bimors.presets import PresetRecord, resolve_preset


@dataclasses.dataclass
class BackboneConfig:
    """``adapter`` is ``hf`` (transformers) or ``open_clip``; ``model`` a hub id, name or folder."""

    adapter: str = "hf"
    model: str = "openai/clip-vit-base-patch16"
    pretrained: str | None = None  # open_clip tag, checkpoint file, hf-file:REPO/PATH or URL
    #: A named checkpoint (``bimors list`` shows them); it sets the three fields above.
    preset: str | None = None

    def __post_init__(self) -> None:
        if self.preset is None:
            return
        from bimors.backbones.presets import get_preset

        fields = get_preset(self.preset).fields
        for key, want in fields.items():
            if getattr(self, key) != want:
                raise ConfigError(
                    f"backbone.{key}={getattr(self, key)!r} contradicts backbone.preset="
                    f"{self.preset} (which sets {want!r}); drop one of the two"
                )


@dataclasses.dataclass
class DataConfig:
    """Which data a run uses; ``bimors.data.dataset_options`` turns it into dataset options.

    ``classnames``: ``reference`` (the official code's prompt names, reproduces
    the paper) or ``readable``. ``split_file``: an explicit split file (else the
    published one, or a seeded one saved beside the images). ``split_seed``:
    seed of a seeded split. ``exclude``: a file of relpaths left out on purpose
    (the dataset's ``excluded`` list is what to save with the run); one list
    serves the training dataset and every transfer target.
    ``check_split``: false to train on your own ``split_file`` for a dataset
    with a published split (its SHA-256 pin is then not checked, and the run's
    ``data.json`` says ``published_split: false``).
    ``fewshot_sampler``: ``hash`` (ours: independent of Python's ``random``
    and of the class set) or ``dassl`` (exactly the images the official
    Dassl-based codes draw for the seed; see :mod:`bimors.data.dassl`).
    """

    dataset: str = "imagefolder"
    root: str = ""
    shots: int = 16  # per class; 0 or less means all training images
    classnames: Literal["reference", "readable"] = "reference"
    num_workers: int = 2
    split_file: str | None = None
    split_seed: int = 0
    exclude: str | None = None
    check_split: bool = True  # false: use your own split_file for a published dataset
    fewshot_sampler: Literal["hash", "dassl"] = "hash"

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ValueError("data.num_workers must be >= 0")


@dataclasses.dataclass
class CaptionConfig:
    """Where caption vectors come from (needed by methods that use captions).

    The token budget is ``max_new_tokens`` or, when ``max_length`` is set,
    ``max_length`` as transformers counts it (the official script's
    ``max_length=16``: 15 new tokens for a T5 decoder); set one, the other
    null. ``preprocess``: ``none`` (the processor sees the decoded image) or
    ``official`` (224 x 224 resize and min-max stretch first, as the official
    ``gen_caption.py``; see :mod:`bimors.captions.preprocess`).
    """

    store: str | None = None  # default: <root>/.bimors/captions/<captioner>__<encoder>.sqlite
    captioner: str = "Salesforce/blip2-flan-t5-xl"
    encoder: str = "bert-base-uncased"
    num_beams: int = 4
    max_new_tokens: int | None = 16
    max_length: int | None = None
    preprocess: Literal["none", "official"] = "none"
    batch_size: int = 16

    def __post_init__(self) -> None:
        if (self.max_new_tokens is None) == (self.max_length is None):
            raise ValueError(
                "set exactly one of captions.max_new_tokens and captions.max_length (the other "
                f"null); got max_new_tokens={self.max_new_tokens}, max_length={self.max_length}"
            )

    def expected_generation(self) -> dict[str, Any]:
        """The generation fields a caption store must have been made with."""
        return {
            "num_beams": self.num_beams,
            "max_new_tokens": self.max_new_tokens,
            "max_length": self.max_length,
            "preprocess": self.preprocess,
        }

    def generation(self):
        """The captioner's :class:`~bimors.captions.captioner.GenerationSettings`."""
        from bimors.captions.captioner import GenerationSettings

        return GenerationSettings(
            num_beams=self.num_beams,
            max_new_tokens=self.max_new_tokens,
            max_length=self.max_length,
            preprocess=self.preprocess,
        )


@dataclasses.dataclass
class TrainConfig:
    """SGD with a constant warm-up then cosine decay, stepped once per epoch (as Dassl does)."""

    epochs: int = 10
    batch_size: int = 4
    lr: float = 0.009
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: int = 1
    warmup_lr: float = 1e-5
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"  # auto: bf16 if native
    eval_batch_size: int = 100
    seed: int = 1
    deterministic: bool = False
    selection: Literal["last", "val"] = "last"
    nonfinite: Literal["stop", "skip"] = "stop"
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1")
        if self.lr <= 0:
            raise ValueError("train.lr must be > 0")
        if not 0 <= self.warmup_epochs < max(self.epochs, 1) + 1:
            raise ValueError("train.warmup_epochs must be between 0 and train.epochs")
        if not DEVICE.match(self.device):
            raise ValueError(
                f"train.device={self.device!r} is not a device; use auto, cpu, cuda, cuda:N or mps"
            )


#: The device names a run accepts (whether the device exists is checked at run time).
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclasses.dataclass
class FeatureConfig:
    """The frozen image-feature cache (see :mod:`bimors.engine.features`).

    Cached test-transform features equal recomputed ones, so that cache is on.
    Cached training views replace fresh random augmentations by ``train_views``
    fixed ones per image (a different augmentation distribution), so it is off.
    Shared training views (``share_views``) are exact and cost about 2 KB per
    view and field set ``pooled, norm`` (ViT-B/16), so they are on.
    """

    cache: bool = True  # reuse evaluation features across epochs, methods and seeds
    dir: str | None = None  # default: $BIMORS_CACHE_DIR or ~/.cache/bimors/features
    train_views: int = 0  # > 0: cache this many augmented views per training image
    #: share training batches' frozen features across the runs of a grid seed (exact;
    #: stored under <dir>/views; see bimors.engine.shared_views)
    share_views: bool = True
    share_fields: list[str] = dataclasses.field(default_factory=lambda: ["pooled", "norm"])

    def __post_init__(self) -> None:
        if self.train_views < 0:
            raise ValueError("features.train_views must be >= 0")
        from bimors.engine.shared_views import check_fields

        check_fields(self.share_fields)


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
    ``protocol`` and for the dataset the file or overrides name
    (``data.dataset``). The layers applied are recorded in ``preset``.
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
    base, record = resolve_preset(name, protocol, str(dataset))
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
    """Fill ``backbone.adapter/model/pretrained`` from ``backbone.preset``.

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
