"""Frozen features of training batches shared across a grid seed: bit-equal to unshared runs."""

from __future__ import annotations

import json
import random

import pytest
import torch

from bimors.cli import main
from bimors.core.errors import ConfigError
from bimors.engine.data import train_loader
from bimors.engine.shared_views import SharedViews, ViewStore
from bimors.engine.trainer import FINAL, Trainer
from bimors.methods import build_method
from bimors.run.config import RunConfig

from .test_experiments import env  # noqa: F401  (env is a fixture)
from .test_feature_cache import _data

METHODS = ["coop", "cocoop", "clip_adapter"]  # frozen features; CoCoOp has per-image random ops


def _grid(env, out, feats, methods=METHODS, *extra):  # noqa: F811
    args = ["-q", "run", "--protocol", "base2new", "--method", *methods, "--dataset", "synthetic"]
    args += ["--root", f"synthetic={env['scenes']}", "--seeds", "1", "--out", str(out)]
    args += ["--store", f"synthetic={env['store']}", *env["sets"]]
    args += ["--set", f"features.dir={feats}", *extra]
    return main(args)


def _records(out):
    rows = []
    for path in sorted(out.rglob("results.jsonl")):
        rows += [json.loads(x) for x in path.read_text().splitlines()]
    return {(r["method"], r["dataset"], r["split"]): r for r in rows}


def _states(out):
    return {
        p.parent.parent.name: torch.load(p, weights_only=False)["state"]
        for p in sorted(out.rglob(FINAL))
    }


@pytest.fixture
def encoder_steps(monkeypatch):
    """Training steps per method that ran the image encoder (their batch carried pixels)."""
    counts: dict[str, list[int]] = {}
    real = Trainer._step_loss

    def counting(self, data, batch):
        c = counts.setdefault(self.method.name, [0, 0])
        c[0 if "pixels" in batch else 1] += 1
        return real(self, data, batch)

    monkeypatch.setattr(Trainer, "_step_loss", counting)
    return counts


def _equal(a, b):
    ra, rb = _records(a), _records(b)
    assert ra.keys() == rb.keys() and len(ra) >= 2 * len(METHODS)
    for k in ra:
        assert (ra[k]["accuracy"], ra[k]["correct"]) == (rb[k]["accuracy"], rb[k]["correct"]), k
    sa, sb = _states(a), _states(b)
    assert sa.keys() == sb.keys() == set(METHODS)
    for m in sa:
        assert sa[m].keys() == sb[m].keys()
        for key in sa[m]:
            assert torch.equal(sa[m][key], sb[m][key]), (m, key)
    for m in METHODS:
        la, lb = (next(x.rglob(f"{m}/seed1/metrics.jsonl")).read_text() for x in (a, b))
        assert [json.loads(r)["loss"] for r in la.splitlines()] == [
            json.loads(r)["loss"] for r in lb.splitlines()
        ]


def test_training_views_do_not_depend_on_the_method_rng_or_workers(hf_backbone, scenes):
    """A view is a pure function of (seed, epoch, image): the precondition of sharing."""
    data = _data(scenes, hf_backbone, train=True, n=9)

    def epoch(draw: bool, workers: int = 0):
        out = []
        for batch in train_loader(data, 2, 5, 1, num_workers=workers):
            out.append((batch["index"].tolist(), batch["pixels"]))
            if draw:  # what dropout or CoCoOp's random ops do between batches
                torch.rand(1000)
                random.random()
        return out

    plain, drawn, workers = epoch(False), epoch(True), epoch(False, workers=1)
    for (i1, p1), (i2, p2), (i3, p3) in zip(plain, drawn, workers, strict=True):
        assert i1 == i2 == i3
        assert torch.equal(p1, p2) and torch.equal(p1, p3)
    other_epoch = [b["pixels"] for b in train_loader(data, 2, 5, 2)]
    assert not all(torch.equal(a, b) for (_, a), b in zip(plain, other_epoch, strict=True))


