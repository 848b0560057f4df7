"""Shared fixtures: tiny models written once per session through the real save paths."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption(
        "--run-weights", action="store_true", help="run tests that download real pretrained weights"
    )


def pytest_collection_modifyitems(config, items):
    skip_w = pytest.mark.skip(reason="needs real pretrained weights (use --run-weights online)")
    skip_g = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "weights" in item.keywords and not config.getoption("--run-weights"):
            item.add_marker(skip_w)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_g)


@pytest.fixture(scope="session", autouse=True)
def isolated_feature_cache(tmp_path_factory):
    """Runs cache image features in a session folder, never in the user's home.

    Session-scoped and autouse so it is set before any session fixture trains a
    run (subprocesses inherit the variable). Sharing one folder between tests is
    as safe as sharing the user's cache between runs: entries are keyed by
    weights, transform and image file.
    """
    root = tmp_path_factory.mktemp("feature-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BIMORS_CACHE_DIR", str(root))
        yield root


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from bimors.demo.tiny import write_all

    out = tmp_path_factory.mktemp("tiny")
    write_all(out)
    return out


@pytest.fixture(scope="session")
def hf_backbone(tiny_dir):
    from bimors.backbones import load_backbone

    return load_backbone("hf", str(tiny_dir / "clip-hf"))


@pytest.fixture(scope="session")
def oc_backbone(tiny_dir):
    from bimors.backbones import load_backbone

    return load_backbone("open_clip", str(tiny_dir / "clip-openclip"))


@pytest.fixture(params=["hf", "open_clip"])
def backbone(request, hf_backbone, oc_backbone):
    return hf_backbone if request.param == "hf" else oc_backbone


@pytest.fixture(scope="session")
def scenes(tmp_path_factory):
    """A small synthetic dataset (6 classes x 12 images, 32 px)."""
    from bimors.data.synthetic import SCENES, generate_scenes

    root = tmp_path_factory.mktemp("scenes") / "synthetic"
    return generate_scenes(root, per_class=12, size=32, seed=0, classes=list(SCENES)[:6])


CLASSNAMES = ["river", "dense residential", "baseball diamond", "runway", "parking lot"]
