"""A frozen image-to-text model that writes one caption per image.

Any transformers image-to-text model loads (BLIP-2, the paper's default,
BLIP, GIT, ...): the model is resolved by ``AutoModelForImageTextToText`` and
its inputs by ``AutoProcessor``, so nothing here is BLIP-2 specific.

Decoding follows the paper and the official ``gen_caption.py``: beam search
with 4 beams and early stopping, greedy in every other respect. The official
script passes ``max_length=16``, which for BLIP-2 FLAN-T5 counts the decoder
start token (15 new tokens at most). By default the budget here is
``max_new_tokens=16``, the same for encoder-decoder and decoder-only
captioners; ``max_length`` passes the official budget through as it is. The
official script also resizes each image to 224 px and stretches its contrast
before the processor: ``preprocess="official"`` does the same (see
:mod:`bimors.captions.preprocess`); by default the decoded image goes to the
processor unchanged, so the captioner sees what its own preprocessing expects.
The BiMoRS preset selects the official settings.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import torch
from PIL import Image

from bimors.backbones.loading import dtype_kwargs, load_failure
from bimors.captions.preprocess import PREPROCESS, preprocessor
from bimors.core.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_CAPTIONER = "Salesforce/blip2-flan-t5-xl"

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str, device: str | torch.device) -> torch.dtype:
    """``auto`` is bfloat16 on a CUDA device that supports it (half the memory, same
    range as float32, unlike float16 under which FLAN-T5 overflows), float32 elsewhere."""
    if name == "auto":
        dev = torch.device(device)
        if dev.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return DTYPES[name]
    except KeyError:
        raise ConfigError(f"unknown dtype {name!r}; valid: auto, {', '.join(DTYPES)}") from None


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings (paper: beam search, 4 beams, at most 16 new tokens).

    ``prompt`` is an optional text prefix for captioners that take one (e.g.
    "a satellite image of"); the paper uses none. The budget is
    ``max_new_tokens``, or ``max_length`` as transformers counts it (set
    ``max_new_tokens=None``): the official script's ``max_length=16``.
    ``preprocess`` names what the image goes through before the processor.
    All of it is recorded in a caption store's provenance.
    """

    num_beams: int = 4
    max_new_tokens: int | None = 16
    early_stopping: bool = True
    prompt: str | None = None
    max_length: int | None = None
    preprocess: str = "none"

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ConfigError(f"num_beams must be >= 1, got {self.num_beams}")
        if (self.max_new_tokens is None) == (self.max_length is None):
            raise ConfigError(
                "give exactly one token budget: max_new_tokens or max_length (got "
                f"max_new_tokens={self.max_new_tokens}, max_length={self.max_length})"
            )
        budget = self.max_new_tokens if self.max_length is None else self.max_length
        if budget < 1:
            raise ConfigError(f"the token budget must be >= 1, got {budget}")
        if self.preprocess not in PREPROCESS:
            preprocessor(self.preprocess)  # raises the error naming the choices

    def budget(self) -> dict[str, int]:
        """The token-budget argument of ``generate``."""
        if self.max_length is not None:
            return {"max_length": self.max_length}
        assert self.max_new_tokens is not None
        return {"max_new_tokens": self.max_new_tokens}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The official ``gen_caption.py``'s settings: what the BiMoRS preset asks for and what
#: ``bimors caption`` makes unless told otherwise.
OFFICIAL_SETTINGS = GenerationSettings(max_new_tokens=None, max_length=16, preprocess="official")


class Captioner:
    """Caption PIL images in batches with a frozen transformers model.

    Args:
        model: the loaded image-to-text model (eval mode, frozen).
        processor: its processor (image preprocessing and tokenizer).
        model_id: hub id or folder it came from (recorded as provenance).
        settings: decoding settings.
        revision: the hub revision asked for, if any.
    """

    def __init__(
        self,
        model,
        processor,
        model_id: str,
        settings: GenerationSettings,
        revision: str | None = None,
    ) -> None:
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.settings = settings
        self._revision = revision

    @classmethod
    def from_pretrained(
        cls,
        model_id: str = DEFAULT_CAPTIONER,
        settings: GenerationSettings | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        revision: str | None = None,
    ) -> Captioner:
        """Load a captioner from a hub id or a local folder."""
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(model_id, revision=revision)
            model = AutoModelForImageTextToText.from_pretrained(
                model_id, revision=revision, **dtype_kwargs(dtype)
            )
        except (OSError, ValueError, ImportError, AttributeError, TypeError) as err:
            raise load_failure("captioner", model_id, err) from err
        model.to(device).eval().requires_grad_(False)
        return cls(model, processor, model_id, settings or GenerationSettings(), revision)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def revision(self) -> str | None:
        """The hub commit of the loaded weights where known, else the revision asked for."""
        return getattr(self.model.config, "_commit_hash", None) or self._revision

    def _image_start_tokens(self, batch: int, device: torch.device) -> dict[str, torch.Tensor]:
        """The decoder's start for an unprompted BLIP-2 whose config places image tokens.

        transformers 5.x starts unprompted generation from ``num_query_tokens``
        image tokens and BOS; 4.x starts from BOS alone and then fails to place
        the image embeddings (shape mismatch). Passing that start explicitly gives
        the same captions on every release.
        """
        config = self.model.config
        image_token = getattr(config, "image_token_index", None)
        queries = getattr(config, "num_query_tokens", None)
        text_config = getattr(config, "text_config", None)
        bos = getattr(text_config, "bos_token_id", None)
        if self.settings.prompt is not None or None in (image_token, queries, bos):
            return {}
        ids = torch.tensor([[image_token] * int(queries) + [bos]], device=device)
        ids = ids.repeat(batch, 1)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    @torch.inference_mode()
    def caption(self, images: list[Image.Image]) -> list[str]:
        """One caption per image, in order.

        Every image of a batch gets the same prompt and the processor resizes
        all to one size, so no input is padded and a batch's captions equal
        one-by-one captions (tested).
        """
        if not images:
            return []
        prepare = preprocessor(self.settings.preprocess)
        images = [prepare(im) for im in images]
        kwargs: dict[str, Any] = {"images": images, "return_tensors": "pt"}
        if self.settings.prompt is not None:
            kwargs["text"] = [self.settings.prompt] * len(images)
        inputs = self.processor(**kwargs)
        inputs.pop("token_type_ids", None)  # BERT-style tokenizers add it; no captioner uses it
        device, dtype = self.device, self.dtype
        inputs = {
            k: (v.to(device, dtype) if torch.is_floating_point(v) else v.to(device))
            for k, v in inputs.items()
        }
        start = self._image_start_tokens(len(images), device)
        out = self.model.generate(
            **start,
            **inputs,
            num_beams=self.settings.num_beams,
            **self.settings.budget(),
            early_stopping=self.settings.early_stopping,
            do_sample=False,
        )
        texts = [t.strip() for t in self.processor.batch_decode(out, skip_special_tokens=True)]
        if "input_ids" in inputs:
            # Some captioners (BLIP, GIT, decoder-only BLIP-2) echo the prompt: the
            # caption is what follows it. Compare in decoded form, which both share.
            prompts = self.processor.batch_decode(inputs["input_ids"], skip_special_tokens=True)
            texts = [
                t[len(p.strip()) :].strip() if p.strip() and t.startswith(p.strip()) else t
                for t, p in zip(texts, prompts, strict=True)
            ]
        return texts
