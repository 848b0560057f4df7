"""Every dataset loads from a tiny fake copy of its real folder layout."""

from __future__ import annotations

import importlib
import math
import os

import numpy as np
import pytest
import torch
from PIL import Image

from bimors.data import DATASETS, build_dataset
from bimors.data.base import SceneDataset
from bimors.data.images import ImageDataset, open_rgb
from bimors.data.split import Split
from bimors.protocols.base2new import base2new_tasks
from tests.data.fakes import fake_dataset, write_image

RS = [n for n in DATASETS.names() if DATASETS.get(n).classes]


def test_registry_lists_every_dataset_of_the_issue():
    expected = {
        "patternnet", "rsicd", "resisc45", "mlrsnet", "patternnetv2", "rsicdv2", "resisc45v2",
        "mlrsnetv2", "ucmerced", "eurosat", "aid", "whurs19", "imagefolder",
        "optimal31", "rsc11", "rsicb128", "rsicb256",
    }  # fmt: skip
    assert expected <= set(DATASETS.names())


@pytest.mark.parametrize("name", RS)
def test_each_dataset_documents_itself(name):
    cls = DATASETS.get(name)
    info = cls.info
    assert info.title and info.source.startswith("http") and info.licence and info.citation
    assert "<root>" in info.layout
    assert cls.folder and len(set(cls.classes)) == len(cls.classes)
    assert info.archive is not None or info.manual, "no download and no manual step"
    module_doc = importlib.import_module(cls.__module__).__doc__
    assert cls.published is not None or "seeded" in module_doc
    assert "Licence" in module_doc and "Cite" in module_doc and "Source" in module_doc


@pytest.mark.parametrize("name", RS)
def test_loads_from_fake_layout(name, tmp_path):
    cls = DATASETS.get(name)
    root = tmp_path / cls.folder
    split_file = fake_dataset(cls, root)
    opts = {"split_file": split_file, "check_split": False} if split_file else {}
    ds = build_dataset(name, root, **opts)
    split = ds.split()
    assert split.classnames == list(cls.classes)
    assert split.counts() == (len(cls.classes),) * 3
    assert ds.image_root == root / cls.image_dirs[0]
    assert ds.excluded == []
    # every image decodes through the torch dataset
    images = ImageDataset(ds.image_root, split.test, lambda im: torch.tensor(np.asarray(im)))
    item = images[len(images) - 1]
    assert item["pixels"].shape == (32, 32, 3) and item["label"] == len(cls.classes) - 1
    # the base/new protocol works on it
    tasks = base2new_tasks(split, shots=1, seed=1, dataset=name)
    assert len(tasks.train.classnames) == math.ceil(len(cls.classes) / 2)
    assert tasks.train.classnames + tasks.test_new.classnames == list(cls.classes)


@pytest.mark.parametrize("name", [n for n in RS if len(DATASETS.get(n).image_dirs) > 2])
def test_finds_images_in_the_archive_layout(name, tmp_path):
    """After ``bimors data download`` the images sit where the archive put them."""
    cls = DATASETS.get(name)
    alt = cls.image_dirs[1]
    split_file = fake_dataset(cls, tmp_path, image_dir=alt)
    opts = {"split_file": split_file, "check_split": False} if split_file else {}
    ds = build_dataset(name, tmp_path, **opts)
    assert ds.image_root == tmp_path / alt
    assert ds.split().counts() == (len(cls.classes),) * 3


def test_seeded_dataset_saves_its_split_and_reads_it_back(tmp_path):
    cls = DATASETS.get("eurosat")
    fake_dataset(cls, tmp_path, per_class=6)
    first = build_dataset("eurosat", tmp_path, split_seed=3).split()
    saved = tmp_path / "split_bimors_seed3.json"
    assert saved.is_file() and Split.load(saved).to_json() == first.to_json()
    # a new image does not change an existing split: it is read back, not remade
    write_image(tmp_path / "images" / "Forest" / "Forest_99.jpg", 5)
    again = build_dataset("eurosat", tmp_path, split_seed=3)
    assert again.split().to_json() == first.to_json()
    assert again.provenance()["split_seed"] == 3
    other = build_dataset("eurosat", tmp_path, split_seed=4).split()
    assert other.to_json() != first.to_json()


def test_seeded_split_goes_to_the_cache_when_root_is_read_only(
    tmp_path, isolated_cache, monkeypatch
):
    cls = DATASETS.get("ucmerced")
    root = tmp_path / "ro"
    fake_dataset(cls, root)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if p == root else real_access(p, m))
    ds = build_dataset("ucmerced", root)
    ds.split()
    assert ds.split_path is not None and ds.split_path.is_relative_to(isolated_cache)
    assert not list(root.glob("*.json"))


