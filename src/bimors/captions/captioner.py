"""A frozen image-to-text model that writes one caption per image.

Any transformers image-to-text model loads (BLIP-2, the paper's default,
BLIP, GIT, ...): the model is resolved by ``AutoModelForImageTextToText`` and
its inputs by ``AutoProcessor``, so nothing here is BLIP-2 specific.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import torch
from PIL import Image

logger = logging.getLogger(__name__)

DEFAULT_CAPTIONER = "Salesforce/blip2-flan-t5-xl"


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings; the paper uses beam search with 4 beams and 16 new tokens."""

    num_beams: int = 4
    max_new_tokens: int = 16
    prompt: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


class Captioner:
    """Caption PIL images in batches with a frozen transformers model.

    Args:
        model: the loaded image-to-text model (eval mode, frozen).
        processor: its processor (image preprocessing and tokenizer).
        model_id: hub id or folder it came from (recorded as provenance).
        settings: decoding settings.
    """

    def __init__(self, model, processor, model_id: str, settings: GenerationSettings) -> None:
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.settings = settings

    @classmethod
    def from_pretrained(
        cls,
        model_id: str = DEFAULT_CAPTIONER,
        settings: GenerationSettings | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Captioner:
        """Load a captioner from a hub id or a local folder."""
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(model_id)
        model = AutoModelForImageTextToText.from_pretrained(model_id, dtype=dtype)
        model.to(device).eval().requires_grad_(False)
        return cls(model, processor, model_id, settings or GenerationSettings())

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def revision(self) -> str | None:
        """The hub commit of the loaded weights, where the config records one."""
        return getattr(self.model.config, "_commit_hash", None)

    @torch.inference_mode()
    def caption(self, images: list[Image.Image]) -> list[str]:
        """One caption per image, in order; captions of a batch equal one-by-one captions."""
        if not images:
            return []
        images = [im.convert("RGB") for im in images]
        kwargs = {"images": images, "return_tensors": "pt"}
        if self.settings.prompt is not None:
            kwargs["text"] = [self.settings.prompt] * len(images)
        inputs = self.processor(**kwargs)
        dtype = next(self.model.parameters()).dtype
        inputs = {
            k: (v.to(self.device, dtype) if torch.is_floating_point(v) else v.to(self.device))
            for k, v in inputs.items()
        }
        out = self.model.generate(
            **inputs,
            num_beams=self.settings.num_beams,
            max_new_tokens=self.settings.max_new_tokens,
            do_sample=False,
        )
        if not self.model.config.is_encoder_decoder and "input_ids" in inputs:
            out = out[:, inputs["input_ids"].shape[1] :]  # decoder-only: drop the prompt
        texts = self.processor.batch_decode(out, skip_special_tokens=True)
        return [t.strip() for t in texts]
