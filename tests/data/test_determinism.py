"""Seeded splits and few-shot draws are identical across runs, processes and machines."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bimors.core.errors import DataError
from bimors.data import DATASETS, build_dataset
from bimors.data.fewshot import FewShotIndex, fewshot_indices
from bimors.data.split import Sample, Split, seeded_split
from bimors.protocols.base2new import base2new_tasks
from tests.data.fakes import fake_dataset

SRC = str(Path(__file__).resolve().parents[2] / "src")

CHILD = """
import json, sys
from bimors.data import build_dataset
from bimors.protocols.base2new import base2new_tasks
root, split_file = sys.argv[1], sys.argv[2]
ds = build_dataset("aid", root, split_file=split_file, split_seed=7)
split = ds.split()
tasks = base2new_tasks(split, shots=2, seed=3, dataset="aid")
print(json.dumps({"split": split.to_json(), "train": [s.relpath for s in tasks.train.samples],
                  "val": [s.relpath for s in tasks.val.samples]}))
"""


def _run_child(root: Path, split_file: Path, hashseed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": SRC}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(split_file)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_split_and_fewshot_identical_across_processes(tmp_path):
    cls = DATASETS.get("aid")
    a, b = tmp_path / "a", tmp_path / "b"
    fake_dataset(cls, a, per_class=6)
    # the second copy is written in reverse class order: a different creation order
    for c in reversed(cls.classes):
        (b / "images" / c).mkdir(parents=True)
        for f in sorted((a / "images" / c).iterdir(), reverse=True):
            (b / "images" / c / f.name).write_bytes(f.read_bytes())
    first = _run_child(a, tmp_path / "s1.json", "0")
    second = _run_child(b, tmp_path / "s2.json", "4242")
    assert first == second
    assert len(first["train"]) == 2 * 15 and len(first["val"]) == 15  # 1 val image per class
    # and the parent process (random hash seed) agrees
    ds = build_dataset("aid", a, split_file=tmp_path / "s3.json", split_seed=7)
    assert ds.split().to_json() == first["split"]


def _items() -> list[tuple[str, str]]:
    return [(f"c{k}/img_{i:03d}.jpg", f"c{k}") for k in range(3) for i in range(20)]


def test_seeded_split_is_pinned():
    """The rule must not change silently: these digests hold on every machine."""
    split = seeded_split(_items(), ["c0", "c1", "c2"], seed=1)
    digest = hashlib.sha256(json.dumps(split.to_json()).encode()).hexdigest()
    assert digest == SPLIT_DIGEST
    idx = fewshot_indices(split.train, 4, seed=2, tag="toy/train")
    assert hashlib.sha256(json.dumps(idx).encode()).hexdigest() == FEWSHOT_DIGEST


SPLIT_DIGEST = "ecc2507fbae51ff235b82168f6778a4f43b1dea4423e4eadeafea4b04dbfd6f9"
FEWSHOT_DIGEST = "ae07afc9563aa9217371a323d4e4b0824fd13611ed9410a975e14572b773da33"


def test_seeded_split_is_disjoint_and_proportioned():
    split = seeded_split(_items(), ["c0", "c1", "c2"], seed=0)
    assert split.counts() == (30, 12, 18)
    parts = [set(s.relpath for s in split.part(p)) for p in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert (
        seeded_split(list(reversed(_items())), ["c0", "c1", "c2"], 0).to_json() == split.to_json()
    )
    assert seeded_split(_items(), ["c0", "c1", "c2"], 1).to_json() != split.to_json()


def test_fewshot_independent_of_sample_order():
    split = seeded_split(_items(), ["c0", "c1", "c2"], seed=0)
    idx = fewshot_indices(split.train, 3, 5, "x/train")
    chosen = {split.train[i].relpath for i in idx}
    shuffled = list(reversed(split.train))
    idx2 = fewshot_indices(shuffled, 3, 5, "x/train")
    assert {shuffled[i].relpath for i in idx2} == chosen
    assert len(chosen) == 9
    assert {split.train[i].relpath for i in fewshot_indices(split.train, 3, 6, "x/train")} != chosen


def test_fewshot_index_file_round_trip(tmp_path):
    split = seeded_split(_items(), ["c0", "c1", "c2"], seed=0)
    index_file = tmp_path / "fewshot.json"
    first = base2new_tasks(split, 4, 1, "toy", index_file=index_file)
    saved = FewShotIndex.load(index_file)
    assert (saved.dataset, saved.shots, saved.seed) == ("toy", 4, 1)
    assert saved.parts["train"] == [s.relpath for s in first.train.samples]
    # read back: an edited file wins over sampling (it reproduces the original run)
    other = [
        s.relpath for s in split.train if s.label < 2 and s.relpath not in saved.parts["train"]
    ]
    saved.parts["train"] = sorted(other[:3])
    saved.save(index_file)
    again = base2new_tasks(split, 4, 1, "toy", index_file=index_file)
    assert sorted(s.relpath for s in again.train.samples) == sorted(other[:3])
    with pytest.raises(DataError, match="seed 1"):
        base2new_tasks(split, 4, 2, "toy", index_file=index_file)


def test_fewshot_index_naming_unknown_images_is_refused(tmp_path):
    split = seeded_split(_items(), ["c0", "c1", "c2"], seed=0)
    index_file = tmp_path / "fewshot.json"
    FewShotIndex("toy", 4, 1, {"train": ["c0/nope.jpg"], "val": []}).save(index_file)
    with pytest.raises(DataError, match=r"nope.jpg|not in the dataset"):
        base2new_tasks(split, 4, 1, "toy", index_file=index_file)
    index_file.write_text("{}")
    with pytest.raises(DataError, match="not a few-shot index"):
        base2new_tasks(split, 4, 1, "toy", index_file=index_file)


def test_split_files_must_keep_parts_disjoint():
    row = ["a/1.jpg", 0, "a"]
    with pytest.raises(DataError, match="listed twice"):
        Split.from_json({"train": [row], "val": [row], "test": [["a/2.jpg", 0, "a"]]})
    assert Split.from_json({"train": [row], "val": [], "test": []}).train == [Sample(*row)]
