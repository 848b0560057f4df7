"""``bimors list``: the registered methods, backbones, datasets and presets.

With ``--preset NAME`` it prints that preset as a run would resolve it for
``--protocol`` and ``--dataset`` (the per-protocol and per-dataset layers of
the official configs included), with the layers applied.
"""

from __future__ import annotations

import argparse

from bimors.protocols import PROTOCOL_NAMES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered methods, backbones, datasets and presets")
    p.add_argument("--preset", help="print this preset as resolved for --protocol and --dataset")
    p.add_argument(
        "--protocol",
        choices=PROTOCOL_NAMES,
        help="protocol to resolve --preset for (default: none, the base preset)",
    )
    p.add_argument("--dataset", help="dataset to resolve --preset for")
    p.add_argument(
        "--shots", type=int, help="shot count to resolve --preset for (default: the preset's)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bimors.backbones import BACKBONES
    from bimors.data import DATASETS
    from bimors.methods import METHODS
    from bimors.methods.presets import preset_names, variants

    if args.preset:
        return show_preset(args.preset, args.protocol, args.dataset, args.shots)
    print("methods:   " + ", ".join(METHODS.names()))
    print("backbones: " + ", ".join(BACKBONES.names()))
    print("datasets:  " + ", ".join(DATASETS.names()))
    print("presets:   " + ", ".join(preset_names()))
    for name in preset_names():
        extra = variants(name)
        if extra:
            print(f"  {name}: also {', '.join(extra)}")
    print()
    print(backbone_presets_table())
    return 0


def show_preset(
    name: str, protocol: str | None, dataset: str | None, shots: int | None = None
) -> int:
    import yaml

    from bimors.run.config import resolve_config

    overrides = [f"data.dataset={dataset}"] if dataset else []
    if shots is not None:
        overrides.append(f"data.shots={shots}")
    cfg = resolve_config(name, overrides=overrides, protocol=protocol)
    print(f"# preset layers: {' + '.join(cfg.preset.layers) or '(none)'}")
    print(yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip())
    return 0


def backbone_presets_table() -> str:
    """The backbone presets, one line each: what ``--set backbone.preset=NAME`` loads."""
    from bimors.backbones.presets import PRESETS

    rows = [("backbone preset", "family", "adapter", "architecture / model", "GELU", "weights")]
    for p in PRESETS.values():
        act = "quick" if p.quick_gelu else "plain"
        rows.append((p.name, p.family, p.adapter, p.model, act, p.pretrained or p.model))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    ]
    return "\n".join(lines) + "\n(select with --set backbone.preset=NAME; README: Backbones)"
