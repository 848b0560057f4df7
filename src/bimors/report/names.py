"""How the papers name and order methods and datasets in their tables.

Tables and figures list methods in the order the RS prompt-learning papers
print them (CLIP, CoOp, CLIP-Adapter, CoCoOp, ProGrad, MaPLe, APPLeNet,
BiMoRS), so a reader finds each row where the paper has it; methods the
papers do not print (linear probe, a user's own) come after, in the order
they were first seen. ERM and DANN exist only as published rows of the
domain-generalisation table.
"""

from __future__ import annotations

from collections.abc import Iterable

PAPER_ORDER = (
    "erm",
    "zeroshot",
    "dann",
    "coop",
    "clip_adapter",
    "cocoop",
    "prograd",
    "maple",
    "applenet",
    "clip_lora",
    "bimors",
    "kgcoop",
    "tcp",
    "ivlp",
    "promptsrc",
    "tip_adapter",
    "tip_adapter_f",
    "taskres",
    "lp_pp",
    "clap",
)

METHOD_LABELS = {
    "erm": "ERM",
    "dann": "DANN",
    "zeroshot": "CLIP",
    "coop": "CoOp",
    "clip_adapter": "CLIP-Adapter",
    "cocoop": "CoCoOp",
    "prograd": "ProGrad",
    "maple": "MaPLe",
    "applenet": "APPLeNet",
    "clip_lora": "CLIP-LoRA",
    "bimors": "BiMoRS",
    "linear_probe": "Linear probe",
    "kgcoop": "KgCoOp",
    "tcp": "TCP",
    "ivlp": "IVLP",
    "promptsrc": "PromptSRC",
    "tip_adapter": "Tip-Adapter",
    "tip_adapter_f": "Tip-Adapter-F",
    "taskres": "TaskRes",
    "lp_pp": "LP++",
    "clap": "CLAP",
}

DATASET_LABELS = {
    "patternnet": "PatternNet",
    "rsicd": "RSICD",
    "resisc45": "RESISC45",
    "mlrsnet": "MLRSNet",
    "patternnetv2": "PatternNetv2",
    "rsicdv2": "RSICDv2",
    "resisc45v2": "RESISC45v2",
    "mlrsnetv2": "MLRSNetv2",
    "ucmerced": "UCMerced",
    "eurosat": "EuroSAT",
    "aid": "AID",
    "whurs19": "WHU-RS19",
    "average": "Average",
    "optimal31": "OPTIMAL-31",
    "rsc11": "RSC11",
    "rsicb128": "RSI-CB128",
    "rsicb256": "RSI-CB256",
}


def method_label(name: str) -> str:
    """The paper's name of a method (our registry name when the papers have none);
    a variant ``coop [epochs=5]`` keeps its tag after the paper's name."""
    base, sep, tag = name.partition(" [")
    return METHOD_LABELS.get(base, base) + (sep + tag if sep else "")


def dataset_label(name: str) -> str:
    """The paper's spelling of a dataset name (ours when the papers have none)."""
    return DATASET_LABELS.get(name, name)


def order_methods(names: Iterable[str]) -> list[str]:
    """Distinct ``names`` in the papers' order, unknown ones after in first-seen order."""
    seen = list(dict.fromkeys(names))
    known = [m for m in PAPER_ORDER if m in seen]
    return known + [m for m in seen if m not in PAPER_ORDER]
