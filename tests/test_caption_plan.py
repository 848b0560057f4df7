"""Captioning only what a grid reads: the planned set, filling the difference, errors, CLI."""

from __future__ import annotations

import shlex
import shutil

import numpy as np
import pytest

from bimors.captions.captioner import Captioner
from bimors.captions.plan import plan_batches
from bimors.captions.provenance import default_store_path
from bimors.captions.run import caption_dataset, dataset_relpaths
from bimors.captions.scope import Cell, SplitListing, plan_images
from bimors.captions.store import CaptionStore
from bimors.cli import main
from bimors.core.errors import DataError
from bimors.data.imagefolder import ImageFolder
from bimors.data.synthetic import SCENES, SyntheticScenes, generate_scenes
from bimors.demo.tiny import minilm_path
from bimors.run.config import resolve_config


@pytest.fixture()
def data(tiny_dir, scenes, tmp_path):
    """A private copy of the scenes (stores are written beside the data), a target, overrides."""
    source = tmp_path / "synthetic"
    shutil.copytree(scenes, source)
    target = generate_scenes(tmp_path / "target", per_class=10, size=32, seed=3,
                             classes=list(SCENES)[2:6])  # fmt: skip
    gen = resolve_config("bimors").captions.generation()  # the preset's caption settings
    sets = [
        "backbone.adapter=hf",
        f"backbone.model={tiny_dir / 'clip-hf'}",
        f"captions.captioner={tiny_dir / 'blip2'}",
        f"captions.encoder={minilm_path()}",
        "train.device=cpu",
        "train.epochs=1",
        "train.batch_size=4",
        "data.shots=2",
        "data.num_workers=0",
    ]
    return {
        "source": source,
        "target": target,
        "blip2": str(tiny_dir / "blip2"),
        "gen": gen,
        "sets": sets,
        "store": default_store_path(source, str(tiny_dir / "blip2"), str(minilm_path())),
        "target_store": default_store_path(target, str(tiny_dir / "blip2"), str(minilm_path())),
    }


def rows(path) -> dict[str, tuple[str, str, bytes]]:
    with CaptionStore(path, readonly=True) as store:
        return {r.relpath: (r.sha256, r.caption, r.vector.tobytes()) for r in store}


def count_captioned(monkeypatch) -> list[int]:
    """Images the captioner is run on, per call (the cost the plan saves)."""
    calls: list[int] = []
    real = Captioner.caption

    def caption(self, images):
        calls.append(len(images))
        return real(self, images)

    monkeypatch.setattr(Captioner, "caption", caption)
    return calls


def record_reads(monkeypatch) -> dict[str, set[str]]:
    """Relpaths the runs read from each store (by store file)."""
    reads: dict[str, set[str]] = {}
    real = CaptionStore.vectors

    def vectors(self, relpaths, *args, **kwargs):
        reads.setdefault(str(self.path), set()).update(relpaths)
        return real(self, relpaths, *args, **kwargs)

    monkeypatch.setattr(CaptionStore, "vectors", vectors)
    return reads


def test_plan_batches_cuts_each_group_on_its_own():
    groups = [["t3", "t1", "t2"], ["a2", "a1", "t1"], ["b1"]]
    assert plan_batches(groups, set(), set(), 2) == [["t1", "t2"], ["t3"], ["a1", "a2"], ["b1"]]
    # a group already captioned leaves the later groups' batches as they were
    assert plan_batches(groups, {"t1", "t2", "t3"}, set(), 2) == [["a1", "a2"], ["b1"]]
    assert plan_batches(["b", "a", "c"], {"b"}, set(), 2) == [["c"], ["a"]]  # one group: as before


