"""Sweeps: config keys given several values, one run per combination (a grid axis).

``--sweep data.shots=1,2,4 --sweep method.n_ctx=2,4`` is an ordered list of
(key, values); its points are the cartesian product, the first key varying
slowest. Values are parsed as YAML 1.2, as ``--set`` values are, so ``4`` is
an integer and ``2e-3`` a float.

A swept run's folder is ``.../<method>/<k1=v1,k2=v2>/seed<k>`` (see
:func:`point_folder`). Keys are shortened to their last dotted component
(``shots``, ``n_ctx``) when no two swept keys share it, else written in full.
Values are written as YAML writes them (``true``, ``null``, ``0.002``), with
every character outside ``A-Z a-z 0-9 . _ + -`` replaced by ``_`` and, past
48 characters, cut to its last 32 and an 8-digit hash (long model paths);
a value that leaves nothing, or two values of one key that come out the same,
are refused, so two runs never share a folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from typing import Any

import yaml

from bimors.core.config import yaml_load
from bimors.core.errors import ConfigError

#: One point of a sweep: ((key, value), ...) in the sweep's key order.
Point = tuple[tuple[str, Any], ...]

#: Keys the grid sets from its own flags: a sweep of them would fight the flag.
FLAG_KEYS = {
    "method.name": "--method",
    "data.dataset": "--dataset",
    "data.root": "--root",
    "train.seed": "--seeds",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_MAX = 48


@dataclasses.dataclass(frozen=True)
class Sweep:
    """An ordered list of (key, values); empty: no sweep (one point, today's run folders)."""

    axes: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.axes]

    def points(self) -> list[Point]:
        """Every combination, first key slowest; ``[()]`` without a sweep."""
        if not self.axes:
            return [()]
        keys = self.keys
        return [
            tuple(zip(keys, combo, strict=True))
            for combo in itertools.product(*(vals for _, vals in self.axes))
        ]

    def check_methods(self, methods: list[str]) -> None:
        """Refuse a swept ``method.*`` key that some method has no option for."""
        from bimors.methods import METHODS

        for key in self.keys:
            if not key.startswith("method."):
                continue
            option = key.split(".", 1)[1]
            for name in methods:
                fields = [f.name for f in dataclasses.fields(METHODS.get(name).config_cls)]
                if option not in fields:
                    raise ConfigError(
                        f"--sweep {key}: method {name!r} has no option {option!r} (its options: "
                        f"{', '.join(fields)}); sweep it in a run of only the methods that "
                        "have it, and run the others without this --sweep"
                    )


def parse_sweeps(items: list[str]) -> Sweep:
    """``["data.shots=1,2,4", ...]`` as a :class:`Sweep`, with every value checked."""
    axes: list[tuple[str, tuple[Any, ...]]] = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--sweep {item!r} must look like section.field=V1,V2,...")
        key, raw = (s.strip() for s in item.split("=", 1))
        if key.count(".") != 1 or not all(key.split(".")):
            raise ConfigError(
                f"--sweep {item!r}: the key must be section.field (e.g. data.shots), got {key!r}"
            )
        if key in FLAG_KEYS:
            raise ConfigError(f"--sweep {key}: give its values with {FLAG_KEYS[key]} instead")
        if key in (k for k, _ in axes):
            raise ConfigError(f"--sweep {key} is given twice; give all its values in one --sweep")
        texts = [t.strip() for t in raw.split(",")]
        if not raw.strip() or any(not t for t in texts):
            raise ConfigError(f"--sweep {item!r}: give comma-separated values, none empty")
        values = []
        for text in texts:
            try:
                value = yaml_load(text)
            except yaml.YAMLError:
                value = []  # a bracket or brace split by the commas: not one value
            if isinstance(value, (list, dict)):
                raise ConfigError(
                    f"--sweep {key}: value {text!r} is not a single value (number, word, "
                    "true/false or null); lists and mappings cannot be swept"
                )
            values.append(value)
        encoded = [encode_value(v, key) for v in values]
        twins = sorted({e for e in encoded if encoded.count(e) > 1})
        if twins:
            raise ConfigError(
                f"--sweep {key}: values {', '.join(texts)} give the run folder name(s) "
                f"{', '.join(twins)} more than once (repeated values, or values that differ only "
                "in characters a folder name cannot hold); give distinct values"
            )
        axes.append((key, tuple(values)))
    return Sweep(tuple(axes))


def value_text(value: Any) -> str:
    """``value`` as YAML (and ``--set``) writes it: parsing the text gives ``value`` back."""
    return json.dumps(value) if isinstance(value, str) else yaml_text(value)


def yaml_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_value(value: Any, key: str) -> str:
    """``value`` as it appears in a run folder name (see the module docstring)."""
    text = _UNSAFE.sub("_", yaml_text(value)).strip("_")
    if not text or text in (".", ".."):
        raise ConfigError(
            f"--sweep {key}: value {value!r} leaves no usable run folder name; give a value "
            "with letters or digits"
        )
    if len(text) > _MAX:
        digest = hashlib.sha256(yaml_text(value).encode()).hexdigest()[:8]
        text = f"{text[-32:].lstrip('_.')}-{digest}"
    return text


def short_names(keys: list[str]) -> dict[str, str]:
    """Each key's last dotted component, or the whole key where two keys share it."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def point_folder(point: Point) -> str:
    """The run-folder name of ``point``: ``shots=4,n_ctx=2`` (empty for no sweep)."""
    names = short_names([k for k, _ in point])
    return ",".join(f"{names[k]}={encode_value(v, k)}" for k, v in point)


def point_overrides(point: Point) -> list[str]:
    """``point`` as ``--set`` overrides."""
    return [f"{k}={value_text(v)}" for k, v in point]


def point_dict(point: Point) -> dict[str, Any]:
    """``point`` as records and ``--list`` carry it: ``{"data.shots": 4, ...}``."""
    return dict(point)


def check_not_set(point: Point, user: dict[str, Any]) -> None:
    """Refuse a swept key that the config file or ``--set`` also gives a value."""
    for key, _ in point:
        section, field = key.split(".", 1)
        node = user.get(section)
        if isinstance(node, dict) and field in node:
            raise ConfigError(
                f"{key}={node[field]!r} (config file or --set) conflicts with --sweep {key}; "
                "give it once: drop it from --set / the config file, or from --sweep"
            )


def check_point_config(point: Point, method: str, params: Any) -> None:
    """Refuse a point whose resolved method options make the swept value a no-op.

    A context phrase (``method.ctx_init``) fixes the context length, so a
    swept ``method.n_ctx`` could agree with it for one value at most.
    """
    if "method.n_ctx" in dict(point) and getattr(params, "ctx_init", ""):
        raise ConfigError(
            f"--sweep method.n_ctx: method {method!r} has method.ctx_init={params.ctx_init!r}, "
            "a phrase that fixes the context length; add --set method.ctx_init= (random "
            "context vectors of each swept length)"
        )
