"""Caption stores that move: identified by the models' names and weights, not their paths, and
recorded by the run so that ``bimors eval RUN`` reads the same ones."""

from __future__ import annotations

import json
import shutil

import pytest

from bimors.captions.provenance import expected_provenance, portable_ref, with_legacy_defaults
from bimors.captions.store import CaptionStore
from bimors.cli import main
from bimors.core.errors import DataError
from bimors.demo.tiny import minilm_path
from tests.test_experiments import _records, env, trained_run  # noqa: F401 (fixtures)


def test_the_run_records_its_stores_and_eval_reads_them(env, trained_run, capsys):  # noqa: F811
    recorded = json.loads((trained_run / "stores.json").read_text())
    assert recorded["synthetic"]["path"] == str(env["store"].resolve())
    assert recorded["synthetic"]["identity"]["encoder_id"].startswith("folder:")
    capsys.readouterr()
    # no --store: the store is not at the default place beside the scenes, the run says where
    assert main(["-q", "eval", str(trained_run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "bimors synthetic base:" in out and "bimors synthetic new:" in out
    assert {r["split"] for r in _records(trained_run)} == {"base", "new"}


def test_a_copy_of_the_encoder_elsewhere_is_the_same_encoder(env, tmp_path):  # noqa: F811
    copy = tmp_path / "other-venv" / "model"
    shutil.copytree(minilm_path(), copy)
    assert portable_ref(str(copy)) == portable_ref(str(minilm_path()))
    assert str(copy) not in portable_ref(str(copy))  # no path in the identity
    with CaptionStore(env["store"], readonly=True) as store:
        store.check(expected_provenance(encoder=str(copy)), "the copy", "")
        (copy / "model.safetensors").write_bytes(b"other weights")
        with pytest.raises(DataError, match="encoder_id"):
            store.check(expected_provenance(encoder=str(copy)), "changed weights", "")


def test_a_store_from_before_portable_ids_is_read_by_its_recorded_paths():
    old = {"captioner": "Salesforce/blip2-opt-2.7b", "encoder": str(minilm_path())}
    new = with_legacy_defaults(old)
    assert new["captioner_id"] == "Salesforce/blip2-opt-2.7b"
    assert new["encoder_id"] == portable_ref(str(minilm_path()))
