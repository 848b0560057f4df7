"""Which records may share a table cell: equal identity, the seed aside.

Each record names what produced it (:func:`bimors.run.identity.run_identity`);
records written before that get an identity from the fields they have
(``backbone``, ``backbone_activation``, ``shots``, ``fewshot_sampler``,
``preset``, ``bimors_version``), so old run folders still report.

A report splits its records by *setting* (backbone, activation, weights,
shots, sampler, version: what the whole table shares) into separate tables,
and within a table labels each variant of a method that differs in the rest
(epochs, preset layers, caption store) in its row name. A published number
gets a Δ only in a table whose setting matches the paper's (16 shots,
ViT-B/16 with OpenAI's weights); other tables carry a note saying what differs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

#: What a whole table shares; the other identity fields split a method's rows.
SETTING_FIELDS = ("adapter", "architecture", "activation", "weights", "shots", "sampler", "version")

#: The published APPLeNet tables: 16 shots on ViT-B/16 with OpenAI's weights.
PAPER_SHOTS = 16
PAPER_BACKBONES = {
    ("hf", "openai/clip-vit-base-patch16"),
    ("open_clip", "ViT-B-16"),
    ("open_clip", "ViT-B-16-quickgelu"),
}


def identity(record: dict[str, Any]) -> dict[str, Any]:
    """The record's identity, rebuilt from its older fields when it has none."""
    if isinstance(record.get("identity"), dict):
        return record["identity"]
    adapter, _, arch = str(record.get("backbone") or "").partition(":")
    return {
        "adapter": adapter or None,
        "architecture": arch or None,
        "activation": record.get("backbone_activation"),
        "weights": None,
        "captions": None,
        "shots": record.get("shots"),
        "sampler": record.get("fewshot_sampler"),
        "epochs": None,
        "preset_layers": record.get("preset"),
        "version": record.get("bimors_version"),
    }


def _key(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, default=str)


def setting(record: dict[str, Any]) -> dict[str, Any]:
    """The fields of the identity every line of a table shares."""
    ident = identity(record)
    return {k: ident.get(k) for k in SETTING_FIELDS}


def setting_label(s: dict[str, Any]) -> str:
    """A short human label of a setting: backbone, weights, shots, sampler."""
    parts = [f"{s.get('adapter')}:{s.get('architecture')}"]
    w = s.get("weights") or {}
    if w.get("preset"):
        parts.append(f"weights {w['preset']}")
    elif w.get("sha256"):
        parts.append(f"weights {w.get('file')} (sha256 {w['sha256'][:12]})")
    elif w.get("id") and w.get("id") != s.get("architecture"):
        parts.append(f"weights {w['id']}")
    if s.get("activation"):
        parts.append(str(s["activation"]))
    if s.get("shots") is not None:
        parts.append(f"{s['shots']}-shot")
    if s.get("sampler"):
        parts.append(f"sampler {s['sampler']}")
    if s.get("version"):
        parts.append(f"bimors {s['version']}")
    return ", ".join(parts)


def paper_mismatch(s: dict[str, Any]) -> list[str]:
    """What of ``s`` differs from the published tables' setting (empty: comparable).

    A field an old record does not carry is not counted as a difference.
    """
    out = []
    if s.get("shots") is not None and s["shots"] != PAPER_SHOTS:
        out.append(f"{s['shots']} shots, not {PAPER_SHOTS}")
    if s.get("adapter") and (s["adapter"], s.get("architecture")) not in PAPER_BACKBONES:
        out.append(f"backbone {s['adapter']}:{s.get('architecture')}, not ViT-B/16")
    w = s.get("weights") or {}
    if w.get("sha256") or (s.get("adapter") == "open_clip" and w.get("id") not in (None, "openai")):
        out.append("weights other than OpenAI's")
    return out


def split_by_setting(records: list[dict[str, Any]]) -> list[tuple[dict, list[dict]]]:
    """Records grouped by setting (order of first appearance), each group's methods
    relabelled ``method [what differs]`` where one method has several variants."""
    groups: dict[str, tuple[dict, list[dict]]] = {}
    for r in records:
        s = setting(r)
        groups.setdefault(_key(s), (s, []))[1].append(r)
    return [(s, _label_variants(rs)) for s, rs in groups.values()]


def _variant(record: dict[str, Any]) -> dict[str, Any]:
    ident = identity(record)
    return {k: v for k, v in ident.items() if k not in SETTING_FIELDS}


def _label_variants(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    variants: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in records:
        v = _variant(r)
        variants[r["method"]][_key(v)] = v
    out = []
    for r in records:
        vs = list(variants[r["method"]].values())
        if len(vs) < 2:
            out.append(r)
            continue
        mine = _variant(r)
        differ = [k for k in mine if any(v.get(k) != mine[k] for v in vs)]
        tag = ", ".join(f"{k}={_short(mine[k])}" for k in differ)
        out.append({**r, "method": f"{r['method']} [{tag}]"})
    return out


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items() if k in ("store", "encoder"))
    if isinstance(value, list):
        return "+".join(map(str, value)) or "none"
    return str(value)
