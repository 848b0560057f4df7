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

Some settings hold only for one dataset in one protocol (PromptSRC's few-shot
config: GPA 45/5 on EuroSAT, 30/30 elsewhere, while base-to-new keeps 15/1), so
a ``protocols/<p>`` layer may itself hold a ``datasets:`` section, applied after
the plain dataset layer. Any other nesting is refused, never ignored.

Official codes also change settings with the shot count (CoOp and ProGrad:
50 epochs at 1 shot, 100 at 2 and 4, 200 at 8 and 16, COOP.md and
ProGrad.public/README.md; ProGrad: lambda 0.8 on EuroSAT only at 8 and 16
shots). So the base settings and every ``protocols/<p>`` or ``datasets/<d>``
layer may hold a ``shots:`` section ``{K: {section: {field: value}}}``, applied
right after the part it sits in when the run's ``data.shots`` is K:

    base, base/shots/K, protocols/<p>, protocols/<p>/shots/K, datasets/<d>,
    datasets/<d>/shots/K, protocols/<p>/datasets/<d>, protocols/<p>/datasets/<d>/shots/K

A user file and ``--set`` overrides go on top. Which layers were applied is
recorded in the run's config (``preset`` section) and shown by
``bimors list --preset NAME --protocol P --dataset D --shots K``.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from typing import Any

from bimors.core.config import deep_merge, yaml_load
from bimors.core.errors import ConfigError
from bimors.protocols import PROTOCOL_NAMES

LAYER_KEYS = ("protocols", "datasets")
SHOTS_KEY = "shots"


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


def _named_sections(part: dict[str, Any], key: str, where: str) -> dict[str, dict[str, Any]]:
    """``part[key]`` as ``{name: section}``, checked (empty when absent)."""
    section = part.get(key) or {}
    if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
        raise ConfigError(f"{where}: {key} must map names to config sections, got {section!r}")
    return section


def preset_layers(name: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The ``protocols`` and ``datasets`` sections of preset ``name`` (empty when absent)."""
    raw = load_preset(name)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key in LAYER_KEYS:
        section = _named_sections(raw, key, f"preset {name}")
        for value, layer in section.items():
            where = f"preset {name}: {key}.{value}"
            _shot_layers(layer, where)
            # Only protocols/<p>/datasets/<d> nests; anything else would be dropped unseen.
            nested = [k for k in LAYER_KEYS if k in layer and (key, k) != ("protocols", "datasets")]
            if nested:
                raise ConfigError(
                    f"{where}: a {key} layer cannot hold {', '.join(nested)}; only "
                    "protocols.<p>.datasets.<d> nests"
                )
            for d, inner in _named_sections(layer, "datasets", where).items():
                if any(k in inner for k in LAYER_KEYS):
                    raise ConfigError(f"{where}.datasets.{d}: cannot nest further layers")
                _shot_layers(inner, f"{where}.datasets.{d}")
        out[key] = section
    _shot_layers(raw, f"preset {name}")
    unknown = sorted(set(out["protocols"]) - set(PROTOCOL_NAMES))
    if unknown:
        raise ConfigError(
            f"preset {name}: unknown protocol(s) {', '.join(unknown)} under protocols; valid: "
            f"{', '.join(PROTOCOL_NAMES)}"
        )
    return out


def _shot_layers(part: dict[str, Any], where: str) -> dict[int, dict[str, Any]]:
    """The ``shots`` section of one preset part as ``{K: settings}``, checked."""
    section = part.get(SHOTS_KEY) or {}
    if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
        raise ConfigError(f"{where}: shots must map shot counts to config sections")
    try:
        return {int(k): v for k, v in section.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: shots keys must be shot counts, got {list(section)}") from None


def resolve_preset(
    name: str, protocol: str | None = None, dataset: str | None = None, shots: int | None = None
) -> tuple[dict[str, Any], PresetRecord]:
    """Preset ``name``'s settings for ``protocol``, ``dataset`` and ``shots``, and the record
    of the layers applied.

    ``shots=None`` takes the preset's own ``data.shots`` (after the protocol and
    dataset layers). A method without a preset file resolves to no settings (an
    empty record but for the protocol and dataset asked for).
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
    parts = [(name, raw)]
    for key, value in (("protocols", protocol), ("datasets", dataset)):
        if value is not None and value in layers[key]:
            parts.append((f"{name}/{key}/{value}", layers[key][value]))
    if protocol in layers["protocols"] and dataset is not None:
        inner = layers["protocols"][protocol].get("datasets") or {}
        if dataset in inner:
            parts.append((f"{name}/protocols/{protocol}/datasets/{dataset}", inner[dataset]))
    if shots is None:
        merged: dict[str, Any] = {}
        for _, part in parts:
            merged = deep_merge(merged, part)
        shots = (merged.get("data") or {}).get("shots")
        shots = int(shots) if shots is not None else None
    settings: dict[str, Any] = {}
    for label, part in parts:
        body = {k: v for k, v in part.items() if k not in (*LAYER_KEYS, SHOTS_KEY)}
        settings = deep_merge(settings, body)
        record.layers.append(label)
        by_shots = _shot_layers(part, label)
        if shots is not None and shots in by_shots:
            settings = deep_merge(settings, by_shots[shots])
            record.layers.append(f"{label}/shots/{shots}")
    record.name = name
    return settings, record


def variants(name: str) -> list[str]:
    """The ``protocols/<p>``, ``datasets/<d>``, ``protocols/<p>/datasets/<d>`` and
    ``shots/<K>`` layers that preset ``name`` defines."""
    raw = load_preset(name)
    layers = preset_layers(name)
    out = [f"shots/{k}" for k in _shot_layers(raw, name)]
    for key in LAYER_KEYS:
        for value, layer in layers[key].items():
            out.append(f"{key}/{value}")
            out += [f"{key}/{value}/shots/{k}" for k in _shot_layers(layer, value)]
            for d, inner in (layer.get("datasets") or {}).items() if key == "protocols" else ():
                out.append(f"{key}/{value}/datasets/{d}")
                out += [f"{key}/{value}/datasets/{d}/shots/{k}" for k in _shot_layers(inner, d)]
    return out
