"""The published split files, where a reference copy exists: pins, orders, counts, protocols.

The files are read from ``$BIMORS_REFERENCE_SPLITS`` or
``<repo>/../shared/reference/applenet_splits`` (one level further up for a git
worktree); the tests are skipped where none exists. Nothing from them is copied into the repository.
"""

from __future__ import annotations

import math

import pytest

from bimors.data import DATASETS
from bimors.data.download import file_digest
from bimors.data.published import PUBLISHED_SPLITS, resolve_split_file
from bimors.data.split import PARTS, Split
from bimors.protocols.base2new import base2new_tasks
from bimors.protocols.cross_dataset import cross_dataset_tasks
from bimors.protocols.domain_generalisation import domain_generalisation_tasks
from tests.reference import reference_splits

REF = reference_splits()
pytestmark = pytest.mark.skipif(REF is None, reason="no reference copy of the published splits")


def _sums() -> dict[str, str]:
    assert REF is not None
    lines = (REF / "SHA256SUMS").read_text().split("\n")
    return {ln.split()[1]: ln.split()[0] for ln in lines if ln.strip()}


@pytest.fixture(scope="module")
def splits() -> dict[str, Split]:
    assert REF is not None
    return {n: Split.load(REF / spec.filename) for n, spec in PUBLISHED_SPLITS.items()}


@pytest.mark.parametrize("name", sorted(PUBLISHED_SPLITS))
def test_pins_match_the_reference_sums(name):
    spec = PUBLISHED_SPLITS[name]
    assert _sums()[spec.filename] == spec.sha256
    assert file_digest(REF / spec.filename) == spec.sha256


@pytest.mark.parametrize("name", sorted(PUBLISHED_SPLITS))
def test_class_order_and_counts(name, splits):
    split, cls = splits[name], DATASETS.get(name)
    assert split.classnames == list(cls.classes)
    assert split.classnames != sorted(split.classnames)  # the protocol order is not alphabetical
    assert split.counts() == PUBLISHED_SPLITS[name].counts
    assert sum(split.counts()) == cls.info.images
    seen = [s.relpath for p in PARTS for s in split.part(p)]
    assert len(seen) == len(set(seen))  # disjoint, test never val
    # relpaths are <class folder>/<file>, relative to the image root
    assert all(s.relpath.split("/")[0] == s.classname for p in PARTS for s in split.part(p))


@pytest.mark.parametrize("name", sorted(PUBLISHED_SPLITS))
def test_base_new_partition_follows_the_label_order(name, splits):
    split = splits[name]
    n = len(split.classnames)
    tasks = base2new_tasks(split, shots=16, seed=1, dataset=name)
    m = math.ceil(n / 2)
    assert tasks.train.classnames == split.classnames[:m]
    assert tasks.test_new.classnames == split.classnames[m:]
    base_test = [s for s in split.test if s.label < m]
    assert [s.relpath for s in tasks.test_base.samples] == [s.relpath for s in base_test]
    assert len(tasks.test_base.samples) + len(tasks.test_new.samples) == len(split.test)
    assert {s.label for s in tasks.test_new.samples} == set(range(n - m))
    per_class = {}
    for s in tasks.train.samples:
        per_class[s.label] = per_class.get(s.label, 0) + 1
    assert set(per_class.values()) == {16} and len(per_class) == m
    assert {s.label for s in tasks.val.samples} == set(range(m))


def test_cross_dataset_and_domain_generalisation_on_real_splits(splits):
    cd = cross_dataset_tasks(
        splits["patternnet"], {t: splits[t] for t in ("rsicd", "resisc45")}, 16, 1
    )
    assert (
        len(cd.train.samples) == 16 * 38 and cd.train.classnames == splits["patternnet"].classnames
    )
    assert cd.tests["rsicd"].classnames == splits["rsicd"].classnames
    assert len(cd.tests["resisc45"].samples) == 9450
    dg = domain_generalisation_tasks(
        splits["patternnetv2"],
        {t: splits[t] for t in ("rsicdv2", "resisc45v2", "mlrsnetv2")},
        16,
        1,
    )
    assert len(dg.train.samples) == 16 * 16
    assert {t: len(task.samples) for t, task in dg.tests.items()} == {
        "rsicdv2": 1608,
        "resisc45v2": 3360,
        "mlrsnetv2": 11741,
    }
    for task in dg.tests.values():
        assert task.classnames == splits["patternnetv2"].classnames


def test_reference_folder_is_found_through_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BIMORS_REFERENCE_SPLITS", str(REF))
    path = resolve_split_file(PUBLISHED_SPLITS["rsicd"], tmp_path, fetch=False)
    assert path == REF / "rsicd.json"
