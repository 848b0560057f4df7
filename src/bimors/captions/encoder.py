"""A frozen transformers text encoder that turns a caption into one vector.

The paper (and the official ``gen_caption.py``) encodes each caption alone
with ``bert-base-uncased`` and averages the last hidden states of all its
tokens, [CLS] and [SEP] included. Encoding captions in padded batches and
averaging over the attention mask gives the same vector, since padding
positions are excluded from the mean and masked out of attention (tested to
float tolerance).
"""

from __future__ import annotations

import torch
from torch import Tensor

from bimors.backbones.loading import dtype_kwargs, load_failure

DEFAULT_ENCODER = "bert-base-uncased"
POOLING = "masked-mean"


class CaptionEncoder:
    """Masked-mean pooled last hidden states of any transformers encoder.

    Encoder-decoder checkpoints (T5, BART) contribute their encoder only.
    """

    def __init__(
        self,
        model,
        tokenizer,
        model_id: str,
        max_length: int | None = None,
        revision: str | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        # Captions are short; the cap only guards against a tokenizer without a limit.
        self.max_length = max_length or min(int(tokenizer.model_max_length), 512)
        self._revision = revision
        self._body = model.get_encoder() if model.config.is_encoder_decoder else model

    @classmethod
    def from_pretrained(
        cls,
        model_id: str = DEFAULT_ENCODER,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        revision: str | None = None,
    ) -> CaptionEncoder:
        """Load from a hub id or folder."""
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(model_id, revision=revision)
            model = AutoModel.from_pretrained(model_id, revision=revision, **dtype_kwargs(dtype))
        except (OSError, ValueError, ImportError, AttributeError, TypeError) as err:
            raise load_failure("caption encoder", model_id, err) from err
        model.to(device).eval().requires_grad_(False)
        return cls(model, tokenizer, model_id, revision=revision)

    @property
    def dim(self) -> int:
        """Width of the caption vector (768 for BERT-base, 384 for MiniLM)."""
        config = self.model.config
        return int(getattr(config, "hidden_size", None) or config.d_model)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def revision(self) -> str | None:
        return getattr(self.model.config, "_commit_hash", None) or self._revision

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> Tensor:
        """Float32 vectors (N, dim) on the CPU, one per caption.

        Each distinct caption is encoded once: captioners repeat themselves on
        scene datasets ("an aerial view of a parking lot"), and a duplicate
        costs a full encoder pass for the same vector.
        """
        if not texts:
            return torch.empty(0, self.dim)
        unique = list(dict.fromkeys(texts))
        if len(unique) < len(texts):
            index = {t: i for i, t in enumerate(unique)}
            return self.encode(unique)[[index[t] for t in texts]]
        device = next(self.model.parameters()).device
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(device)
        inputs = {k: v for k, v in batch.items() if k != "token_type_ids" or self._takes_types}
        hidden = self._body(**inputs).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return ((hidden * mask).sum(dim=1) / mask.sum(dim=1)).cpu()

    @property
    def _takes_types(self) -> bool:
        """T5-style encoders reject ``token_type_ids``; BERT-style ones use them."""
        import inspect

        return "token_type_ids" in inspect.signature(self._body.forward).parameters
