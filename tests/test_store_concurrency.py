"""Caption stores under concurrency: readers while a job fills, two fillers, killed writers."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from bimors.captions.job import caption_images
from bimors.captions.store import CaptionStore
from bimors.core.errors import DataError
from bimors.core.locks import RunLock, lock_path
from tests.test_captions_job import relpaths_of, rows

PROV = {"dim": 8, "captioner": "cap-model", "encoder": "enc-model"}


@pytest.fixture(scope="module")
def models(tiny_dir):
    from bimors.captions.captioner import Captioner, GenerationSettings
    from bimors.captions.encoder import CaptionEncoder
    from bimors.demo.tiny import minilm_path

    settings = GenerationSettings(num_beams=1, max_new_tokens=8)
    return (
        Captioner.from_pretrained(str(tiny_dir / "blip2"), settings),
        CaptionEncoder.from_pretrained(str(minilm_path())),
    )


def _fill_slowly(path: str, batches: int) -> None:
    """A stand-in caption job: ``batches`` commits of 16 rows, vector = batch number."""
    with CaptionStore.open_or_create(path, PROV) as store:
        for b in range(batches):
            store.commit([(f"b{b:04d}/{i}", "h", f"c{b}", np.full(8, b)) for i in range(16)])
            time.sleep(0.002)


def test_readers_see_whole_batches_while_a_job_fills(tmp_path):
    path = tmp_path / "s.sqlite"
    CaptionStore.open_or_create(path, PROV).close()
    writer = mp.get_context("spawn").Process(target=_fill_slowly, args=(str(path), 300))
    writer.start()
    reads = 0
    try:
        while writer.is_alive() or reads == 0:
            with CaptionStore(path, readonly=True) as store:
                keys = sorted(store.keys())
                if not keys:
                    continue
                vecs = store.vectors(keys).numpy()
                # every batch the reader sees is whole: 16 rows, all with the batch's vector
                batches = {k.split("/")[0] for k in keys}
                assert len(keys) == 16 * len(batches)
                assert all((v == int(k[1:5])).all() for k, v in zip(keys, vecs, strict=True))
                reads += 1
    finally:
        writer.join()
    assert writer.exitcode == 0 and reads > 1
    with CaptionStore(path, readonly=True) as store:
        assert len(store) == 300 * 16


def test_a_second_filler_is_refused_and_a_dead_ones_lock_is_taken_over(models, tmp_path):
    from bimors.data.synthetic import SCENES, generate_scenes

    captioner, encoder = models
    data = generate_scenes(
        tmp_path / "scenes", per_class=2, size=32, seed=3, classes=list(SCENES)[:3]
    )
    keys = relpaths_of(data)
    path = tmp_path / "s.sqlite"
    with RunLock(path) as held:  # another job holds the store
        assert held
        with pytest.raises(DataError) as err:
            caption_images(data, keys, path, captioner, encoder, 4, False)
        msg = str(err.value)
        assert f"{socket.gethostname()}:{os.getpid()}" in msg and str(lock_path(path)) in msg
        assert "wait for that job to finish" in msg
        assert not path.exists()  # nothing written by the refused job
    # a lock left by a process that no longer exists on this host is stale: taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    lock_path(path).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)}))
    caption_images(data, keys, path, captioner, encoder, 4, False).close()
    assert sorted(rows(path)) == keys
    assert not lock_path(path).exists()  # released after the job


def test_a_run_reading_a_store_being_filled_says_so(tmp_path):
    path = tmp_path / "s.sqlite"
    with CaptionStore.open_or_create(path, PROV) as store:
        store.commit([("a.png", "h", "c", np.zeros(8))])
    with (
        RunLock(path, "caption store"),
        CaptionStore(path, readonly=True) as store,
        pytest.raises(DataError, match="is being filled by .* right now"),
    ):
        store.vectors(["a.png", "b.png"])
    with CaptionStore(path, readonly=True) as store, pytest.raises(DataError, match="fill them"):
        store.vectors(["a.png", "b.png"])  # nobody filling: the usual fill command


KILLED_MID_BATCH = """
import os, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA cache_size=1")  # spill pages into the file before the commit
db.execute("BEGIN")
db.executemany("INSERT OR REPLACE INTO captions VALUES (?, 'h', 'new', ?, 'x')",
               [(f"k{i}", os.urandom(32)) for i in range(2000)])
os._exit(9)
"""


def test_a_reader_rolls_back_the_batch_of_a_killed_job(tmp_path):
    path = tmp_path / "s.sqlite"
    with CaptionStore.open_or_create(path, PROV) as store:
        store.commit([(f"k{i}", "h", "old", np.full(8, i)) for i in range(100)])
    before = rows(path)
    subprocess.run([sys.executable, "-c", KILLED_MID_BATCH, str(path)], check=False)
    journal = path.with_name(path.name + "-journal")
    assert journal.exists()  # the killed job left its half-written batch behind
    uri = path.resolve().as_uri() + "?mode=ro"
    with pytest.raises(sqlite3.OperationalError):  # what a bare read-only reader meets
        sqlite3.connect(uri, uri=True).execute("SELECT COUNT(*) FROM captions").fetchone()
    with CaptionStore(path, readonly=True) as store:  # a training run opening the store
        assert len(store) == 100
    after = rows(path)
    assert sorted(after) == sorted(before)
    assert all(np.array_equal(after[k][2], before[k][2]) for k in before)
