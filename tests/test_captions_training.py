"""The trainer's side of the caption store: it refuses vectors of other models or missing images."""

from __future__ import annotations

import shlex
import shutil

import numpy as np
import pytest

from bimors.captions.provenance import default_store_path
from bimors.captions.run import dataset_relpaths
from bimors.captions.store import CaptionStore
from bimors.captions.stores import CaptionStores
from bimors.core.errors import DataError
from bimors.data.synthetic import SyntheticScenes
from bimors.protocols.plans import plan_base2new
from bimors.run.config import resolve_config
from bimors.run.experiment import run_plan

ENCODER = "bert-base-uncased"
CAPTIONER = "Salesforce/blip2-flan-t5-xl"


def provenance(encoder: str = ENCODER, dim: int = 8) -> dict:
    return {
        "captioner": CAPTIONER,
        "captioner_revision": None,
        "captioner_dtype": "bfloat16",
        # what the BiMoRS preset asks for: the official script's settings
        "generation": {**resolve_config("bimors").captions.generation().as_dict()},
        "encoder": encoder,
        "encoder_revision": None,
        "encoder_dtype": "float32",
        "pooling": "masked-mean",
        "dim": dim,
        "versions": {},
    }


def fake_store(path, keys, prov, root):
    store = CaptionStore.open_or_create(path, prov, {"dataset": "synthetic", "root": str(root)})
    store.commit((k, "h", "a caption", np.full(prov["dim"], 0.5, np.float32)) for k in keys)
    return store


def config(root, *overrides):
    return resolve_config(
        "bimors", overrides=["data.num_workers=0", f"data.root={root}", *overrides]
    )


def test_run_refuses_a_store_of_another_encoder_or_with_missing_images(
    scenes, hf_backbone, tmp_path
):
    dataset = SyntheticScenes(scenes)
    keys = dataset_relpaths(dataset)
    dropped = dataset.split().test[0].relpath  # every test image is evaluated
    path = default_store_path(scenes, CAPTIONER, ENCODER)
    path.parent.mkdir(parents=True, exist_ok=True)
    plan = plan_base2new(dataset, 0, 1)

    def run(cfg, name):
        stores = CaptionStores(cfg)  # finds the store at its default place beside the data
        try:
            return run_plan(cfg, plan, hf_backbone, stores, tmp_path / name)
        finally:
            stores.close()

    try:
        fake_store(path, [k for k in keys if k != dropped], provenance(), scenes).close()
        # The config names the store's models, but one image lacks a caption.
        with pytest.raises(DataError, match=r"lacks 1 of \d+ images") as err:
            run(config(scenes, "data.shots=1000"), "a")
        fill = shlex.split(str(err.value).split("fill them with: ")[1])
        assert fill[:6] == ["bimors", "caption", "--dataset", "synthetic", "--root", str(scenes)]
        assert fill[fill.index("--dtype") + 1] == "bfloat16" and "--store" not in fill
        # The config names another encoder than the store's: its store does not exist.
        cfg = config(scenes, "data.shots=1000", "captions.encoder=roberta-base")
        with pytest.raises(DataError, match=r"no caption store for synthetic .*--encoder roberta"):
            run(cfg, "b")
        # ... and pointed at this store explicitly, the store is refused for its encoder.
        explicit = ("data.dataset=synthetic", f"captions.store={path}")
        cfg = config(scenes, "data.shots=1000", "captions.encoder=roberta-base", *explicit)
        with pytest.raises(DataError, match=r"encoder: store has 'bert-base-uncased'"):
            run(cfg, "c")
    finally:
        shutil.rmtree(scenes / ".bimors")  # the scenes folder is shared by other tests
