"""Bad inputs of issue 20 (item 5): each ends in one line naming the file and the fix."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from bimors.captions.store import CaptionStore
from bimors.cli import main
from bimors.core.errors import DataError
from bimors.core.locks import RunLock, held_by, lock_path
from bimors.data import build_dataset
from bimors.data.images import ImageDataset, image_problem, open_rgb
from bimors.data.split import Sample
from bimors.data.verify import verify_dataset
from tests.data.fakes import write_image


def _folder(root: Path, per_class: int = 4) -> Path:
    for c in ("alpha", "beta"):
        for i in range(per_class):
            write_image(root / c / f"{c}_{i}.png", i)
    return root


def _bomb(path: Path, side: int = 20000) -> Path:
    """A PNG whose header says side x side (the pixels are never there)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\0" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
    return path


def _pixels(im):
    return np.asarray(im)


def test_a_bad_image_read_in_a_worker_is_one_line_naming_it(tmp_path):
    root = _folder(tmp_path / "scenes", 1)
    bad = root / "alpha" / "alpha_0.png"
    bad.write_bytes(bad.read_bytes()[:40])
    data = ImageDataset(root, [Sample("alpha/alpha_0.png", 0, "alpha")], _pixels)
    with pytest.raises(DataError) as err:
        next(iter(DataLoader(data, batch_size=1, num_workers=1)))
    msg = str(err.value)
    assert "\n" not in msg and "Caught" not in msg and "Traceback" not in msg
    assert str(bad) in msg and "exclude" in msg


def test_a_decompression_bomb_is_a_bad_image(tmp_path, capsys):
    root = _folder(tmp_path / "scenes")
    bomb = _bomb(root / "alpha" / "alpha_1.png")
    problem = image_problem(bomb)
    assert problem is not None and problem.startswith("corrupt")
    with pytest.raises(DataError, match="too many pixels"):
        open_rgb(bomb)
    ds = build_dataset("imagefolder", root)
    report = verify_dataset(ds, workers=1)
    assert report.bad_images() == ["alpha/alpha_1.png"]
    out = tmp_path / "exclude.txt"
    assert (
        main(["data", "verify", "imagefolder", "--root", str(root), "--write-exclude", str(out)])
        == 1
    )
    assert out.read_text() == "alpha/alpha_1.png\n"


def test_garbage_in_a_lock_is_stale_and_named(tmp_path, caplog):
    run = tmp_path / "run"
    for garbage in (b"\x00\xff garbage", b"", b'{"host": 3}', b"[1, 2]"):
        lock_path(run).write_bytes(garbage)
        assert held_by(run) is None
        lock = RunLock(run)
        assert lock.acquire(), garbage
        assert str(lock_path(run)) in caplog.text and "stale" in caplog.text
        assert held_by(run) is not None  # now a real holder record: ours
        lock.release()
    assert not list(tmp_path.glob(".run.lock.*"))  # the private record is gone


def test_a_root_that_is_a_file_says_so(tmp_path):
    f = tmp_path / "scenes.zip"
    f.write_bytes(b"PK")
    with pytest.raises(DataError, match="is a file, not a folder"):
        build_dataset("imagefolder", f)


def test_dangling_symlinks_are_listed_with_the_excluded(tmp_path, capsys):
    root = _folder(tmp_path / "scenes")
    (root / "beta" / "beta_9.png").symlink_to(tmp_path / "gone.png")
    ds = build_dataset("imagefolder", root)
    report = verify_dataset(ds, workers=1)
    assert report.dangling == ["beta/beta_9.png"]
    assert any("dangling" in p.issue for p in report.warnings)
    assert main(["data", "verify", "imagefolder", "--root", str(root)]) == 0
    assert "dangling links left out 1" in capsys.readouterr().out
    ds.split()
    assert ds.provenance()["dangling_links"] == ["beta/beta_9.png"]


@pytest.mark.skipif(os.name != "posix", reason="byte file names")
def test_names_that_are_not_utf8_are_named_not_a_traceback(tmp_path, capsys):
    root = _folder(tmp_path / "scenes")
    name = os.fsdecode(b"caf\xe9.png")
    write_image(root / "alpha" / name, 7)
    (root / os.fsdecode(b"d\xe9j\xe0")).mkdir()
    assert main(["data", "verify", "imagefolder", "--root", str(root), "--no-decode"]) == 1
    out = capsys.readouterr().out
    assert "caf\\xe9.png" in out and "not valid UTF-8" in out
    with pytest.raises(DataError, match="not valid UTF-8") as err:
        build_dataset("imagefolder", root).split()
    str(err.value).encode("utf-8")  # printable


def _garbled_store(tmp_path: Path) -> Path:
    path = tmp_path / "captions.sqlite"
    prov = {"captioner": "x", "encoder": "y", "pooling": "masked-mean", "dim": 64}
    store = CaptionStore.open_or_create(path, prov)
    rows = [
        (f"c/{i}.png", f"h{i}", f"caption {i} " * 20, np.full(64, i, np.float32))
        for i in range(400)
    ]
    store.commit(rows)
    store.close()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))
    return path


def test_garbage_inside_a_caption_store_names_the_store(tmp_path, capsys):
    path = _garbled_store(tmp_path)
    with CaptionStore(path, readonly=True) as store, pytest.raises(DataError, match="is damaged"):
        store.check_intact()
    with (
        pytest.raises(DataError, match=f"caption store {path} is damaged"),
        CaptionStore(path, readonly=True) as store,
    ):
        store.vectors([f"c/{i}.png" for i in range(400)])
        list(store)
    rc = main(["captions", "verify", str(path), "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "is damaged" in err
