"""Bad input: every problem is named with its file and fix; nothing is dropped silently."""

from __future__ import annotations

import json
import shutil

import pytest

from bimors.core.errors import DataError
from bimors.data import DATASETS, build_dataset
from bimors.data.images import ImageDataset
from bimors.data.verify import verify_dataset
from tests.data.fakes import fake_dataset, write_image

EUROSAT = DATASETS.get("eurosat")


@pytest.fixture
def eurosat(tmp_path):
    """A fake EuroSAT copy with its seeded split already saved."""
    root = tmp_path / "EuroSAT"
    fake_dataset(EUROSAT, root, per_class=4)
    build_dataset("eurosat", root).split()
    return root


def damage(root):
    """Break the copy in every way at once; returns the damaged paths."""
    img = root / "images"
    bad = {
        "empty": img / "AnnualCrop" / "AnnualCrop_0.jpg",
        "truncated": img / "Forest" / "Forest_1.jpg",
        "not_image": img / "Pasture" / "Pasture_2.jpg",
        "stray": img / "River" / "notes.txt",
        "missing_file": img / "Highway" / "Highway_3.jpg",
        "missing_class": img / "SeaLake",
        "extra_class": img / "Clouds",
    }
    bad["empty"].write_bytes(b"")
    data = bad["truncated"].read_bytes()
    bad["truncated"].write_bytes(data[: len(data) // 2])
    bad["not_image"].write_text("this is not a picture")
    bad["stray"].write_text("notes")
    bad["missing_file"].unlink()
    shutil.rmtree(bad["missing_class"])
    write_image(bad["extra_class"] / "cloud_0.jpg", 1)
    return bad


def test_loading_names_missing_and_extra_class_folders(eurosat):
    damage(eurosat)
    with pytest.raises(DataError) as err:
        build_dataset("eurosat", eurosat).split()
    msg = str(err.value)
    assert "SeaLake" in msg and "Clouds" in msg and "bimors data verify" in msg


def test_verify_reports_every_problem(eurosat):
    bad = damage(eurosat)
    report = verify_dataset(build_dataset("eurosat", eurosat), workers=2)
    text = "\n".join(map(str, report.problems))
    assert not report.ok
    for key in ("empty", "truncated", "not_image", "missing_file", "missing_class", "extra_class"):
        assert str(bad[key]) in text, key
    assert str(bad["stray"]) in text
    by_path = {p.path: p for p in report.problems}
    assert by_path[str(bad["empty"])].issue.startswith("empty")
    assert by_path[str(bad["truncated"])].issue.startswith("corrupt")
    assert by_path[str(bad["not_image"])].issue.startswith("not an image")
    assert by_path[str(bad["stray"])].severity == "warning"
    assert "exclude" in by_path[str(bad["empty"])].fix
    # the SeaLake images are each listed as missing too
    assert sum("SeaLake_" in p.path and p.issue.startswith("missing") for p in report.problems) == 4
    assert set(report.bad_images()) >= {
        "AnnualCrop/AnnualCrop_0.jpg",
        "Forest/Forest_1.jpg",
        "Pasture/Pasture_2.jpg",
        "Highway/Highway_3.jpg",
    }


def test_verify_of_a_good_copy_is_clean(eurosat):
    report = verify_dataset(build_dataset("eurosat", eurosat))
    assert report.ok and report.checked == 40 and not report.errors
    assert report.counts == {"train": 20, "val": 10, "test": 10}


def test_missing_listed_file_fails_loading_until_excluded_on_purpose(eurosat, tmp_path):
    (eurosat / "images" / "Highway" / "Highway_3.jpg").unlink()
    with pytest.raises(DataError, match=r"Highway/Highway_3.jpg") as err:
        build_dataset("eurosat", eurosat).split()
    assert "exclude" in str(err.value)
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("# gone from my copy\nHighway/Highway_3.jpg\n")
    ds = build_dataset("eurosat", eurosat, exclude=exclude)
    split = ds.split()
    assert ds.excluded == ["Highway/Highway_3.jpg"]
    assert "Highway/Highway_3.jpg" not in split.relpaths()
    assert sum(split.counts()) == 39
    assert ds.provenance()["excluded"] == ["Highway/Highway_3.jpg"]


def test_exclude_list_naming_unknown_files_is_refused(eurosat):
    with pytest.raises(DataError, match="not in the split"):
        build_dataset("eurosat", eurosat, exclude=["Forest/nope.jpg"]).split()
    with pytest.raises(DataError, match="exclude file"):
        build_dataset("eurosat", eurosat, exclude=str(eurosat / "no-such-file.txt"))


def test_corrupt_image_fails_at_decode_with_its_name(eurosat):
    ds = build_dataset("eurosat", eurosat)
    split = ds.split()
    target = next(s for s in split.train if s.classname == "Forest")
    (ds.image_root / target.relpath).write_bytes(b"\xff\xd8\xff garbage")
    images = ImageDataset(ds.image_root, split.train, lambda im: im)
    with pytest.raises(DataError, match=target.relpath) as err:
        images[split.train.index(target)]
    assert "exclude" in str(err.value)


def test_empty_class_folder_is_named(tmp_path):
    fake_dataset(EUROSAT, tmp_path)
    for f in (tmp_path / "images" / "River").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="River"):
        build_dataset("eurosat", tmp_path).split()


def test_published_split_with_another_checksum_is_refused(tmp_path):
    cls = DATASETS.get("patternnet")
    fake_split = fake_dataset(cls, tmp_path)
    shutil.copy(fake_split, tmp_path / "patternnet.json")
    with pytest.raises(DataError, match=r"not the published patternnet.json") as err:
        build_dataset("patternnet", tmp_path).split()
    assert str(tmp_path / "patternnet.json") in str(err.value)
    with pytest.raises(DataError, match="not the published"):
        build_dataset("patternnet", tmp_path, split_file=fake_split).split()
    ds = build_dataset("patternnet", tmp_path, split_file=fake_split, check_split=False)
    assert ds.split().counts() == (38, 38, 38)
    assert ds.provenance()["published_split"] is False


def test_published_split_missing_offline_says_where_to_get_it(tmp_path):
    fake_dataset(DATASETS.get("rsicd"), tmp_path)
    with pytest.raises(DataError) as err:
        build_dataset("rsicd", tmp_path, fetch=False).split()
    msg = str(err.value)
    assert "6819a9b/json/rsicd.json" in msg and DATASETS.get("rsicd").published.sha256 in msg


def test_split_with_another_label_order_is_refused(tmp_path):
    cls = DATASETS.get("rsicdv2")
    split_file = fake_dataset(cls, tmp_path)
    data = json.loads(split_file.read_text())
    swap = {0: 1, 1: 0}
    for part in data.values():
        for row in part:
            row[1] = swap.get(row[1], row[1])
    split_file.write_text(json.dumps(data))
    with pytest.raises(DataError, match="label order"):
        build_dataset("rsicdv2", tmp_path, split_file=split_file, check_split=False).split()


def test_split_listing_files_that_do_not_exist(tmp_path):
    cls = DATASETS.get("resisc45")
    split_file = fake_dataset(cls, tmp_path)
    data = json.loads(split_file.read_text())
    data["test"].append(["runway/runway_999.jpg", 0, "runway"])
    split_file.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"runway/runway_999.jpg"):
        build_dataset("resisc45", tmp_path, split_file=split_file, check_split=False).split()
    ds = build_dataset("resisc45", tmp_path, split_file=split_file, check_split=False)
    report = verify_dataset(ds)
    assert any(p.path.endswith("runway/runway_999.jpg") for p in report.errors)
