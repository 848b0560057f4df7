"""A method's preset for one protocol and dataset: the official settings where they differ.

Official codes do not run one configuration everywhere: MaPLe has its own
config for cross-dataset transfer and domain generalisation, CoOp-family
baselines pick a prompt template per dataset (EuroSAT's is "a centered
satellite photo of {}."), ProGrad lowers its lambda on EuroSAT. A preset
file (``bimors/methods/configs/<method>.yaml``) therefore holds the base settings
plus two optional sections, applied in this order:

``protocols:``
    ``{protocol: {section: {field: value}}}`` for ``base2new``,
    ``cross_dataset``, ``domain_gen`` or ``fewshot``;
``datasets:``
    ``{dataset: {section: {field: value}}}``, e.g. ``eurosat``.

A user file and ``--set`` overrides go on top. Which layers were applied is
recorded in the run's config (``preset`` section) and shown by
``bimors list --preset NAME --protocol P --dataset D``.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from typing import Any

from bimors.core.config import deep_merge, yaml_load
from bimors.core.errors import ConfigError
from bimors.protocols import PROTOCOL_NAMES

LAYER_KEYS = ("protocols", "datasets")


def preset_names() -> list[str]:
    """Names of the YAML presets shipped with the package."""
    folder = resources.files(__package__) / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The shipped preset ``name`` (e.g. ``bimors``) as a dict."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; valid presets: {', '.join(preset_names())}")
    text = (resources.files(__package__) / "configs" / f"{name}.yaml").read_text(encoding="utf-8")
    return yaml_load(text) or {}


@dataclasses.dataclass
class PresetRecord:
    """What a run's settings were resolved from (saved with the run's config).

    ``layers`` lists the preset parts applied, base first, e.g.
    ``["maple", "maple/protocols/cross_dataset"]``; empty without a preset.
    """

    name: str | None = None
    protocol: str | None = None
    dataset: str | None = None
    layers: list[str] = dataclasses.field(default_factory=list)


def preset_layers(name: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The ``protocols`` and ``datasets`` sections of preset ``name`` (empty when absent)."""
    raw = load_preset(name)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key in LAYER_KEYS:
        section = raw.get(key) or {}
        if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
            raise ConfigError(
                f"preset {name}: {key} must map names to config sections, got {section!r}"
            )
        out[key] = section
    unknown = sorted(set(out["protocols"]) - set(PROTOCOL_NAMES))
    if unknown:
        raise ConfigError(
            f"preset {name}: unknown protocol(s) {', '.join(unknown)} under protocols; valid: "
            f"{', '.join(PROTOCOL_NAMES)}"
        )
    return out


def resolve_preset(
    name: str, protocol: str | None = None, dataset: str | None = None
) -> tuple[dict[str, Any], PresetRecord]:
    """Preset ``name``'s settings for ``protocol`` and ``dataset``, and the record of the layers.

    A method without a preset file resolves to no settings (an empty record
    but for the protocol and dataset asked for).
    """
    if protocol is not None and protocol not in PROTOCOL_NAMES:
        raise ConfigError(
            f"unknown protocol {protocol!r}; valid protocols: {', '.join(PROTOCOL_NAMES)}"
        )
    record = PresetRecord(None, protocol, dataset, [])
    if name not in preset_names():
        return {}, record
    raw = load_preset(name)
    layers = preset_layers(name)
    settings = {k: v for k, v in raw.items() if k not in LAYER_KEYS}
    record.name = name
    record.layers.append(name)
    for key, value in (("protocols", protocol), ("datasets", dataset)):
        if value is not None and value in layers[key]:
            settings = deep_merge(settings, layers[key][value])
            record.layers.append(f"{name}/{key}/{value}")
    return settings, record


def variants(name: str) -> list[str]:
    """``protocols/<p>`` and ``datasets/<d>`` layers that preset ``name`` defines."""
    layers = preset_layers(name)
    return [f"{key}/{value}" for key in LAYER_KEYS for value in layers[key]]
