"""The three protocols as pure functions on splits."""

from __future__ import annotations

import pytest

from bimors.core.errors import DataError
from bimors.data.split import PARTS, Sample, Split
from bimors.protocols.base2new import base2new_tasks
from bimors.protocols.cross_dataset import SOURCE, TARGETS, cross_dataset_tasks
from bimors.protocols.domain_generalisation import (
    SOURCE as DG_SOURCE,
)
from bimors.protocols.domain_generalisation import (
    TARGETS as DG_TARGETS,
)
from bimors.protocols.domain_generalisation import (
    domain_generalisation_tasks,
)


def toy_split(classes: list[str], per_part: int = 6, prefix: str = "") -> Split:
    parts = {
        p: [
            Sample(f"{prefix}{c}/{p}_{i}.jpg", label, c)
            for label, c in enumerate(classes)
            for i in range(per_part)
        ]
        for p in PARTS
    }
    return Split(list(classes), parts["train"], parts["val"], parts["test"])


def test_protocol_constants_match_the_papers():
    assert (SOURCE, TARGETS) == ("patternnet", ("rsicd", "resisc45", "mlrsnet"))
    assert (DG_SOURCE, DG_TARGETS) == ("patternnetv2", ("rsicdv2", "resisc45v2", "mlrsnetv2"))


def test_base2new_odd_class_count_puts_the_middle_class_in_base():
    split = toy_split(["e", "d", "c", "b", "a"])  # label order is not alphabetical
    tasks = base2new_tasks(split, shots=2, seed=1, dataset="toy")
    assert tasks.train.classnames == ["e", "d", "c"] and tasks.test_new.classnames == ["b", "a"]
    assert {s.label for s in tasks.test_new.samples} == {0, 1}
    assert {s.classname for s in tasks.test_new.samples} == {"b", "a"}
    assert len(tasks.train.samples) == 6 and len(tasks.val.samples) == 6


def test_cross_dataset_trains_on_all_source_classes_and_tests_with_target_names():
    src = toy_split(["x", "y", "z"])
    tgt = {"rsicd": toy_split(["p", "q"], prefix="r/"), "mlrsnet": toy_split(["s"], 4, "m/")}
    tasks = cross_dataset_tasks(src, tgt, shots=2, seed=1)
    assert tasks.source == "patternnet"
    assert tasks.train.classnames == ["x", "y", "z"] and len(tasks.train.samples) == 6
    assert {s.label for s in tasks.train.samples} == {0, 1, 2}
    assert tasks.val.classnames == ["x", "y", "z"] and len(tasks.val.samples) == 6
    assert tasks.tests["rsicd"].classnames == ["p", "q"]
    assert tasks.tests["rsicd"].samples == tgt["rsicd"].test
    assert tasks.tests["mlrsnet"].samples == tgt["mlrsnet"].test
    assert tasks.fewshot["train"] == sorted(tasks.fewshot["train"])
    # all shots: every training image
    assert len(cross_dataset_tasks(src, tgt, shots=0, seed=1).train.samples) == 18


def test_cross_dataset_needs_targets_other_than_the_source():
    src = toy_split(["x"])
    with pytest.raises(DataError, match="at least one target"):
        cross_dataset_tasks(src, {}, 1, 1)
    with pytest.raises(DataError, match="cannot also be a target"):
        cross_dataset_tasks(src, {"patternnet": src}, 1, 1)


def test_domain_generalisation_keeps_the_shared_label_order():
    classes = ["b", "a", "c"]
    src = toy_split(classes)
    tgts = {t: toy_split(classes, prefix=f"{t}/") for t in DG_TARGETS}
    tasks = domain_generalisation_tasks(src, tgts, shots=1, seed=2)
    assert tasks.source == "patternnetv2"
    assert all(t.classnames == classes for t in tasks.tests.values())
    assert set(tasks.tests) == set(DG_TARGETS)


def test_domain_generalisation_refuses_a_different_label_order():
    src = toy_split(["b", "a", "c"])
    with pytest.raises(DataError, match="rsicdv2"):
        domain_generalisation_tasks(src, {"rsicdv2": toy_split(["a", "b", "c"])}, 1, 1)


def test_protocols_with_index_file_read_back(tmp_path):
    src = toy_split(["x", "y"])
    tgt = {"rsicd": toy_split(["p"], prefix="r/")}
    f = tmp_path / "fewshot.json"
    first = cross_dataset_tasks(src, tgt, 2, 1, index_file=f)
    assert f.is_file()
    assert cross_dataset_tasks(src, tgt, 2, 1, index_file=f).fewshot == first.fewshot
    with pytest.raises(DataError):
        cross_dataset_tasks(src, tgt, 3, 1, index_file=f)
