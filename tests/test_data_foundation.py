"""Synthetic scenes, the image-folder loader, splits, few-shot sampling and base/new."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from bimors.core.errors import DataError, UnknownNameError
from bimors.data import DATASETS, build_dataset
from bimors.data.fewshot import base_new_labels, fewshot_indices, subsample_classes
from bimors.data.images import ImageDataset, open_rgb
from bimors.data.synthetic import SCENES, SyntheticScenes, draw_scene, generate_scenes
from bimors.protocols.base2new import base2new_tasks


def test_synthetic_scenes_are_deterministic_and_distinct():
    assert len(SCENES) >= 8
    a = np.asarray(draw_scene("river", 3, 5, 48))
    b = np.asarray(draw_scene("river", 3, 5, 48))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, np.asarray(draw_scene("river", 3, 6, 48)))
    # class means differ: the classes are visually distinct, not noise
    means = {
        n: np.mean([np.asarray(draw_scene(n, 0, i, 32)) for i in range(6)], axis=(0, 1, 2))
        for n in SCENES
    }
    names = list(means)
    gaps = [np.abs(means[x] - means[y]).max() for i, x in enumerate(names) for y in names[i + 1 :]]
    assert min(gaps) > 3.0


def test_generate_scenes_writes_same_bytes_and_refuses_overwrite(tmp_path):
    def digest(root):
        return hashlib.sha256(
            b"".join(p.read_bytes() for p in sorted(root.rglob("*.png")))
        ).hexdigest()

    a = generate_scenes(tmp_path / "a", per_class=3, size=24, classes=["forest", "lake"])
    b = generate_scenes(tmp_path / "b", per_class=3, size=24, classes=["forest", "lake"])
    assert digest(a) == digest(b)
    assert sorted(p.name for p in a.iterdir()) == ["forest", "lake"]
    with pytest.raises(FileExistsError):
        generate_scenes(a, per_class=1, size=24, classes=["forest"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_imagefolder_split_is_saved_disjoint_and_reused(scenes):
    ds = SyntheticScenes(scenes)
    split = ds.split()
    assert split.classnames == list(SCENES)[:6]  # generator order, not alphabetical
    parts = [{s.relpath for s in split.part(p)} for p in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(map(len, parts)) == 6 * 12
    assert ds.split_path is not None and ds.split_path.is_file()
    assert SyntheticScenes(scenes).split() == split


def test_base_new_is_first_half_rounded_up():
    assert base_new_labels(5) == ([0, 1, 2], [3, 4])
    assert base_new_labels(38) == (list(range(19)), list(range(19, 38)))
    for n in range(1, 12):
        base, new = base_new_labels(n)
        assert len(base) == math.ceil(n / 2) and base + new == list(range(n))


def test_base2new_tasks_relabel_and_sample_few_shots(scenes):
    split = SyntheticScenes(scenes).split()
    t = base2new_tasks(split, shots=2, seed=1, dataset="synthetic")
    assert (
        t.train.classnames == split.classnames[:3] and t.test_new.classnames == split.classnames[3:]
    )
    assert sorted({s.label for s in t.test_new.samples}) == [0, 1, 2]
    assert len(t.train.samples) == 3 * 2
    again = base2new_tasks(split, shots=2, seed=1, dataset="synthetic")
    assert again.fewshot == t.fewshot
    other = base2new_tasks(split, shots=2, seed=2, dataset="synthetic")
    assert other.fewshot != t.fewshot


def test_fewshot_keeps_small_classes_whole(scenes):
    split = SyntheticScenes(scenes).split()
    base = subsample_classes(split.train, [0])
    idx = fewshot_indices(base, 100, 1, "x")
    assert idx == list(range(len(base)))


def test_imagefolder_errors_name_the_path(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "missing")):
        build_dataset("imagefolder", tmp_path / "missing")
    (tmp_path / "ds" / "forest").mkdir(parents=True)
    (tmp_path / "ds" / "lake").mkdir()
    draw_scene("forest", 0, 0, 16).save(tmp_path / "ds" / "forest" / "a.png")
    ds = build_dataset("imagefolder", tmp_path / "ds")
    with pytest.raises(DataError, match=r"class folder.*no images.*lake"):
        ds.split()


def test_unreadable_image_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match=r"broken.jpg: corrupt or truncated image"):
        open_rgb(bad)
    with pytest.raises(DataError, match="does not exist"):
        open_rgb(tmp_path / "nope.png")


def test_image_dataset_items(scenes):
    from torchvision import transforms as T

    split = SyntheticScenes(scenes).split()
    ds = ImageDataset(scenes, split.test[:3], T.ToTensor())
    item = ds[2]
    assert item["pixels"].shape == (3, 32, 32) and item["index"] == 2
    assert item["label"] == split.test[2].label


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownNameError, match="valid datasets: .*imagefolder"):
        DATASETS.get("patternet")
