"""The fewshot_RSVLMs datasets: fake layouts pass ``data verify``; seeded splits are saved."""

from __future__ import annotations

import json

import pytest

from bimors.cli import main
from bimors.data import DATASETS, build_dataset
from bimors.data.download import file_digest
from tests.data.fakes import fake_dataset

NEW = ("optimal31", "rsc11", "rsicb128", "rsicb256")
N_CLASSES = {"optimal31": 31, "rsc11": 11, "rsicb128": 45, "rsicb256": 35}


@pytest.mark.parametrize("name", NEW)
def test_fake_layout_passes_data_verify_and_the_split_is_recorded(name, tmp_path, capsys):
    cls = DATASETS.get(name)
    assert len(cls.classes) == N_CLASSES[name]
    root = tmp_path / cls.folder
    fake_dataset(cls, root)
    assert main(["data", "verify", name, "--root", str(root)]) == 0
    assert "0 error(s)" in capsys.readouterr().out
    ds = build_dataset(name, root)
    split = ds.split()  # the seeded split is written beside the images ...
    saved = root / "split_bimors_seed0.json"
    assert saved.is_file() and set(json.loads(saved.read_text())) == {"train", "val", "test"}
    assert ds.provenance()["split_sha256"] == file_digest(saved)  # ... and checksummed per run
    assert split.counts() == (len(cls.classes),) * 3
    assert main(["data", "verify", name, "--root", str(root)]) == 0  # verify reads it back
    names = cls.prompt_names(list(cls.classes), "readable")
    assert all(n == n.lower() and n.strip() == n for n in names)


def test_readable_names_are_fewshot_rsvlms_prompt_names():
    assert DATASETS.get("optimal31").prompt_names(["baseballdiamond"], "readable") == [
        "baseball diamond"
    ]
    assert DATASETS.get("rsicb128").prompt_names(["sea"], "readable") == ["sea or lake"]
    assert DATASETS.get("rsicb256").prompt_names(["sea"], "readable") == ["sea"]


# -- bimors data download NAME --source hub, offline ----------------------------------------------


