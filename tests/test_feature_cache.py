"""The frozen-feature cache: same logits as the image encoder, keyed so changes invalidate it."""

from __future__ import annotations

import copy
import os

import pytest
import torch

from bimors.core.errors import ConfigError, DataError
from bimors.data.images import ImageDataset
from bimors.data.synthetic import SyntheticScenes
from bimors.data.transforms import build_transform
from bimors.engine.data import TaskData, train_loader
from bimors.engine.evaluator import evaluate
from bimors.engine.feature_cache import FeatureCache, FeatureSpace, space_description
from bimors.engine.features import CachedFeatures, FeatureSource, ViewSampler, view_pixels
from bimors.engine.trainer import Trainer
from bimors.methods import METHODS, build_method
from bimors.methods.cocoop import CoCoOp
from bimors.run.config import RunConfig, TrainConfig

TOL = dict(atol=1e-5, rtol=1e-5)


def _data(scenes, backbone, train: bool, n: int = 10) -> TaskData:
    ds = SyntheticScenes(scenes)
    split = ds.split()
    samples = split.train[::3][:n]  # spread over the classes
    images = ImageDataset(ds.image_root, samples, build_transform(backbone.preprocess, train))
    caps = torch.randn(len(samples), 24, generator=torch.Generator().manual_seed(0))
    return TaskData(images, ds.prompt_names(split.classnames), caps)


def _logits(method, source, batch, data):
    feats = source.image_features(method, batch, torch.device("cpu"))
    return method(feats, data.captions[batch["index"]])


def _no_image_encoder(monkeypatch, backbone):
    def refuse(pixels):
        raise AssertionError("the image encoder ran although its features are cached")

    monkeypatch.setattr(backbone, "encode_image", refuse)


#: Every method whose image features may be cached, with tiny-backbone parameters.
CACHEABLE = [n for n in METHODS.names() if METHODS.get(n).frozen_image_features]
PARAMS = {"maple": {"prompt_depth": 2}, "tcp": {"layer": 1}}


@pytest.mark.parametrize("name", CACHEABLE)
def test_cached_eval_features_give_the_same_logits_and_are_reused(
    backbone, scenes, tmp_path, monkeypatch, name
):
    """Each method's declared ``image_fields`` are all its forward needs from the cache."""
    data = _data(scenes, backbone, train=False)
    method = build_method(name, backbone, data.classnames, PARAMS.get(name), caption_dim=24)
    if method.closed_form and name.startswith("tip_adapter"):  # a cache built from features
        from bimors.backbones.base import ImageFeatures

        gen = torch.Generator().manual_seed(0)
        n, e = 2 * len(data.classnames), backbone.embed_dim
        pooled = torch.nn.functional.normalize(torch.randn(n, e, generator=gen), dim=-1)
        feats = ImageFeatures(pooled, pooled.new_empty(n, 0, 0), torch.ones(n, 1))
        labels = torch.arange(n) % len(data.classnames)
        method.fit_features(feats, labels, feats, labels)
    elif method.closed_form:  # random fitted weights: logits depend on every field it reads
        with torch.no_grad():
            for _, p in method.own_parameters():  # never the shared frozen CLIP's
                p.copy_(torch.randn_like(p).abs() + 0.5)
    cached = CachedFeatures(FeatureCache(tmp_path))
    plain = FeatureSource()
    with torch.no_grad():
        pairs = zip(
            cached.eval_loader(method, data, 4), plain.eval_loader(method, data, 4), strict=True
        )
        for a, b in pairs:
            assert "pixels" not in a and "pixels" in b
            assert torch.equal(a["index"], b["index"])
            torch.testing.assert_close(
                _logits(method, cached, a, data), _logits(method, plain, b, data), **TOL
            )
    tokens_files = list(tmp_path.rglob("*.tokens.safetensors"))
    # methods that read no token states store none
    assert bool(tokens_files) == ("tokens" in type(method).image_fields)
    # a second method (another seed, another run) reads the cache: no image encoder at all
    _no_image_encoder(monkeypatch, backbone)
    again = build_method(name, backbone, data.classnames, PARAMS.get(name), caption_dim=24)
    again.load_state_dict(method.state_dict())
    before = evaluate(method, data, 4, features=cached)
    assert evaluate(again, data, 4, features=CachedFeatures(FeatureCache(tmp_path))).total == 10
    assert before.total == 10


def test_evaluate_with_cache_equals_evaluate_without(backbone, scenes, tmp_path):
    data = _data(scenes, backbone, train=False)
    method = build_method("bimors", backbone, data.classnames, caption_dim=24)
    cached = evaluate(method, data, 3, features=CachedFeatures(FeatureCache(tmp_path)))
    plain = evaluate(method, data, 3)
    assert (cached.correct, cached.total) == (plain.correct, plain.total)
    torch.testing.assert_close(
        torch.tensor(cached.per_class), torch.tensor(plain.per_class), equal_nan=True
    )