def test_class_folders_match_case_insensitively(tmp_path):
    cls = DATASETS.get("whurs19")
    fake_dataset(cls, tmp_path)
    (tmp_path / "images" / "footballField").rename(tmp_path / "images" / "footballfield")
    ds = build_dataset("whurs19", tmp_path)
    split = ds.split()
    assert split.classnames == list(cls.classes)
    assert any(s.relpath.startswith("footballfield/") for s in split.train)


@pytest.mark.parametrize(
    ("suffix", "mode", "size"),
    [
        (".tif", "RGB", (256, 250)),
        (".png", "RGBA", (31, 45)),
        (".png", "P", (64, 64)),
        (".jpg", "L", (40, 33)),
        (".tif", "I;16", (32, 32)),
        (".tiff", "CMYK", (20, 20)),
    ],
)
def test_odd_sizes_and_formats_load_as_rgb(tmp_path, suffix, mode, size):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65535, size[::-1], dtype=np.uint16))
        im.save(tmp_path / f"x{suffix}")
    else:
        arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).convert(mode).save(tmp_path / f"x{suffix}")
    rgb = open_rgb(tmp_path / f"x{suffix}")
    assert rgb.mode == "RGB" and rgb.size == size
    if mode == "I;16":  # scaled to 8 bits, not clipped to white
        assert 0 < np.asarray(rgb).mean() < 250


def test_imagefolder_keeps_its_interface(tmp_path):
    for c in ("b", "a"):
        for i in range(4):
            write_image(tmp_path / c / f"{i}.png", i)
    ds = build_dataset("imagefolder", tmp_path)
    assert isinstance(ds, SceneDataset) and ds.name == "imagefolder"
    assert ds.classnames == ["a", "b"] and ds.image_root == tmp_path
    ordered = build_dataset("imagefolder", tmp_path, class_order=["b", "a"], split_seed=1)
    assert ordered.split().classnames == ["b", "a"]


def test_prompt_names_reference_and_readable():
    rsicd = DATASETS.get("rsicd")
    assert rsicd.prompt_names(["denseresidential"], "reference") == ["denseresidential"]
    assert rsicd.prompt_names(["denseresidential"], "readable") == ["dense residential"]
    pn = DATASETS.get("patternnet")
    assert pn.prompt_names(["oil_gas_field"], "reference") == ["oil gas field"]
    aid = DATASETS.get("aid")
    assert aid.prompt_names(["DenseResidential"], "reference") == ["DenseResidential"]
    assert aid.prompt_names(["DenseResidential"], "readable") == ["dense residential"]
    ml = DATASETS.get("mlrsnet")
    assert ml.prompt_names(["harbor&port", "swimmimg_pool"], "readable") == [
        "harbor and port",
        "swimming pool",
    ]
    for name in RS:  # readable names are lower-case words, every class has one
        cls = DATASETS.get(name)
        for n in cls.prompt_names(list(cls.classes), "readable"):
            assert n == n.lower() and "_" not in n and n.strip() == n


def test_label_orders_of_seeded_datasets_are_sorted_folder_names():
    for name in (
        "mlrsnet", "ucmerced", "eurosat", "aid", "whurs19",
        "optimal31", "rsc11", "rsicb128", "rsicb256",
    ):  # fmt: skip
        classes = list(DATASETS.get(name).classes)
        assert classes == sorted(classes, key=str.lower), name


def test_run_config_data_section_maps_to_dataset_options(tmp_path):
    from bimors.core.errors import ConfigError
    from bimors.data import dataset_options
    from bimors.run.config import resolve_config

    fake_dataset(DATASETS.get("eurosat"), tmp_path, per_class=4)
    (tmp_path / "ex.txt").write_text("Forest/Forest_0.jpg\n")
    cfg = resolve_config(
        "coop", overrides=[f"data.exclude={tmp_path / 'ex.txt'}", "data.split_seed=2"]
    )
    opts = dataset_options(cfg.data)
    assert opts == {"split_seed": 2, "exclude": str(tmp_path / "ex.txt")}
    ds = build_dataset("eurosat", tmp_path, **opts)
    assert sum(ds.split().counts()) == 39 and ds.excluded == ["Forest/Forest_0.jpg"]
    assert ds.split_path == tmp_path / "split_bimors_seed2.json"
    with pytest.raises(ConfigError):
        ds.prompt_names(["Forest"], "fancy")