def test_run_caption_captions_exactly_what_the_grid_reads(data, monkeypatch):
    """run --caption fills only the planned images; the runs read exactly those, and succeed."""
    from bimors.grid.runner import Roots, run_grid

    reads = record_reads(monkeypatch)
    calls = count_captioned(monkeypatch)
    roots = Roots({"synthetic": str(data["source"]), "imagefolder": str(data["target"])})
    kw = dict(overrides=data["sets"], caption=True)
    run_grid(
        "base2new", ["bimors"], ["synthetic"], [1, 2], roots, data["source"].parent / "r", **kw
    )
    src = SyntheticScenes(data["source"])
    cfg = resolve_config("bimors", overrides=data["sets"], protocol="base2new")
    cells = [Cell(s, cfg.data.shots, cfg.data.fewshot_sampler) for s in (1, 2)]
    planned = plan_images("base2new", src, [], cells)["synthetic"].relpaths()
    assert reads[str(data["store"])] == planned  # every planned image is read, nothing else
    assert set(rows(data["store"])) == planned and sum(calls) == len(planned)
    assert len(planned) < len(dataset_relpaths(src))  # unread train images were not captioned

    # cross-dataset: the source's draws and test split, only the target's test split
    reads.clear()
    run_grid("cross_dataset", ["bimors"], ["synthetic"], [3], roots, data["source"].parent / "x",
             targets=["imagefolder"], **kw)  # fmt: skip
    tgt = ImageFolder(data["target"])
    cfg = resolve_config("bimors", overrides=data["sets"], protocol="cross_dataset")
    cell = Cell(3, cfg.data.shots, cfg.data.fewshot_sampler)
    plan = plan_images("cross_dataset", src, [tgt], [cell])
    assert reads[str(data["target_store"])] == plan["imagefolder"].relpaths()
    assert plan["imagefolder"].relpaths() == {s.relpath for s in tgt.split().test}
    assert set(rows(data["target_store"])) == plan["imagefolder"].relpaths()
    assert reads[str(data["store"])] == plan["synthetic"].relpaths()
    assert set(rows(data["store"])) == planned | plan["synthetic"].relpaths()


def test_filling_plan_a_then_b_captions_the_difference_and_equals_one_fill(data, monkeypatch):
    src = SyntheticScenes(data["source"])
    a = plan_images("base2new", src, [], [Cell(1, 2, "dassl")])["synthetic"]
    b = plan_images("base2new", src, [], [Cell(s, 2, "dassl") for s in (1, 2, 3)])["synthetic"]
    assert a.relpaths() < b.relpaths()
    calls = count_captioned(monkeypatch)

    def fill(store, plan):
        caption_dataset("synthetic", data["source"], store, data["blip2"], str(minilm_path()),
                        data["gen"], batch_size=4, device="cpu", progress=False,
                        only=plan).close()  # fmt: skip

    twice, once = data["source"].parent / "ab.sqlite", data["source"].parent / "b.sqlite"
    fill(twice, a)
    assert sum(calls) == len(a)
    calls.clear()
    fill(twice, b)
    assert sum(calls) == len(b.relpaths() - a.relpaths())  # only the difference
    calls.clear()
    fill(twice, b)
    assert calls == []  # complete for B: no model is loaded or run
    fill(once, b)
    got, want = rows(twice), rows(once)
    assert sorted(got) == sorted(want) == sorted(b.relpaths())
    for key, (sha, text, vec) in want.items():  # same texts, bit-equal vectors
        assert got[key][:2] == (sha, text), key
        np.testing.assert_array_equal(
            np.frombuffer(got[key][2], np.float32), np.frombuffer(vec, np.float32), err_msg=key
        )
    with CaptionStore(twice, readonly=True) as store:  # honest about being part of the split
        n = len(dataset_relpaths(src))
        assert store.coverage() == f"{len(b)} of {n} images of the split captioned"