def test_space_key_changes_with_weights_transform_and_precision(hf_backbone, scenes, tmp_path):
    data = _data(scenes, hf_backbone, train=False)
    tf = data.images.transform
    cpu = torch.device("cpu")
    key = space_description(hf_backbone, tf, "fp32", cpu)
    assert key == space_description(hf_backbone, tf, "fp32", cpu)
    assert key != space_description(hf_backbone, tf, "bf16", cpu)
    train_tf = build_transform(hf_backbone.preprocess, train=True)
    assert key != space_description(hf_backbone, train_tf, "fp32", cpu)
    changed = copy.deepcopy(hf_backbone)
    with torch.no_grad():
        changed.model.vision_model.post_layernorm.weight.add_(1e-3)
    assert key["weights_sha256"] != space_description(changed, tf, "fp32", cpu)["weights_sha256"]
    cache = FeatureCache(tmp_path)
    assert cache.space(key).folder != cache.space({**key, "precision": "bf16"}).folder
    assert not any(tmp_path.iterdir())  # nothing is written before features are


def test_entry_changes_when_the_image_file_changes(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"one")
    first = FeatureSpace.entry_name(image, 0)
    assert first != FeatureSpace.entry_name(image, 1)
    image.write_bytes(b"other content")
    os.utime(image, ns=(1, 1))
    assert FeatureSpace.entry_name(image, 0) != first
    with pytest.raises(DataError, match="does not exist"):
        FeatureSpace.entry_name(tmp_path / "missing.png", 0)


def test_training_views_are_seeded_images_and_rotate_over_epochs(backbone, scenes, tmp_path):
    data = _data(scenes, backbone, train=True, n=6)
    method = build_method("bimors", backbone, data.classnames, caption_dim=24)
    source = CachedFeatures(FeatureCache(tmp_path), train_views=3)
    for epoch in (0, 1):  # same shuffling as the plain loader of the same seed and epoch
        loader = source.train_loader(method, data, 2, 1, epoch)
        plain = train_loader(data, 2, 1, epoch)
        assert [b["index"].tolist() for b in loader] == [b["index"].tolist() for b in plain]
    # a cached view equals the image encoder on that seeded augmentation of the image
    space = source.cache.space(
        space_description(backbone, data.images.transform, "fp32", torch.device("cpu"))
    )
    first = view_pixels(data.images, 0, 0)
    assert not torch.equal(first, view_pixels(data.images, 0, 1))  # views differ
    assert torch.equal(first, view_pixels(data.images, 0, 0))  # and are reproducible
    with torch.no_grad():
        want = method.image_features(view_pixels(data.images, 2, 1).unsqueeze(0))
    name = space.entry_name(data.images.root / data.images.samples[2].relpath, 1)
    torch.testing.assert_close(space.load(name, "pooled"), want.pooled[0], **TOL)
    torch.testing.assert_close(space.load(name, "tokens"), want.tokens[0], **TOL)


def test_view_sampler_shows_every_view_once_per_views_epochs():
    seen = {i: [] for i in range(7)}
    for epoch in range(3):
        for i, v in ViewSampler(range(7), 3, seed=1, epoch=epoch):
            seen[i].append(v)
    assert all(sorted(v) == [0, 1, 2] for v in seen.values())
    other = ViewSampler(range(7), 3, seed=2, epoch=0)
    assert list(other) != [(i, seen[i][0]) for i in range(7)]  # seeds choose other views
    # an epoch's views depend on (seed, epoch) only: a resumed epoch 1 shows them again
    assert [v for _, v in ViewSampler(range(7), 3, 1, 1)] == [seen[i][1] for i in range(7)]


def test_training_is_uncached_by_default_and_opt_out_methods_never_cached(
    backbone, scenes, tmp_path
):
    data = _data(scenes, backbone, train=True, n=4)
    method = build_method("cocoop", backbone, data.classnames)
    batch = next(iter(CachedFeatures(FeatureCache(tmp_path)).train_loader(method, data, 2, 1, 0)))
    assert "pixels" in batch  # fresh augmentations, image encoder every step

    class DeepPrompted(CoCoOp):
        frozen_image_features = False

    deep = DeepPrompted(backbone, data.classnames)
    eval_data = _data(scenes, backbone, train=False, n=4)
    source = CachedFeatures(FeatureCache(tmp_path / "deep"), train_views=2)
    assert "pixels" in next(iter(source.eval_loader(deep, eval_data, 2)))
    assert "pixels" in next(iter(source.train_loader(deep, data, 2, 1, 0)))
    assert not (tmp_path / "deep").exists()


