"""The benchmark's workload: a random CLIP of a real size, one method, and its two paths.

Both paths train and evaluate the same method with the same weights on the
same images and caption vectors:

* the **reference recipe**: image encoder on every step, prompts encoded by a
  Python loop over images at all 77 positions, float32 (as the official code,
  minus its fp16 weights);
* the **fast path**: image features read from the feature cache (or, with
  ``cache=False``, the image encoder on every step), prompts packed (shared
  prefix once, nothing after EOS) and batched, at the chosen precision.

Images are random pixels written as PNG files, because the feature cache keys
entries by file; the reference recipe gets them already decoded (its timing
excludes decoding, which favours it).

A method fitted in closed form (``Method.closed_form``: linear probe,
Tip-Adapter, ...) has no training step: its "step" is the whole fit on
``classes x shots`` images (:meth:`Workload.fit`), the reference fit encoding
every image in float32, the fast one reading the feature cache as the
trainer does. A method with nothing to train (zero-shot CLIP) has evaluation
only.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from bimors.backbones.base import FrozenCLIP, ImageFeatures, Preprocess
from bimors.core.errors import ConfigError
from bimors.data.images import ImageDataset
from bimors.data.split import Sample
from bimors.data.transforms import build_transform
from bimors.demo.tiny import CLIP_MEAN, CLIP_STD, build_hf_clip, build_open_clip, clip_shape
from bimors.engine.data import TaskData
from bimors.engine.extract import closed_form_inputs
from bimors.engine.feature_cache import FeatureCache
from bimors.engine.features import CachedFeatures, FeatureSource
from bimors.engine.precision import autocast, resolve_precision
from bimors.methods import Method, build_method

#: PatternNet's classes in the label order of the published split file (APPLeNet
#: ``patternnet.json``); the first 19 are the base classes of base-to-new.
PATTERNNET_LABEL_ORDER = (
    "oil_well", "runway", "baseball_field", "sparse_residential", "parking_lot",
    "oil_gas_field", "wastewater_treatment_plant", "crosswalk", "swimming_pool",
    "shipping_yard", "harbor", "intersection", "forest", "nursing_home", "mobile_home_park",
    "bridge", "closed_road", "coastal_mansion", "golf_course", "runway_marking", "overpass",
    "transformer_station", "tennis_court", "railway", "basketball_court",
    "christmas_tree_farm", "parking_space", "cemetery", "river", "solar_panel", "chaparral",
    "ferry_terminal", "storage_tank", "dense_residential", "beach", "football_field",
    "freeway", "airplane",
)  # fmt: skip


@dataclasses.dataclass
class BenchOptions:
    """What to measure (defaults: the issue's setting, ViT-B/16, batch 4, 19 classes)."""

    shape: str = "ViT-B/16"  # tiny, ViT-B/32, ViT-B/16, ViT-L/14
    adapter: str = "hf"  # hf or open_clip
    method: str = "bimors"
    batch: int = 4
    eval_batch: int | None = None  # default: batch
    classes: int = 19
    repeats: int = 3
    precision: str = "fp32"  # of the fast path, as train.precision; auto = bf16 if native
    cache: bool = True  # fast path reads image features from the feature cache
    grad_checkpointing: bool = False
    memory: bool = True  # measure peak memory of each path in its own subprocess
    device: str = "cpu"
    seed: int = 0
    caption_dim: int = 768  # bert-base-uncased
    shots: int = 16  # training images per class of a closed-form fit
    #: ``method.*`` options, e.g. {"prompt_depth_text": 2} for IVLP on the 2-block tiny CLIP
    method_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        clip_shape(self.shape)
        if self.adapter not in ("hf", "open_clip"):
            raise ConfigError(f"bench adapter must be hf or open_clip, not {self.adapter!r}")
        if not 1 <= self.classes <= len(PATTERNNET_LABEL_ORDER):
            raise ConfigError(f"classes must be 1..{len(PATTERNNET_LABEL_ORDER)} (PatternNet's)")
        for name in ("batch", "repeats", "shots"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if self.eval_batch is not None and self.eval_batch < 1:
            raise ConfigError("eval_batch must be >= 1")


def class_names(n: int) -> list[str]:
    """The first ``n`` PatternNet classes as prompt names (underscores become spaces)."""
    return [c.replace("_", " ") for c in PATTERNNET_LABEL_ORDER[:n]]


def random_backbone(shape: str, adapter: str = "hf", seed: int = 0) -> FrozenCLIP:
    """A frozen CLIP of ``shape`` with random weights and the real CLIP tokenizer."""
    size = clip_shape(shape)
    if adapter == "hf":
        from bimors.backbones.hf_clip import HFCLIP
        from bimors.demo.tiny import write_clip_tokenizer

        with tempfile.TemporaryDirectory() as tmp:
            tokenizer = write_clip_tokenizer(Path(tmp))
        pre = Preprocess(size.image_size, CLIP_MEAN, CLIP_STD, "bicubic")
        return HFCLIP(build_hf_clip(size, seed), tokenizer, pre, f"random-{shape}")
    from open_clip.tokenizer import SimpleTokenizer

    from bimors.backbones.openclip import OpenCLIP

    return OpenCLIP(build_open_clip(size, seed), SimpleTokenizer(), f"random-{shape}")


class Workload:
    """The backbone, method, optimiser and data both paths share; ``workdir`` holds files."""

    def __init__(self, opts: BenchOptions, workdir: Path) -> None:
        self.opts = opts
        self.device = torch.device(opts.device)
        self.precision = resolve_precision(opts.precision, self.device)
        self.backbone = random_backbone(opts.shape, opts.adapter, opts.seed).to(self.device)
        torch.manual_seed(opts.seed)
        self.classnames = class_names(opts.classes)
        self.method: Method = build_method(
            opts.method,
            self.backbone,
            self.classnames,
            {**opts.method_options, "grad_checkpointing": opts.grad_checkpointing},
            caption_dim=opts.caption_dim,
        )
        kind = type(self.method)
        #: fitted in closed form: the timed "step" is the whole fit
        self.fits = kind.closed_form
        #: trained by SGD (zero-shot CLIP has nothing to train)
        self.trains = not self.fits and bool(self.method.trainable_parameters())
        #: the fast path really reads cached image features (not for prompted image towers)
        self.cached = opts.cache and kind.frozen_image_features
        self.optimizer = torch.optim.SGD(
            self.method.trainable_parameters() or [torch.zeros(1, requires_grad=True)],
            lr=0.009,
            momentum=0.9,
            weight_decay=5e-4,
        )
        eval_batch = opts.eval_batch or opts.batch
        n_images = max(opts.batch, eval_batch, opts.classes * opts.shots if self.fits else 0)
        images = _random_images(
            workdir / "images", n_images, self.backbone.preprocess, opts.seed, opts.classes
        )
        gen = torch.Generator().manual_seed(opts.seed)
        captions = torch.randn(n_images, opts.caption_dim, generator=gen)
        self.data = TaskData(images, self.classnames, captions)
        self.pixels = torch.stack([images[i]["pixels"] for i in range(n_images)]).to(self.device)
        self.captions = captions.to(self.device)
        self.labels = (torch.arange(n_images) % opts.classes).to(self.device)
        self.source: FeatureSource = (
            CachedFeatures(FeatureCache(workdir / "cache")) if opts.cache else FeatureSource()
        )
        self.eval_batch = eval_batch
        self._loaders: dict[tuple[int, str], object] = {}

    def prepare(self) -> float:
        """Fill the fast path's feature cache (image encoder once per image); returns seconds."""
        start = time.perf_counter()
        if self.opts.cache:
            for batch in {self.opts.batch, self.eval_batch}:
                self._loader(batch, self.precision)
            if self.fits:
                self._fit_inputs(False, self.precision)
        return time.perf_counter() - start

    def _fit_inputs(self, reference: bool, precision: str) -> dict[str, Any]:
        """``fit_features``' inputs as the trainer's closed-form path extracts them (the
        augmented views included); every image is the validation split too."""
        source = FeatureSource() if reference else self.source
        return closed_form_inputs(
            self.method, self.data, self.data, self.eval_batch, precision, source=source
        )

    def fit(self, reference: bool, precision: str | None = None) -> dict[str, Any]:
        """One whole closed-form fit on ``classes x shots`` images (validation: the same).

        The reference fit runs the image encoder on every image in float32; the
        fast one reads the feature cache (filled by :meth:`prepare`). The same
        features serve as the validation split some fits search on: the timing
        is that of a validation split as large as the training one.
        """
        if not self.fits:
            raise ConfigError(f"method {self.opts.method!r} is not fitted in closed form")
        precision = "fp32" if reference else (precision or self.precision)
        self.method.reference_recipe = reference  # the text side too (Tip-Adapter's search)
        torch.manual_seed(self.opts.seed)
        info = self.method.fit_features(**self._fit_inputs(reference, precision))
        self.method.train()
        return info

    def _loader(self, batch: int, precision: str):
        """The cached loader of the first images in batches of ``batch`` (filled on creation)."""
        key = (batch, precision)
        if key not in self._loaders:
            self._loaders[key] = self.source.eval_loader(
                self.method, self.data, batch, precision=precision
            )
        return self._loaders[key]

    # -- the two paths --------------------------------------------------------------------------
    def features(self, reference: bool, batch: int, precision: str) -> ImageFeatures:
        """Image features of the first ``batch`` images as the path gets them."""
        if reference or not self.cached:
            return self.method.image_features(self.pixels[:batch])
        loader = self._loader(batch, precision)
        return self.source.image_features(self.method, next(iter(loader)), self.device)

    def logits(self, reference: bool, precision: str, batch: int | None = None) -> Tensor:
        """Class logits (B, C) of the first ``batch`` images, without gradients."""
        batch = batch or self.opts.batch
        self.method.reference_recipe = reference
        with torch.no_grad(), autocast(self.device, precision):
            out = self.method(self.features(reference, batch, precision), self.captions[:batch])
        return out.float()

    def train_step(self, reference: bool, image_encoder: bool = False) -> float:
        """One optimiser step; ``image_encoder`` forces the fast path to run the image encoder."""
        if not self.trains:
            raise ConfigError(f"method {self.opts.method!r} has no SGD training step")
        batch = self.opts.batch
        m = self.method
        m.reference_recipe = reference
        precision = "fp32" if reference else self.precision
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, precision):
            if image_encoder and not reference:
                feats = m.image_features(self.pixels[:batch])
            else:
                feats = self.features(reference, batch, precision)
            logits = m(feats, self.captions[:batch])
            loss = m.loss(logits.float(), self.labels[:batch])
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def eval_step(self, reference: bool) -> Tensor:
        """Logits of one evaluation batch, as the evaluator computes them."""
        m = self.method
        m.eval()
        try:
            return self.logits(reference, "fp32" if reference else self.precision, self.eval_batch)
        finally:
            m.train()


def _random_images(folder: Path, n: int, pre: Preprocess, seed: int, classes: int) -> ImageDataset:
    """``n`` random RGB PNGs of the backbone's input size, as a dataset with its test transform.

    Image i is labelled ``i % classes``, as the training steps' labels are.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        arr = rng.integers(0, 256, size=(pre.image_size, pre.image_size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i:04d}.png")
        samples.append(Sample(f"{i:04d}.png", i % classes, f"image{i}"))
    return ImageDataset(folder, samples, build_transform(pre, train=False))
