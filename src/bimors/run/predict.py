"""Predict classes of new images with a trained run, from Python.

Example::

    from bimors.run.predict import Predictor

    predictor = Predictor.from_run("runs/base2new/patternnet/bimors/seed1")
    # or an exported run: Predictor.from_pretrained("hf:USER/REPO") or an export folder
    for path, top in zip(paths, predictor.predict(paths, topk=3)):
        print(path, top)          # [("airplane", 0.91), ("runway", 0.05), ...]

Methods that use captions get them on the fly from the run's captioner and
caption encoder (or the ones given), or from a caption store by path.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image

from bimors.captions.provenance import expected_provenance
from bimors.captions.store import CaptionStore
from bimors.core.errors import DataError
from bimors.data.images import open_rgb
from bimors.data.transforms import build_transform
from bimors.engine.precision import autocast
from bimors.run.trained import TrainedRun, load_trained

logger = logging.getLogger(__name__)

ImageLike = str | Path | Image.Image


class Predictor:
    """Top-k classes with probabilities for images, using a trained run."""

    def __init__(
        self,
        trained: TrainedRun,
        classnames: list[str] | None = None,
        captioner: str | None = None,
        encoder: str | None = None,
        store: str | Path | None = None,
        store_root: str | Path | None = None,
        batch_size: int = 32,
    ) -> None:
        self.trained = trained
        self.method = trained.method
        #: The names predictions are reported with (the run's, or those given).
        self.labels = list(classnames) if classnames else list(trained.classnames)
        if classnames:
            self.method.set_classnames(self.hand_prompt_names(list(classnames)))
        self.transform = build_transform(trained.backbone.preprocess, train=False)
        self.batch_size = batch_size
        self._captioner_id = captioner or trained.cfg.captions.captioner
        self._encoder_id = encoder or trained.cfg.captions.encoder
        self._store = CaptionStore(store, readonly=True) if store else None
        self._store_root = Path(store_root) if store_root else None
        self._caption_models = None

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "auto", **kwargs) -> Predictor:
        """Load ``run_dir`` (a finished run) for prediction; see :class:`Predictor` for options."""
        allow = kwargs.pop("allow_other_version", False)
        return cls(load_trained(run_dir, device, allow), **kwargs)

    @classmethod
    def from_pretrained(
        cls, source: str | Path, device: str = "auto", revision: str | None = None, **kwargs
    ) -> Predictor:
        """Load a run exported by ``bimors export`` (a folder) or pushed to the hub (``hf:ID``).

        The backbone and, for methods that read captions, the captioner and
        caption encoder come from the export's config; see :mod:`bimors.run.export`.
        """
        from bimors.run.export import load_exported

        return cls(load_exported(source, device, revision), **kwargs)

    def hand_prompt_names(self, classnames: list[str]) -> list[str]:
        """Class names given by hand, in the prompt form the run used for its dataset.

        The run's ``data.classnames`` style and its dataset's readable map apply,
        exactly as when the run was trained, so ``storage_tank`` is prompted as
        ``storage tank`` (never with the underscore).
        """
        from bimors.data import DATASETS
        from bimors.data.base import prompt_names

        style = self.trained.cfg.data.classnames
        dataset = self.trained.meta.get("dataset")
        table = {}
        if dataset in DATASETS.names():
            table = getattr(DATASETS.get(dataset), "readable_names", {}) or {}
        return prompt_names(classnames, style, table)

    @property
    def classnames(self) -> list[str]:
        """The names predictions are reported with."""
        return list(self.labels)

    @property
    def prompt_names(self) -> list[str]:
        """The names CLIP's prompts were built from (recorded beside every prediction)."""
        return list(self.method.classnames)

    def _captions(self, images: list[Image.Image], paths: list[Path | None]) -> torch.Tensor:
        if self._store is not None:
            if any(p is None for p in paths) or self._store_root is None:
                raise DataError(
                    "reading captions from a store needs image paths and the store's dataset root"
                )
            keys = [p.resolve().relative_to(self._store_root.resolve()).as_posix() for p in paths]
            c = self.trained.cfg.captions  # vectors of other models would mislead the method
            expect = expected_provenance(c.captioner, c.encoder, generation=c.expected_generation())
            return self._store.vectors(keys, expect=expect)
        if self._caption_models is None:
            from bimors.captions.captioner import Captioner
            from bimors.captions.encoder import CaptionEncoder

            c = self.trained.cfg.captions
            device = self.trained.backbone.device
            settings = c.generation()
            self._caption_models = (
                Captioner.from_pretrained(self._captioner_id, settings, device),
                CaptionEncoder.from_pretrained(self._encoder_id, device),
            )
        captioner, encoder = self._caption_models
        return encoder.encode(captioner.caption(images))

    @torch.no_grad()
    def predict(self, images: list[ImageLike], topk: int = 5) -> list[list[tuple[str, float]]]:
        """For each image, the ``topk`` (class name, probability) pairs, most likely first."""
        out: list[list[tuple[str, float]]] = []
        device = self.trained.backbone.device
        k = min(topk, len(self.classnames))
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            paths = [Path(x) if not isinstance(x, Image.Image) else None for x in chunk]
            pil = [
                x.convert("RGB") if isinstance(x, Image.Image) else open_rgb(Path(x)) for x in chunk
            ]
            pixels = torch.stack([self.transform(im) for im in pil]).to(device)
            caps = self._captions(pil, paths).to(device) if self.method.uses_captions else None
            with autocast(device, self.trained.cfg.train.precision):
                logits = self.method(self.method.image_features(pixels), caps)
            probs = logits.float().softmax(dim=-1).cpu()
            top = probs.topk(k, dim=-1)
            names = self.classnames
            out += [
                [(names[int(i)], float(p)) for p, i in zip(row_p, row_i, strict=True)]
                for row_p, row_i in zip(top.values, top.indices, strict=True)
            ]
        return out