def test_a_run_missing_captions_names_the_plan_fill_command_which_fills_them(
    data, hf_backbone, capsys
):
    from bimors.captions.stores import CaptionStores
    from bimors.protocols.plans import plan_base2new
    from bimors.run.experiment import run_plan

    src = SyntheticScenes(data["source"])
    cfg1 = resolve_config("bimors", overrides=[*data["sets"], f"data.root={data['source']}",
                                               "train.seed=1"], protocol="base2new")  # fmt: skip
    sampler = cfg1.data.fewshot_sampler
    seed1 = plan_images("base2new", src, [], [Cell(1, 2, sampler)])["synthetic"]
    caption_dataset("synthetic", data["source"], None, data["blip2"], str(minilm_path()),
                    data["gen"], batch_size=4, device="cpu", progress=False,
                    only=seed1).close()  # fmt: skip
    cfg2 = resolve_config("bimors", overrides=[*data["sets"], f"data.root={data['source']}",
                                               "train.seed=2"], protocol="base2new")  # fmt: skip
    seed2 = plan_images("base2new", src, [], [Cell(2, 2, sampler)])["synthetic"]
    assert seed2.relpaths() - seed1.relpaths()  # seed 2 draws images seed 1 did not
    stores = CaptionStores(cfg2)
    try:
        with pytest.raises(DataError, match=r"lacks \d+ of \d+ images") as err:
            run_plan(cfg2, plan_base2new(src, 2, 2, sampler=sampler), hf_backbone, stores,
                     data["source"].parent / "run")  # fmt: skip
    finally:
        stores.close()
    command = shlex.split(str(err.value).split("fill them with: ")[1])
    assert command[:2] == ["bimors", "caption"]
    assert " ".join(command[command.index("--protocol") :]) == (
        f"--protocol base2new --source synthetic --seeds 2 --shots 2 --fewshot-sampler {sampler}"
    )
    assert main(["-q", *command[1:], "--device", "cpu", "--batch-size", "4"]) == 0
    assert set(rows(data["store"])) == seed1.relpaths() | seed2.relpaths()
    out = capsys.readouterr().out
    n = len(dataset_relpaths(src))
    assert f"of {n} images of the split captioned; the grid reads {len(seed2)}" in out
    assert main(["captions", "show", str(data["store"]), "--limit", "0"]) == 0
    both = len(seed1.relpaths() | seed2.relpaths())
    assert f"; {both} of {n} images of the split captioned" in capsys.readouterr().out
    assert main(["captions", "verify", str(data["store"]), "--root", str(data["source"])]) == 0
    assert (
        f"{both} images checked: 0 changed, 0 missing or unreadable; {both} of {n} images of "
        "the split captioned"
    ) in capsys.readouterr().out


def test_caption_cli_for_a_transfer_target_captions_its_test_split_only(data, capsys):
    args = ["-q", "caption", "--dataset", "imagefolder", "--root", str(data["target"]),
            "--captioner", data["blip2"], "--encoder", str(minilm_path()), "--device", "cpu",
            "--protocol", "cross_dataset"]  # fmt: skip
    with pytest.raises(SystemExit):  # argparse refuses an unknown protocol
        main([*args[:-1], "nope"])
    # imagefolder is neither patternnet (the default source) nor a default target
    assert main(args) == 2
    assert "neither the cross_dataset grid's training dataset" in capsys.readouterr().err
    assert main([*args, "--source", "synthetic", "--targets", "imagefolder"]) == 0
    test = {s.relpath for s in ImageFolder(data["target"]).split().test}
    assert set(rows(data["target_store"])) == test


def test_a_split_listing_plans_what_the_dataset_plans(scenes):
    """The benchmark plans from split files alone: the same draws as from the dataset."""
    ds = SyntheticScenes(scenes)
    listing = SplitListing("synthetic", ds.split())
    for protocol in ("base2new", "cross_dataset"):
        cells = [Cell(s, k, smp) for s in (1, 2) for k in (1, 4) for smp in ("hash", "dassl")]
        want = plan_images(protocol, ds, [], cells)["synthetic"]
        got = plan_images(protocol, listing, [], cells)["synthetic"]
        assert got.groups() == want.groups()


def test_run_caption_with_a_swept_shot_count_captions_every_points_draws(data, monkeypatch):
    """--caption with --sweep data.shots plans each point's draws (and nothing more)."""
    from bimors.grid.runner import Roots, run_grid
    from bimors.grid.sweep import parse_sweeps

    reads = record_reads(monkeypatch)
    roots = Roots({"synthetic": str(data["source"])})
    sets = [s for s in data["sets"] if not s.startswith("data.shots=")]
    sweep = parse_sweeps(["data.shots=1,3"])
    run_grid("base2new", ["bimors"], ["synthetic"], [1], roots, data["source"].parent / "s",
             overrides=sets, caption=True, sweep=sweep)  # fmt: skip
    src = SyntheticScenes(data["source"])
    cfg = resolve_config("bimors", overrides=sets, protocol="base2new")
    cells = [Cell(1, shots, cfg.data.fewshot_sampler) for shots in (1, 3)]
    planned = plan_images("base2new", src, [], cells)["synthetic"].relpaths()
    one_point = plan_images("base2new", src, [], cells[1:])["synthetic"].relpaths()
    assert one_point < planned  # the 1-shot point's draw adds images of its own
    assert set(rows(data["store"])) == planned == reads[str(data["store"])]