def test_trainer_on_cached_views_reuses_them_across_methods(
    backbone, scenes, tmp_path, monkeypatch
):
    data = _data(scenes, backbone, train=True, n=8)
    cfg = TrainConfig(epochs=2, batch_size=4, warmup_epochs=0)
    source = CachedFeatures(FeatureCache(tmp_path), train_views=2)
    result = Trainer(
        build_method("bimors", backbone, data.classnames, caption_dim=24), cfg, features=source
    ).fit(data)
    assert result.steps == 4
    _no_image_encoder(monkeypatch, backbone)
    cfg2 = TrainConfig(epochs=2, batch_size=4, warmup_epochs=0, seed=2)
    again = CachedFeatures(FeatureCache(tmp_path), train_views=2)
    method = build_method("bimors", backbone, data.classnames, caption_dim=24)
    assert Trainer(method, cfg2, features=again).fit(data).steps == 4


def test_damaged_entry_is_named_with_the_fix(backbone, scenes, tmp_path):
    data = _data(scenes, backbone, train=False, n=2)
    method = build_method("cocoop", backbone, data.classnames)
    source = CachedFeatures(FeatureCache(tmp_path))
    source.eval_loader(method, data, 2)
    victim = next(tmp_path.rglob("*.pooled.safetensors"))
    victim.write_bytes(b"not a tensor file")
    with pytest.raises(DataError, match=f"{victim.name}.*delete it"):
        next(iter(source.eval_loader(method, data, 2)))


def test_features_config_is_validated():
    assert RunConfig.from_dict({}).features.cache is True
    assert RunConfig.from_dict({}).features.train_views == 0
    with pytest.raises(ConfigError, match="train_views"):
        RunConfig.from_dict({"features": {"train_views": -1}})


class _Rank:
    """The parts of :class:`bimors.engine.dist.Dist` a feature source uses, for one rank."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size

    def shard(self, n: int) -> list[int]:
        return list(range(self.rank, n, self.world_size))

    def sum(self, tensor):
        return tensor

    def barrier(self) -> None:
        pass


def test_cached_sources_shard_like_the_plain_loaders(hf_backbone, scenes, tmp_path):
    test = _data(scenes, hf_backbone, train=False, n=9)
    method = build_method("bimors", hf_backbone, test.classnames, caption_dim=24)
    single = evaluate(method, test, 2, features=CachedFeatures(FeatureCache(tmp_path / "e")))
    parts = [
        evaluate(method, test, 2, dist=_Rank(r, 2), features=CachedFeatures(FeatureCache(tmp_path)))
        for r in (0, 1)
    ]
    assert sum(p.total for p in parts) == single.total == 9
    assert sum(p.correct for p in parts) == single.correct
    assert {p.total for p in parts} == {4, 5}  # each rank evaluated only its shard
    # training views: each rank gets the batches train_loader gives that rank
    train = _data(scenes, hf_backbone, train=True, n=9)
    source = CachedFeatures(FeatureCache(tmp_path), train_views=2)
    seen = []
    for rank in (0, 1):
        for epoch in (0, 1):
            got = [
                b["index"].tolist()
                for b in source.train_loader(method, train, 2, 3, epoch, _Rank(rank, 2))
            ]
            want = [b["index"].tolist() for b in train_loader(train, 2, 3, epoch, rank, 2)]
            assert got == want
            seen += [i for b in got for i in b] if epoch == 0 else []
    assert len(set(seen)) >= 8  # the ranks split the images (drop_last may leave one out)


def test_resume_on_cached_views_equals_uninterrupted(scenes, hf_backbone, tmp_path, monkeypatch):
    from bimors.engine.checkpoint import read_checkpoint
    from bimors.engine.trainer import FINAL

    from .test_engine import _tasks

    train, _, _ = _tasks(scenes, hf_backbone, shots=2, captions=True)
    cfg = TrainConfig(epochs=3, batch_size=2, lr=0.02, warmup_epochs=1, deterministic=True)

    def fit(out, seed, die_after=None):
        torch.manual_seed(seed)
        method = build_method("bimors", hf_backbone, train.classnames, caption_dim=8)
        source = CachedFeatures(FeatureCache(tmp_path / "cache"), train_views=2)
        trainer = Trainer(method, cfg, out, {"train": cfg.__dict__}, features=source)
        if die_after is not None:
            real = trainer._write_epoch

            def write_then_die(row, history):
                real(row, history)
                if row["epoch"] == die_after:
                    raise KeyboardInterrupt

            monkeypatch.setattr(trainer, "_write_epoch", write_then_die)
        return trainer.fit(train)

    fit(tmp_path / "a", 0)
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "b", 0, die_after=2)
    assert fit(tmp_path / "b", 99).resumed_from == 2
    a, b = (read_checkpoint(tmp_path / x / FINAL)["state"] for x in "ab")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (
        tmp_path / "b" / "metrics.jsonl"
    ).read_text()


def test_feature_cache_defaults_to_the_user_cache(monkeypatch, tmp_path):
    from bimors.engine.feature_cache import default_cache_dir

    monkeypatch.setenv("BIMORS_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x"
    monkeypatch.delenv("BIMORS_CACHE_DIR")
    monkeypatch.setenv("BIMORS_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "features"
    monkeypatch.delenv("BIMORS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "bimors" / "features"
