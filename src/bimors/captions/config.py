"""The ``captions`` section of a run config: which store, captioner, encoder and decoding."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal


@dataclasses.dataclass
class CaptionConfig:
    """Where caption vectors come from (needed by methods that use captions).

    The token budget is ``max_new_tokens`` or, when ``max_length`` is set,
    ``max_length`` as transformers counts it (the official script's
    ``max_length=16``: 15 new tokens for a T5 decoder); set one, the other
    null. ``preprocess``: ``none`` (the processor sees the decoded image) or
    ``official`` (224 x 224 resize and min-max stretch first, as the official
    ``gen_caption.py``; see :mod:`bimors.captions.preprocess`).
    """

    store: str | None = None  # default: <root>/.bimors/captions/<captioner>__<encoder>.sqlite
    captioner: str = "Salesforce/blip2-flan-t5-xl"
    encoder: str = "bert-base-uncased"
    num_beams: int = 4
    max_new_tokens: int | None = 16
    max_length: int | None = None
    preprocess: Literal["none", "official"] = "none"
    batch_size: int = 16

    def __post_init__(self) -> None:
        if (self.max_new_tokens is None) == (self.max_length is None):
            raise ValueError(
                "set exactly one of captions.max_new_tokens and captions.max_length (the other "
                f"null); got max_new_tokens={self.max_new_tokens}, max_length={self.max_length}"
            )

    def expected_generation(self) -> dict[str, Any]:
        """The generation fields a caption store must have been made with."""
        return {
            "num_beams": self.num_beams,
            "max_new_tokens": self.max_new_tokens,
            "max_length": self.max_length,
            "preprocess": self.preprocess,
        }

    def generation(self):
        """The captioner's :class:`~bimors.captions.captioner.GenerationSettings`."""
        from bimors.captions.captioner import GenerationSettings

        return GenerationSettings(
            num_beams=self.num_beams,
            max_new_tokens=self.max_new_tokens,
            max_length=self.max_length,
            preprocess=self.preprocess,
        )
