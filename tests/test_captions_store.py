"""The caption store, batch plan, provenance checks, export and hash verification (no models)."""

from __future__ import annotations

import csv
import json
import shlex

import numpy as np
import pytest

from bimors.captions.export import caption_rows, export_captions
from bimors.captions.job import merge_parts, part_path
from bimors.captions.plan import plan_batches
from bimors.captions.provenance import (
    caption_command,
    default_store_path,
    expected_provenance,
    identity,
)
from bimors.captions.store import CaptionStore
from bimors.captions.verify import check_hashes
from bimors.core.errors import ConfigError, DataError

PROV = {
    "captioner": "Salesforce/blip2-flan-t5-xl",
    "captioner_revision": None,
    "captioner_dtype": "float32",
    "generation": {"num_beams": 4, "max_new_tokens": 16, "early_stopping": True, "prompt": None},
    "encoder": "bert-base-uncased",
    "encoder_revision": None,
    "encoder_dtype": "float32",
    "pooling": "masked-mean",
    "dim": 4,
    "versions": {"torch": "x"},
}


def vec(i: int) -> np.ndarray:
    return np.arange(4, dtype=np.float32) + i


def make_store(path, n=5, prov=PROV, source=None):
    store = CaptionStore.open_or_create(path, prov, source)
    store.commit([(f"c/{i}.png", f"h{i}", f"caption {i}", vec(i)) for i in range(n)])
    return store


# -- plan ---------------------------------------------------------------------------------------
def test_plan_cuts_batches_from_the_whole_job_so_resumed_batches_match():
    keys = [f"{i:02d}" for i in range(10)]
    full = plan_batches(keys, set(), set(), 4)
    assert full == [keys[0:4], keys[4:8], keys[8:10]]
    # After the first batch committed, the remaining batches are the same batches.
    assert plan_batches(keys, set(keys[:4]), set(), 4) == full[1:]
    # A batch with a failed image: its other images are done, the failure is retried alone.
    done = set(keys[:4]) - {"02"}
    assert plan_batches(keys, done, {"02"}, 4) == [*full[1:], ["02"]]
    # Partly done chunks (the image list changed) are regrouped at the end, not run one by one.
    partial = plan_batches(keys, {"00", "05"}, set(), 4)
    assert partial == [keys[8:10], ["01", "02", "03", "04"], ["06", "07"]]
    assert plan_batches(keys, set(keys), set(), 4) == []
    assert plan_batches(keys + keys, set(), set(), 100) == [keys]
    with pytest.raises(ValueError):
        plan_batches(keys, set(), set(), 0)


# -- store --------------------------------------------------------------------------------------
def test_store_round_trip_and_no_duplicates(tmp_path):
    path = tmp_path / "s.sqlite"
    with make_store(path) as store:
        store.commit([("c/1.png", "h1", "caption 1", vec(1))])  # a rerun of the same batch
        assert len(store) == 5
        rec = store.get("c/3.png")
        assert rec.caption == "caption 3" and rec.sha256 == "h3"
        np.testing.assert_array_equal(rec.vector, vec(3))
        out = store.vectors(["c/4.png", "c/0.png", "c/4.png"])
        assert out.shape == (3, 4)
        np.testing.assert_array_equal(out.numpy(), np.stack([vec(4), vec(0), vec(4)]))
        with pytest.raises(ValueError, match="shape"):
            store.commit([("c/9.png", "h", "x", np.zeros(5, np.float32))])
    assert not list(tmp_path.glob(".*creating"))


def test_failures_and_captions_are_exclusive(tmp_path):
    with make_store(tmp_path / "s.sqlite", n=2) as store:
        store.commit([], [("c/1.png", "cannot decode c/1.png")])
        assert "c/1.png" not in set(store.keys()) and store.failures() == {
            "c/1.png": "cannot decode c/1.png"
        }
        store.commit([("c/1.png", "h", "fixed", vec(1))])
        assert store.failures() == {} and store.get("c/1.png").caption == "fixed"