def test_shared_grid_equals_unshared_and_encodes_each_view_once(
    env,  # noqa: F811
    tmp_path,
    encoder_steps,
):
    assert (
        _grid(
            env, tmp_path / "plain", tmp_path / "f1", METHODS, "--set", "features.share_views=false"
        )
        == 0
    )
    plain_steps = dict(encoder_steps)
    encoder_steps.clear()
    assert _grid(env, tmp_path / "shared", tmp_path / "f2") == 0
    _equal(tmp_path / "plain", tmp_path / "shared")
    # without sharing every step ran the encoder; with it only the first method's
    assert all(c[1] == 0 for c in plain_steps.values())
    first, *later = METHODS
    assert encoder_steps[first] == plain_steps[first]
    for m in later:
        assert encoder_steps[m] == [0, plain_steps[m][0]], m
    recs = _records(tmp_path / "shared")
    assert {r["train_image_features"] for r in recs.values() if r["method"] == first} == {"encoder"}
    assert {r["train_image_features"] for r in recs.values() if r["method"] != first} == {"shared"}
    assert {r["train_image_features"] for r in _records(tmp_path / "plain").values()} == {"encoder"}
    stores = list((tmp_path / "f2" / "views").iterdir())
    assert len(stores) == 1  # one key: same backbone, samples, seed, batch size
    files = list(stores[0].rglob("*.safetensors"))
    assert {f.name.split(".")[1] for f in files} == {"pooled", "norm"}  # no token states
    # a method with another batch size gets another store and runs the encoder itself
    encoder_steps.clear()
    out = tmp_path / "bs2"
    assert _grid(env, out, tmp_path / "f2", ["coop"], "--set", "train.batch_size=2") == 0
    assert encoder_steps["coop"][1] == 0 and encoder_steps["coop"][0] > 0
    assert len(list((tmp_path / "f2" / "views").iterdir())) == 2


def test_a_killed_grid_resumes_to_the_same_results(env, tmp_path, monkeypatch, encoder_steps):  # noqa: F811
    assert (
        _grid(
            env, tmp_path / "plain", tmp_path / "f1", METHODS, "--set", "features.share_views=false"
        )
        == 0
    )
    real = Trainer._step_loss
    seen = {"n": 0}

    def die_in_second_method(self, data, batch):
        if self.method.name == METHODS[1]:
            seen["n"] += 1
            if seen["n"] == 4:  # inside epoch 2 (3 batches of 4 per epoch)
                raise KeyboardInterrupt
        return real(self, data, batch)

    monkeypatch.setattr(Trainer, "_step_loss", die_in_second_method)
    assert _grid(env, tmp_path / "shared", tmp_path / "f2") != 0  # the CLI reports the kill
    assert seen["n"] == 4
    monkeypatch.setattr(Trainer, "_step_loss", real)
    assert _grid(env, tmp_path / "shared", tmp_path / "f2") == 0
    _equal(tmp_path / "plain", tmp_path / "shared")


def test_killed_writes_leave_no_partial_file_and_are_computed_again(tmp_path, monkeypatch):
    import safetensors.torch

    store = ViewStore(tmp_path / "s", {"k": 1})
    real = safetensors.torch.save_file

    def dies_halfway(tensors, path, *a, **k):
        real(tensors, path, *a, **k)
        with open(path, "r+b") as fh:
            fh.truncate(10)
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        store.save(0, 0, {"pooled": torch.ones(2, 3)})
    assert not store.has(0, 0, ["pooled"])
    assert not list((tmp_path / "s").rglob("*.safetensors"))
    monkeypatch.setattr(safetensors.torch, "save_file", real)
    store.save(0, 0, {"pooled": torch.ones(2, 3)})
    assert store.has(0, 0, ["pooled"]) and torch.equal(store.load(0, 0, "pooled"), torch.ones(2, 3))


def test_stores_are_keyed_by_what_determines_the_bits(hf_backbone, scenes, tmp_path):
    data = _data(scenes, hf_backbone, train=True, n=9)
    method = build_method("coop", hf_backbone, data.classnames)
    source = SharedViews(root=tmp_path)
    base = source.store(method, data, 4, 1, "fp32", 0, 1)
    others = [
        source.store(method, data, 2, 1, "fp32", 0, 1),  # batch size
        source.store(method, data, 4, 2, "fp32", 0, 1),  # seed
        source.store(method, data, 4, 1, "bf16", 0, 1),  # precision
        source.store(method, data, 4, 1, "fp32", 1, 2),  # rank and world size
        source.store(method, _data(scenes, hf_backbone, train=True, n=8), 4, 1, "fp32", 0, 1),
    ]
    assert len({s.folder for s in [base, *others]}) == 6
    assert SharedViews(root=tmp_path).store(method, data, 4, 1, "fp32", 0, 1).folder == base.folder


