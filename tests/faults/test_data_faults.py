"""Split entries stay inside the root, empty parts are errors, bad images are found up front."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bimors.core.errors import DataError
from bimors.data import build_dataset
from bimors.data.checks import check_images, find_bad_images
from bimors.data.split import Split


@pytest.fixture
def scenes_copy(scenes, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("BIMORS_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "scenes"
    shutil.copytree(scenes, root, ignore=shutil.ignore_patterns("split_*", ".bimors"))
    return root


@pytest.mark.parametrize(
    "entry, words",
    [
        ("../../../../etc/passwd", "leaves the dataset folder"),
        ("river/../../x.png", "leaves the dataset folder"),
        ("/etc/passwd", "absolute path"),
        ("C:\\images\\a.jpg", "absolute path"),
    ],
)
def test_split_entries_outside_the_root_are_refused(entry, words):
    data = {"train": [[entry, 0, "river"]], "val": [], "test": []}
    with pytest.raises(DataError, match=words):
        Split.from_json(data, "split.json")


def test_an_empty_test_part_after_exclusions_is_an_error(scenes_copy):
    test = build_dataset("synthetic", scenes_copy).split().test
    with pytest.raises(DataError, match="test part of the split .* has no images"):
        build_dataset("synthetic", scenes_copy, exclude=[s.relpath for s in test]).split()


def test_evaluating_nothing_is_an_error(scenes_copy, hf_backbone):
    from bimors.data.images import ImageDataset
    from bimors.engine.data import TaskData
    from bimors.engine.evaluator import evaluate
    from bimors.methods import build_method

    method = build_method("zeroshot", hf_backbone, ["river"])
    empty = TaskData(ImageDataset(scenes_copy, [], lambda x: x), ["river"])
    with pytest.raises(DataError, match="no images to evaluate"):
        evaluate(method, empty)


def test_every_bad_image_is_named_with_a_ready_exclude_list(scenes_copy):
    ds = build_dataset("synthetic", scenes_copy)
    rel = sorted(ds.split().relpaths())
    for r in rel[:3]:
        data = (scenes_copy / r).read_bytes()
        (scenes_copy / r).write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        check_images("synthetic", scenes_copy, rel, already_excluded=["old/one.png"])
    msg = str(info.value)
    assert "3 image(s)" in msg and all(r in msg for r in rel[:3]) and "\n" not in msg
    listing = msg.split("data.exclude=")[1].split()[0]
    assert Path(listing).read_text().split() == sorted(["old/one.png", *rel[:3]])


def test_good_images_are_remembered_and_changed_ones_decoded_again(scenes_copy, monkeypatch):
    import bimors.data.checks as checks

    rel = sorted(build_dataset("synthetic", scenes_copy).split().relpaths())
    assert find_bad_images(scenes_copy, rel) == {}
    decoded = []
    real = checks.image_problem
    monkeypatch.setattr(checks, "image_problem", lambda p: decoded.append(p) or real(p))
    assert find_bad_images(scenes_copy, rel) == {}
    assert decoded == []
    (scenes_copy / rel[0]).write_bytes(b"garbage")
    assert list(find_bad_images(scenes_copy, rel)) == [rel[0]]
    assert len(decoded) == 1


def test_verify_caps_repeated_lines_and_ends_with_a_summary(tmp_path, capsys):
    from bimors.cli import main
    from bimors.data import DATASETS

    from ..data.fakes import fake_dataset

    split_file = fake_dataset(DATASETS.get("patternnet"), tmp_path / "pn", per_class=9)
    split = json.loads(split_file.read_text())
    for c in DATASETS.get("patternnet").classes[5:]:
        import shutil

        shutil.rmtree(tmp_path / "pn" / "images" / c)
    argv = ["data", "verify", "patternnet", "--root", str(tmp_path / "pn"), "--no-fetch"]
    argv += ["--split-file", str(split_file), "--custom-split"]
    assert main(argv) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) < 30
    assert lines[-1].startswith("patternnet: ") and "error(s)" in lines[-1]
    assert any(ln.startswith("... and ") and "--all" in ln for ln in lines)
    assert main([*argv, "--all"]) == 1
    n_missing = sum(len(v) for v in split.values()) - 5 * 9
    assert sum("missing (listed" in ln for ln in capsys.readouterr().out.splitlines()) == n_missing


def test_run_caption_fills_stores_with_the_runs_split_and_exclusions(scenes_copy, monkeypatch):
    import bimors.captions.fill as fill
    from bimors.captions.stores import CaptionStores
    from bimors.run.config import resolve_config

    seen = {}

    class Closed:
        def close(self):
            pass

    def fake_caption_dataset(name, root, path, *args, options=None, **kwargs):
        seen[name] = options
        return Closed()

    monkeypatch.setattr(fill, "caption_dataset", fake_caption_dataset)
    first = sorted(build_dataset("synthetic", scenes_copy).split().relpaths())[0]
    ds = build_dataset("synthetic", scenes_copy, exclude=[first], split_seed=0)
    cfg = resolve_config("bimors", overrides=[f"data.root={scenes_copy}"])
    fill.fill_stores(CaptionStores(cfg), [ds], "cpu")
    assert seen["synthetic"]["exclude"] == [first]
    assert seen["synthetic"]["check_split"] is True