def test_vectors_refuse_missing_keys_with_count_and_command(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    path = default_store_path(root, PROV["captioner"], PROV["encoder"])
    with make_store(path, n=3, source={"dataset": "imagefolder", "root": str(root)}) as store:
        store.commit([], [("c/7.png", "cannot decode c/7.png")])
        wanted = [f"c/{i}.png" for i in range(8)]
        with pytest.raises(DataError) as err:
            store.vectors(wanted)
        msg = str(err.value)
        assert "lacks 5 of 8 images" in msg
        assert "1 of them failed to decode" in msg
        command = msg.split("fill them with: ")[1]
        args = shlex.split(command)
        assert args[:6] == ["bimors", "caption", "--dataset", "imagefolder", "--root", str(root)]
        assert "--store" not in args  # the default location needs no --store
        with pytest.raises(DataError, match="fill them with: my command"):
            store.vectors(wanted, fill_command="my command")


def test_store_of_another_encoder_or_width_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    make_store(path).close()
    other = {**PROV, "encoder": "roberta-base", "dim": 768}
    with pytest.raises(DataError, match=r"encoder_id: store has 'bert-base-uncased'.*roberta-base"):
        CaptionStore.open_or_create(path, other)
    with pytest.raises(DataError, match=r"dim: store has 4, expected 768"):
        CaptionStore.open_or_create(path, {**PROV, "dim": 768})
    with pytest.raises(DataError, match=r"generation.num_beams: store has 4, expected 1"):
        CaptionStore.open_or_create(
            path, {**PROV, "generation": {**PROV["generation"], "num_beams": 1}}
        )
    # Library versions are recorded but a change does not lock the store.
    CaptionStore.open_or_create(path, {**PROV, "versions": {"torch": "y"}}).close()
    with CaptionStore(path, readonly=True) as store:
        keys = [f"c/{i}.png" for i in range(5)]
        ok = expected_provenance(PROV["captioner"], PROV["encoder"], 4, 16, dim=4)
        assert store.vectors(keys, expect=ok).shape == (5, 4)
        with pytest.raises(DataError, match="encoder_id: store has 'bert-base-uncased'") as err:
            store.vectors(keys, expect=expected_provenance(encoder="roberta-base"))
        assert "bimors caption" in str(err.value) and "--encoder roberta-base" in str(err.value)
        with pytest.raises(DataError, match="dim: store has 4, expected 768"):
            store.vectors(keys, expect={"dim": 768})


def test_not_a_store_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        CaptionStore(tmp_path / "nope.sqlite")
    bad = tmp_path / "bad.sqlite"
    bad.write_text("hello")
    with pytest.raises(DataError, match="not a caption store"):
        CaptionStore(bad)


def test_parts_merge_idempotently_and_check_provenance(tmp_path):
    path = tmp_path / "s.sqlite"
    main = make_store(path, n=2)
    with CaptionStore.open_or_create(part_path(path, 0), PROV) as part:
        part.commit([("c/5.png", "h5", "caption 5", vec(5))], [("c/6.png", "broken")])
    with CaptionStore.open_or_create(part_path(path, 1), PROV) as part:
        part.commit([("c/7.png", "h7", "caption 7", vec(7))])
    merge_parts(main)
    assert main.keys() == {"c/0.png", "c/1.png", "c/5.png", "c/7.png"}
    assert main.failures() == {"c/6.png": "broken"}
    assert not list(tmp_path.glob("*.part*"))
    with CaptionStore.open_or_create(part_path(path, 3), {**PROV, "encoder": "other"}) as part:
        part.commit([("c/8.png", "h", "x", vec(8))])
    with pytest.raises(DataError, match="part file"):
        merge_parts(main)
    main.close()


def test_default_store_path_names_both_models_and_hides_from_imagefolder(tmp_path):
    a = default_store_path(tmp_path, "Salesforce/blip2-flan-t5-xl", "bert-base-uncased")
    b = default_store_path(tmp_path, "Salesforce/blip2-flan-t5-xl", "roberta-base")
    assert a != b and a.parent == tmp_path / ".bimors" / "captions"
    assert a.name == "Salesforce--blip2-flan-t5-xl__bert-base-uncased.sqlite"
    model = tmp_path / "models" / "blip2"
    model.mkdir(parents=True)
    assert default_store_path(tmp_path, str(model), "x").name.startswith("blip2-")


def test_caption_command_reproduces_non_default_settings(tmp_path):
    prov = {
        **PROV,
        "captioner": "Salesforce/blip-image-captioning-base",
        "captioner_dtype": "bfloat16",
        "generation": {
            "num_beams": 2,
            "max_new_tokens": 20,
            "early_stopping": False,
            "prompt": "a satellite image of",
        },
    }
    args = shlex.split(caption_command("patternnet", tmp_path, tmp_path / "x.sqlite", prov))
    for flag, value in [
        ("--captioner", "Salesforce/blip-image-captioning-base"),
        ("--dtype", "bfloat16"),
        ("--num-beams", "2"),
        ("--max-new-tokens", "20"),
        ("--prompt", "a satellite image of"),
        ("--store", str(tmp_path / "x.sqlite")),
    ]:
        assert args[args.index(flag) + 1] == value
    assert "--no-early-stopping" in args and "--encoder" not in args
    # every recorded field is compared, the models by their portable ids (not where they are)
    paths = {"captioner", "encoder", "versions"}
    assert set(identity(prov)) == {k for k in prov if k not in paths} | {
        "captioner_id",
        "encoder_id",
    }


# -- export and verify --------------------------------------------------------------------------
def test_export_jsonl_and_csv(tmp_path):
    with make_store(tmp_path / "s.sqlite", n=3) as store:
        store.commit([("c/a,b.png", "hq", 'a "quoted", caption', vec(9))], [("c/x.png", "broken")])
        rows = list(caption_rows(store))
        assert [r["relpath"] for r in rows] == [
            "c/0.png",
            "c/1.png",
            "c/2.png",
            "c/a,b.png",
            "c/x.png",
        ]
        assert export_captions(store, tmp_path / "out.jsonl") == 5
        assert export_captions(store, tmp_path / "out.csv") == 5
        with pytest.raises(ConfigError, match=r"\.jsonl or \.csv"):
            export_captions(store, tmp_path / "out.txt")
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert lines == rows
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as fh:
        back = list(csv.DictReader(fh))
    assert back[3]["relpath"] == "c/a,b.png" and back[3]["caption"] == 'a "quoted", caption'
    assert back[4]["error"] == "broken" and back[4]["caption"] == ""


def test_verify_finds_changed_and_missing_images(tmp_path):
    from bimors.captions.reader import file_sha256

    root = tmp_path / "data"
    (root / "c").mkdir(parents=True)
    for i in range(3):
        (root / "c" / f"{i}.png").write_bytes(bytes([i]) * 10)
    hashes = {f"c/{i}.png": file_sha256(root / "c" / f"{i}.png") for i in range(3)}
    assert check_hashes(root, hashes).ok
    (root / "c" / "1.png").write_bytes(b"changed")
    (root / "c" / "2.png").unlink()
    report = check_hashes(root, hashes)
    assert (
        report.checked == 3 and report.changed == ["c/1.png"] and report.unreadable == ["c/2.png"]
    )
    assert check_hashes(root, hashes, keys=["c/0.png", "c/9.png"]).checked == 1
