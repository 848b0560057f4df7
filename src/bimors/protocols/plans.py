"""The three protocols as plans over datasets, in one registry.

* ``base2new``: train few-shot on the first ceil(n/2) classes, test on base and
  on new classes of the same dataset.
* ``cross_dataset``: train few-shot on all PatternNet classes, test on the
  source and on each target dataset with the target's own class names.
* ``domain_gen``: the same on the v2 datasets (16 shared classes): train on
  PatternNetv2, test on RSICDv2, RESISC45v2, MLRSNetv2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from bimors.data.base import SceneDataset
from bimors.data.fewshot import fewshot_indices
from bimors.protocols.base2new import MAX_VAL_SHOTS, Task, base2new_tasks
from bimors.protocols.plan import EvalSpec, Plan
from bimors.registry import Registry


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    build: Callable[..., Plan]
    default_source: str | None = None
    default_targets: tuple[str, ...] = ()


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def plan_base2new(dataset: SceneDataset, shots: int, seed: int, targets=()) -> Plan:
    """Base-to-new on one dataset."""
    if targets:
        raise ValueError("base2new evaluates on its own dataset; it takes no targets")
    t = base2new_tasks(dataset.split(), shots, seed, dataset.name)
    return Plan(
        "base2new",
        dataset,
        t.train,
        t.val,
        [EvalSpec(dataset, "base", t.test_base), EvalSpec(dataset, "new", t.test_new)],
        t.fewshot,
    )


def _all_classes(dataset: SceneDataset, shots: int, seed: int) -> tuple[Task, Task, Task, dict]:
    split = dataset.split()
    train_idx = fewshot_indices(split.train, shots, seed, f"{dataset.name}/train")
    val_shots = min(shots, MAX_VAL_SHOTS) if shots > 0 else 0
    val_idx = fewshot_indices(split.val, val_shots, seed, f"{dataset.name}/val")
    names = split.classnames
    return (
        Task(names, [split.train[i] for i in train_idx]),
        Task(names, [split.val[i] for i in val_idx]),
        Task(names, list(split.test)),
        {"train": train_idx, "val": val_idx},
    )


def _transfer(protocol: str) -> Callable[..., Plan]:
    def build(
        dataset: SceneDataset, shots: int, seed: int, targets: list[SceneDataset] = ()
    ) -> Plan:
        train, val, test, fewshot = _all_classes(dataset, shots, seed)
        evals = [EvalSpec(dataset, "all", test)]
        for target in targets:
            split = target.split()
            evals.append(EvalSpec(target, "all", Task(split.classnames, list(split.test))))
        return Plan(protocol, dataset, train, val, evals, fewshot)

    build.__doc__ = f"{protocol}: train on all source classes, test on the source and each target."
    return build


PROTOCOLS.register("base2new")(Protocol("base2new", plan_base2new))
PROTOCOLS.register("cross_dataset")(
    Protocol(
        "cross_dataset", _transfer("cross_dataset"), "patternnet", ("rsicd", "resisc45", "mlrsnet")
    )
)
PROTOCOLS.register("domain_gen")(
    Protocol(
        "domain_gen",
        _transfer("domain_gen"),
        "patternnetv2",
        ("rsicdv2", "resisc45v2", "mlrsnetv2"),
    )
)