def hub_repo(folder, names, per_class=3, label_column="label", keep_paths=False, shards=2):
    """A Hugging Face dataset repository's shape: parquet shards + README dataset_info YAML."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.data.fakes import image_bytes

    folder.mkdir(parents=True)
    rows = [(lab, i) for i in range(per_class) for lab in range(len(names))]
    (folder / "data").mkdir()
    for s in range(shards):
        part = rows[s::shards]
        images = [
            {
                "bytes": image_bytes(lab * 100 + i, fmt="PNG" if i % 2 else "JPEG"),
                "path": f"{lab}_{i}.{'png' if i % 2 else 'jpg'}" if keep_paths else None,
            }
            for lab, i in part
        ]
        table = pa.table({"image": images, label_column: [lab for lab, _ in part]})
        pq.write_table(table, folder / "data" / f"train-{s:05d}-of-{shards:05d}.parquet")
    label_names = "\n".join(f"              '{i}': {n}" for i, n in enumerate(names))
    (folder / "README.md").write_text(
        "---\ndataset_info:\n  features:\n  - name: image\n    dtype: image\n"
        f"  - name: {label_column}\n    dtype:\n      class_label:\n        names:\n"
        f"{label_names}\n---\n# a dataset card\n"
    )
    return folder


RSC11_HF_NAMES = [  # as the fewshot_RSVLMs download script names them: words with spaces
    "dense forest", "grassland", "harbor", "high buildings", "low buildings", "overpass",
    "railway", "residential area", "roads", "sparse forest", "storage tanks",
]  # fmt: skip


def test_hub_download_materialises_checks_and_reruns_as_a_no_op(tmp_path, capsys):
    repo = hub_repo(tmp_path / "hf", RSC11_HF_NAMES)
    root = tmp_path / "RSC11"
    args = ["data", "download", "rsc11", "--root", str(root), "--hub-path", str(repo)]
    assert main(args) == 0
    assert "images from jonathan-roberts1/RS_C11" in capsys.readouterr().out
    images = root / "images"
    assert sorted(p.name for p in images.iterdir()) == sorted(DATASETS.get("rsc11").classes)
    files = sorted(p.name for p in (images / "denseforest").iterdir())
    # numbered in shard, then row order (shard 0 holds images 0 and 2, shard 1 image 1)
    assert files == ["denseforest_1.jpg", "denseforest_2.jpg", "denseforest_3.png"]
    assert main(["data", "verify", "rsc11", "--root", str(root)]) == 0
    assert not list(root.glob(".hub-tmp-*"))
    before = {p: p.stat().st_mtime_ns for p in images.rglob("*")}
    assert main(args) == 0  # a rerun writes nothing
    assert {p: p.stat().st_mtime_ns for p in images.rglob("*")} == before


def test_hub_download_through_snapshot_download_keeps_original_names(tmp_path, monkeypatch):
    import huggingface_hub

    from bimors.data.obtain import obtain

    names = [n.replace(" ", "_") for n in RSC11_HF_NAMES]
    repo = hub_repo(tmp_path / "hf", names, label_column="label_2", keep_paths=True)
    calls = []

    def fake_snapshot(repo_id, repo_type=None, revision=None):
        calls.append((repo_id, repo_type))
        return str(repo)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    from bimors.data.info import DatasetInfo, HubSource

    class Toy(DATASETS.get("rsc11")):
        info = DatasetInfo(title="toy", hub=HubSource("someone/toy", label_column="label_2"))

    out = obtain(Toy, tmp_path / "toy", source="hub")
    assert calls == [("someone/toy", "dataset")] and out.layout_problems == []
    assert (tmp_path / "toy" / "images" / "harbor" / "2_0.jpg").is_file()


def test_hub_interrupted_run_leaves_no_half_written_folder(tmp_path, monkeypatch):
    from bimors.data import hub

    repo = hub_repo(tmp_path / "hf", RSC11_HF_NAMES)
    real = hub._rows

    def interrupted(*a):
        for n, row in enumerate(real(*a)):
            if n == 5:
                raise KeyboardInterrupt
            yield row

    monkeypatch.setattr(hub, "_rows", interrupted)
    root = tmp_path / "RSC11"
    with pytest.raises(KeyboardInterrupt):
        hub.materialise(DATASETS.get("rsc11"), root, repo)
    assert sorted(p.name for p in root.iterdir()) == []  # no images/, no temp, no marker
    (root / ".hub-tmp-killed").mkdir()  # what a killed run leaves: swept by the next one
    monkeypatch.setattr(hub, "_rows", real)
    hub.materialise(DATASETS.get("rsc11"), root, repo)
    assert not list(root.glob(".hub-tmp-*")) and (root / "images" / "roads").is_dir()


def test_hub_class_that_maps_to_no_folder_is_refused(tmp_path):
    from bimors.core.errors import DataError
    from bimors.data.hub import materialise

    repo = hub_repo(tmp_path / "hf", [*RSC11_HF_NAMES[:-1], "swimming pool"])
    root = tmp_path / "RSC11"
    with pytest.raises(DataError, match=r"RS_C11: class 'swimming pool' maps to no rsc11"):
        materialise(DATASETS.get("rsc11"), root, repo)
    assert not (root / "images").exists()


def test_hub_missing_pyarrow_names_the_extra(tmp_path, monkeypatch):
    import builtins

    from bimors.core.errors import DataError
    from bimors.data.hub import materialise

    repo = hub_repo(tmp_path / "hf", RSC11_HF_NAMES)
    real_import = builtins.__import__

    def no_pyarrow(name, *a, **k):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(DataError, match=r"bimors\[hub\]"):
        materialise(DATASETS.get("rsc11"), tmp_path / "RSC11", repo)


def test_hub_image_folder_repository_and_data_list(tmp_path, capsys):
    from bimors.data.hub import materialise
    from tests.data.fakes import write_image

    repo = tmp_path / "hf"
    for n, name in enumerate(RSC11_HF_NAMES):
        for i in range(3):
            write_image(repo / "train" / name.replace(" ", "_") / f"{i}.png", n * 10 + i)
    root = tmp_path / "RSC11"
    materialise(DATASETS.get("rsc11"), root, repo)
    assert (root / "images" / "storagetanks" / "2.png").is_file()
    assert main(["data", "verify", "rsc11", "--root", str(root)]) == 0
    capsys.readouterr()
    assert main(["data", "list", "rsicb256"]) == 0
    out = capsys.readouterr().out
    assert "jonathan-roberts1/RSI-CB256 (label column label_2)" in out
    assert "'riverprotectionforest' -> 'river protection forest'" in out
