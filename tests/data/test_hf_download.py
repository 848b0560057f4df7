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
