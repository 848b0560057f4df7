"""The three protocols as plans over datasets, in one registry.

* ``base2new``: train few-shot on the first ceil(n/2) classes, test on base and
  on new classes of the same dataset.
* ``cross_dataset``: train few-shot on all PatternNet classes, test on the
  source and on each target dataset with the target's own class names.
* ``domain_gen``: the same on the v2 datasets (16 shared classes): train on
  PatternNetv2, test on RSICDv2, RESISC45v2, MLRSNetv2.
* ``fewshot``: CoOp's few-shot protocol, all classes of one dataset, its full
  test split (:mod:`bimors.protocols.fewshot`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from bimors.core.registry import Registry
from bimors.data.base import SceneDataset
from bimors.protocols.base2new import Task, base2new_tasks
from bimors.protocols.domain_generalisation import check_label_order
from bimors.protocols.fewshot import all_class_tasks, plan_fewshot
from bimors.protocols.plan import EvalSpec, Plan


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    build: Callable[..., Plan]
    default_source: str | None = None
    default_targets: tuple[str, ...] = ()


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def plan_base2new(
    dataset: SceneDataset, shots: int, seed: int, targets=(), sampler: str = "hash"
) -> Plan:
    """Base-to-new on one dataset (``sampler``: see :func:`bimors.data.fewshot.draw_fewshot`)."""
    if targets:
        raise ValueError("base2new evaluates on its own dataset; it takes no targets")
    t = base2new_tasks(dataset.split(), shots, seed, dataset.name, sampler=sampler)
    return Plan(
        "base2new",
        dataset,
        t.train,
        t.val,
        [EvalSpec(dataset, "base", t.test_base), EvalSpec(dataset, "new", t.test_new)],
        t.fewshot,
    )


def _all_classes(
    dataset: SceneDataset, shots: int, seed: int, sampler: str
) -> tuple[Task, Task, Task, dict]:
    return all_class_tasks(dataset, shots, seed, sampler)


def _transfer(protocol: str, same_labels: bool = False) -> Callable[..., Plan]:
    def build(
        dataset: SceneDataset,
        shots: int,
        seed: int,
        targets: list[SceneDataset] = (),
        sampler: str = "hash",
    ) -> Plan:
        if same_labels:
            check_label_order(dataset.name, dataset.split(), {t.name: t.split() for t in targets})
        train, val, test, fewshot = _all_classes(dataset, shots, seed, sampler)
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
        _transfer("domain_gen", same_labels=True),
        "patternnetv2",
        ("rsicdv2", "resisc45v2", "mlrsnetv2"),
    )
)
PROTOCOLS.register("fewshot")(Protocol("fewshot", plan_fewshot))
