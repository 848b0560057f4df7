"""A frozen transformers text encoder that turns a caption into one vector.

The paper encodes each caption alone with ``bert-base-uncased`` and averages
the hidden states of all its tokens ([CLS] and [SEP] included). Encoding
captions in padded batches and averaging over the attention mask gives the
same vector, since padding positions are excluded and BERT attends only to
unmasked tokens.
"""

from __future__ import annotations

import torch
from torch import Tensor

DEFAULT_ENCODER = "bert-base-uncased"


class CaptionEncoder:
    """Masked-mean pooled hidden states of any transformers encoder."""

    def __init__(self, model, tokenizer, model_id: str, max_length: int = 512) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.max_length = max_length

    @classmethod
    def from_pretrained(
        cls,
        model_id: str = DEFAULT_ENCODER,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> CaptionEncoder:
        """Load from a hub id or folder."""
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_id)
        model = AutoModel.from_pretrained(model_id, dtype=dtype)
        model.to(device).eval().requires_grad_(False)
        return cls(model, tokenizer, model_id)

    @property
    def dim(self) -> int:
        """Width of the caption vector (768 for BERT-base, 384 for MiniLM)."""
        return int(self.model.config.hidden_size)

    @property
    def revision(self) -> str | None:
        return getattr(self.model.config, "_commit_hash", None)

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> Tensor:
        """Float32 vectors (N, dim), one per caption."""
        if not texts:
            return torch.empty(0, self.dim)
        device = next(self.model.parameters()).device
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(device)
        hidden = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return ((hidden * mask).sum(dim=1) / mask.sum(dim=1)).cpu()
