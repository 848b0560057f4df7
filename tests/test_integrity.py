"""Every derived artefact carries a checksum checked on read: one flipped bit is never used.

A flipped bit in a feature-cache entry or a shared-view file is computed again
(one-line notice, the same result as an undamaged run); in a caption store's
vector or text it is an error naming the store, the images and the command.
``bimors verify`` and ``bimors captions verify`` report each, with exit 2.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from bimors.captions.store import CaptionStore
from bimors.cli import main
from bimors.core import checksum
from bimors.core.errors import IntegrityError
from bimors.engine.feature_cache import FeatureCache, load_value
from bimors.engine.features import CachedFeatures
from bimors.engine.shared_views import SharedViews
from bimors.methods import build_method

from .test_captions_store import PROV
from .test_feature_cache import TOL, _data, _logits


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    """Flip one bit of ``path`` at byte ``offset`` (negative: from the end)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def flip_in(path: Path, needle: bytes, bit: int = 1) -> None:
    """Flip one bit of the first occurrence of ``needle`` in ``path`` (a caption store)."""
    data = path.read_bytes()
    at = data.find(needle)
    assert at >= 0 and data.find(needle, at + 1) < 0, "needle must occur exactly once"
    flip_bit(path, at + len(needle) // 2, bit)


def test_checksum_sees_every_single_bit_of_a_tensor_and_its_shape():
    t = torch.randn(3, 5)
    base = checksum.of_tensor(t)
    raw = t.clone().view(torch.int32)
    for i in range(0, raw.numel() * 32, 7):
        flipped = raw.clone().reshape(-1)
        flipped[i // 32] ^= 1 << (i % 32)
        assert checksum.of_tensor(flipped.view(torch.float32).reshape(3, 5)) != base
    assert checksum.of_tensor(t.reshape(5, 3)) != base
    assert checksum.of_texts(["ab", "c"]) != checksum.of_texts(["a", "bc"])


def test_flipped_bit_in_an_eval_cache_entry_is_computed_again_with_the_same_result(
    backbone, scenes, tmp_path, caplog
):
    data = _data(scenes, backbone, train=False, n=6)
    method = build_method("coop", backbone, data.classnames)

    def logits() -> torch.Tensor:
        source = CachedFeatures(FeatureCache(tmp_path))
        with torch.no_grad():
            return torch.cat(
                [_logits(method, source, b, data) for b in source.eval_loader(method, data, 3)]
            )

    undamaged = logits()
    victim = sorted(tmp_path.rglob("*.pooled.safetensors"))[2]
    good = load_value(victim, "entry", tmp_path)
    flip_bit(victim, -3)
    with pytest.raises(IntegrityError, match="fails its checksum"):
        load_value(victim, "entry", tmp_path)
    assert main(["verify", str(tmp_path)]) == 2
    caplog.set_level(logging.WARNING)
    again = logits()
    notices = [r.getMessage() for r in caplog.records if "computing it again" in r.getMessage()]
    assert len(notices) == 1 and victim.name in notices[0] and "\n" not in notices[0]
    # the entry is computed again in a batch of its own: equal to the cache's usual tolerance
    # (a batch's composition may change the last bits on CPUs), the same predictions
    torch.testing.assert_close(again, undamaged, **TOL)
    assert torch.equal(again.argmax(1), undamaged.argmax(1))
    torch.testing.assert_close(load_value(victim, "entry", tmp_path), good, **TOL)
    assert main(["verify", str(tmp_path)]) == 0


def test_flipped_bit_in_a_shared_view_is_computed_again_bit_equal(
    hf_backbone, scenes, tmp_path, caplog, capsys
):
    data = _data(scenes, hf_backbone, train=True, n=8)
    method = build_method("coop", hf_backbone, data.classnames)
    cpu = torch.device("cpu")

    def epoch(source: SharedViews) -> list[tuple[bool, torch.Tensor]]:
        out = []
        for batch in source.train_loader(method, data, 4, 1, 0):
            out.append(("pixels" in batch, source.image_features(method, batch, cpu).pooled))
        return out

    first = epoch(SharedViews(FeatureCache(tmp_path)))
    assert all(computed for computed, _ in first)
    served = epoch(SharedViews(FeatureCache(tmp_path)))
    assert not any(computed for computed, _ in served)
    victim = sorted((tmp_path / "views").rglob("b00001.pooled.safetensors"))[0]
    flip_bit(victim, -1, 5)
    assert main(["verify", str(tmp_path)]) == 2
    lines = capsys.readouterr().out.splitlines()
    damaged = [x for x in lines if x.startswith("DAMAGED")]
    assert len(damaged) == 1 and "shared views" in damaged[0] and victim.name in damaged[0]
    caplog.set_level(logging.WARNING)
    again = epoch(SharedViews(FeatureCache(tmp_path)))
    assert [computed for computed, _ in again] == [False, True]  # the damaged batch: encoder
    for (_, a), (_, b) in zip(first, again, strict=True):
        assert torch.equal(a, b)
    assert sum("computing it again" in r.getMessage() for r in caplog.records) == 1
    assert main(["verify", str(tmp_path)]) == 0  # stored again, intact


def _store(path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    vectors = {f"c{i}/img{i}.png": rng.standard_normal(4).astype(np.float32) for i in range(3)}
    with CaptionStore.open_or_create(path, PROV, {"dataset": "synthetic", "root": "/data"}) as s:
        s.commit(
            [
                (k, "h" * 64, f"caption of image number {i}", v)
                for i, (k, v) in enumerate(vectors.items())
            ]
        )
    return path, vectors


@pytest.mark.parametrize("where", ["vector", "text"])
def test_flipped_bit_in_a_caption_vector_or_text_is_an_error_naming_store_images_command(
    tmp_path, capsys, where
):
    path, vectors = _store(tmp_path / "s.sqlite")
    keys = sorted(vectors)
    victim = keys[1]
    needle = vectors[victim].tobytes() if where == "vector" else b"caption of image number 1"
    flip_in(path, needle)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]  # SQLite cannot tell
    db.close()
    with CaptionStore(path, readonly=True) as store:
        with pytest.raises(IntegrityError) as err:
            store.vectors(keys)
        msg = str(err.value)
        assert str(path) in msg and victim in msg and keys[0] not in msg
        assert "bimors caption --dataset synthetic --root /data" in msg and "--verify" in msg
        assert store.damaged() == [victim]
        with pytest.raises(IntegrityError):
            store.get(victim)
        assert store.vectors([keys[0], keys[2]]).shape == (2, 4)  # intact rows still serve
    assert main(["captions", "verify", str(path)]) == 2
    out = capsys.readouterr().out
    assert out.startswith("DAMAGED") and victim in out and "--verify" in out
    assert main(["verify", str(tmp_path)]) == 2
    assert "DAMAGED  caption store" in capsys.readouterr().out


def test_caption_store_error_exits_2_from_the_cli(tmp_path, capsys):
    path, vectors = _store(tmp_path / "s.sqlite")
    flip_in(path, vectors[sorted(vectors)[0]].tobytes())
    assert main(["captions", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert "fail their checksum" in err and "Traceback" not in err


def test_old_format_store_is_refused_with_the_upgrade_command(tmp_path, capsys):
    path, vectors = _store(tmp_path / "s.sqlite")
    db = sqlite3.connect(path)  # as bimors < format 2 wrote it: no checksum column
    with db:
        db.execute("ALTER TABLE captions DROP COLUMN checksum")
        db.execute("UPDATE meta SET value = 'bimors-caption-store/1' WHERE key = 'format'")
    db.close()
    with pytest.raises(IntegrityError, match=f"bimors captions upgrade {path}"):
        CaptionStore(path, readonly=True)
    assert main(["verify", str(path)]) == 2
    assert "captions upgrade" in capsys.readouterr().out
    assert main(["captions", "upgrade", str(path)]) == 0
    with CaptionStore(path, readonly=True) as store:
        keys = sorted(vectors)
        assert np.array_equal(store.vectors(keys).numpy(), np.stack([vectors[k] for k in keys]))
    assert main(["captions", "verify", str(path)]) == 0
    assert main(["verify", str(path)]) == 0


def test_verify_names_what_it_checked_and_refuses_an_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["verify", str(tmp_path / "empty")]) == 2
    assert "nothing to verify" in capsys.readouterr().err
    _store(tmp_path / "s.sqlite")
    assert main(["verify", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"ok       caption store {tmp_path / 's.sqlite'} (3")