def test_share_fields_are_checked():
    assert RunConfig.from_dict({}).features.share_views is True
    with pytest.raises(ConfigError, match="share_fields"):
        RunConfig.from_dict({"features": {"share_fields": ["pixels"]}})


@pytest.mark.parametrize("workers", [0, 1])
def test_shared_batches_are_the_plain_loaders_batches_on_every_rank(
    hf_backbone, scenes, tmp_path, workers
):
    """Same images, views and order per (seed, epoch, rank) as train_loader, then served."""
    from .test_feature_cache import _Rank

    data = _data(scenes, hf_backbone, train=True, n=9)
    method = build_method("coop", hf_backbone, data.classnames)
    source = SharedViews(root=tmp_path)
    cpu = torch.device("cpu")
    for rank in (0, 1):
        dist = _Rank(rank, 2)
        want = list(train_loader(data, 2, 3, 1, rank, 2))
        got = list(source.train_loader(method, data, 2, 3, 1, dist, num_workers=workers))
        assert [b["index"].tolist() for b in got] == [b["index"].tolist() for b in want]
        for g, w in zip(got, want, strict=True):
            assert torch.equal(g["pixels"], w["pixels"]) and torch.equal(g["label"], w["label"])
            source.image_features(method, g, cpu)  # the encoder runs and stores the batch
        served = list(source.train_loader(method, data, 2, 3, 1, dist, num_workers=workers))
        assert all("pixels" not in b for b in served)
        for s, w in zip(served, want, strict=True):
            fresh = method.image_features(w["pixels"])
            assert torch.equal(source.image_features(method, s, cpu).pooled, fresh.pooled)
            assert s["index"].tolist() == w["index"].tolist()
    assert source.describe(method, True) == "encoder+shared"


def test_token_states_and_layer_means_share_exactly_when_listed(env, tmp_path, encoder_steps):  # noqa: F811
    """BiMoRS (tokens) and APPLeNet (layer_means) read what CoOp's run stored, bit-equal."""
    methods, fields = ["bimors", "applenet"], "features.share_fields=[pooled,tokens,layer_means]"
    assert (
        _grid(env, tmp_path / "p", tmp_path / "f1", methods, "--set", "features.share_views=false")
        == 0
    )
    assert _grid(env, tmp_path / "s", tmp_path / "f2", ["coop"], "--set", fields) == 0
    encoder_steps.clear()
    assert _grid(env, tmp_path / "s", tmp_path / "f2", methods, "--set", fields) == 0
    assert all(c[0] == 0 and c[1] > 0 for c in encoder_steps.values())
    plain, shared = _records(tmp_path / "p"), _records(tmp_path / "s")
    for k, r in plain.items():
        assert (r["accuracy"], r["correct"]) == (shared[k]["accuracy"], shared[k]["correct"])
        assert shared[k]["train_image_features"] == "shared"
    sa, sb = _states(tmp_path / "p"), _states(tmp_path / "s")
    for m in methods:
        assert all(torch.equal(sa[m][key], sb[m][key]) for key in sa[m]), m


def test_loaded_feature_files_are_aligned_like_the_encoders_output(tmp_path):
    """safetensors views sit at the file's data offset; BLAS may round unaligned input
    differently, so a loaded view must be copied into aligned memory to stay bit-equal."""
    from safetensors.torch import save_file

    from bimors.core import checksum
    from bimors.engine.feature_cache import load_value

    value = torch.randn(4, 8)
    meta = {checksum.METADATA_KEY: checksum.of_tensor(value)}
    save_file({"value": value}, str(tmp_path / "x.safetensors"), metadata=meta)
    assert load_value(tmp_path / "x.safetensors", "view", tmp_path).data_ptr() % 64 == 0
