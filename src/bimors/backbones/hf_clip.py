"""transformers ``CLIPModel`` behind the :class:`FrozenCLIP` interface."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor

from bimors.backbones.base import (
    FrozenCLIP,
    ImageFeatures,
    Preprocess,
    additive_mask,
    gather_eos,
)
from bimors.backbones.text_blocks import hf_plain_blocks, run_blocks

logger = logging.getLogger(__name__)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class HFCLIP(FrozenCLIP):
    """A frozen transformers ``CLIPModel`` (hub id such as
    ``openai/clip-vit-base-patch16``, or a folder written by ``save_pretrained``).

    The text path is re-assembled from the model's own embedding, encoder and
    final LayerNorm so that prompts can enter as embeddings and be truncated.
    """

    adapter = "hf"

    def __init__(self, model, tokenizer, preprocess: Preprocess, model_id: str) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.model_id = model_id
        tcfg, vcfg = model.config.text_config, model.config.vision_config
        self.vision_width = int(vcfg.hidden_size)
        self.text_width = int(tcfg.hidden_size)
        self.embed_dim = int(model.config.projection_dim)
        self.context_length = int(tcfg.max_position_embeddings)
        self.sot_id = int(tokenizer.bos_token_id)
        self.eot_id = int(tokenizer.eos_token_id)
        self.causal_text = True
        self.text_depth = len(model.text_model.encoder.layers)
        self.vision_depth = len(model.vision_model.encoder.layers)
        self.freeze()

    @classmethod
    def from_pretrained(cls, model_id: str, pretrained: str | None = None) -> HFCLIP:
        """Load model, tokenizer and preprocessing settings from a hub id or folder."""
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        if pretrained:
            raise ValueError(
                "backbone.pretrained is an open_clip option; for the 'hf' adapter put the "
                "hub id or folder in backbone.model"
            )
        model = CLIPModel.from_pretrained(model_id, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(model_id)
        size = int(model.config.vision_config.image_size)
        mean, std = OPENAI_MEAN, OPENAI_STD
        try:
            proc = AutoImageProcessor.from_pretrained(model_id)
            mean = tuple(float(x) for x in proc.image_mean)
            std = tuple(float(x) for x in proc.image_std)
        except (OSError, ValueError, AttributeError):
            logger.warning("no image processor config in %s; using OpenAI CLIP mean/std", model_id)
        return cls(model, tokenizer, Preprocess(size, mean, std, "bicubic"), model_id)

    def tokenize(self, texts: list[str]) -> Tensor:
        out = self.tokenizer(
            list(texts),
            padding="max_length",
            max_length=self.context_length,
            truncation=True,
            return_tensors="pt",
        )
        return out["input_ids"]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def embed_tokens(self, ids: Tensor) -> Tensor:
        return self.model.text_model.embeddings.token_embedding(ids.to(self.device))

    def encode_prompts(self, embeds: Tensor, eos_positions: Tensor) -> Tensor:
        from transformers.masking_utils import create_causal_mask

        text = self.model.text_model
        length = embeds.shape[1]
        position_ids = text.embeddings.position_ids[:, :length]
        hidden = text.embeddings(inputs_embeds=embeds, position_ids=position_ids)
        mask = create_causal_mask(
            config=text.config, inputs_embeds=hidden, attention_mask=None, cache=None
        )
        hidden = text.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True)
        hidden = text.final_layer_norm(hidden.last_hidden_state)
        return self.model.text_projection(gather_eos(hidden, eos_positions))

    @property
    def supports_packing(self) -> bool:
        """Packed prompts need an attention that takes an arbitrary mask."""
        impl = self.model.text_model.config._attn_implementation
        return hf_plain_blocks(self.model.text_model.encoder) is not None or impl in (
            "sdpa",
            "eager",
        )

    def encode_prompts_packed(
        self, embeds: Tensor, position_ids: Tensor, allowed: Tensor, gather: Tensor
    ) -> Tensor:
        text = self.model.text_model
        # CLIPTextEmbeddings refuses sequences longer than 77, which packed ones may be;
        # it only adds the position embedding, so do that here.
        hidden = embeds + text.embeddings.position_embedding(position_ids)
        if not hasattr(self, "_plain_blocks"):
            self._plain_blocks = hf_plain_blocks(text.encoder)
        if self._plain_blocks is not None:  # see bimors.backbones.text_blocks for why
            hidden = run_blocks(self._plain_blocks, hidden, allowed)
        else:
            if text.config._attn_implementation == "sdpa":
                mask = allowed  # sdpa reads a boolean mask directly (True = attend)
            else:
                mask = additive_mask(allowed, hidden.dtype)
            out = text.encoder(inputs_embeds=hidden, attention_mask=mask[None, None])
            hidden = out.last_hidden_state
        # The final LayerNorm acts per token: normalise only the gathered ones.
        hidden = text.final_layer_norm(hidden[:, gather])
        return self.model.text_projection(hidden)

    def encode_image(self, pixels: Tensor) -> ImageFeatures:
        return self.encode_image_deep(pixels)

    # -- layer-wise primitives (see FrozenCLIP.encode_prompts_deep / encode_image_deep) --
    def _text_embed(self, embeds: Tensor) -> Tensor:
        emb = self.model.text_model.embeddings
        return emb(inputs_embeds=embeds, position_ids=emb.position_ids[:, : embeds.shape[1]])

    def _text_blocks(self, hidden: Tensor) -> list[Callable[[Tensor], Tensor]]:
        from transformers.masking_utils import create_causal_mask

        text = self.model.text_model
        mask = create_causal_mask(
            config=text.config, inputs_embeds=hidden, attention_mask=None, cache=None
        )
        return [
            lambda x, layer=layer: layer(x, mask, is_causal=True) for layer in text.encoder.layers
        ]

    def _text_head(self, hidden: Tensor, eos_positions: Tensor) -> Tensor:
        hidden = self.model.text_model.final_layer_norm(hidden)
        return self.model.text_projection(gather_eos(hidden, eos_positions))

    def _vision_embed(self, pixels: Tensor) -> Tensor:
        return self.model.vision_model.embeddings(pixels)

    def _vision_pre_norm(self, hidden: Tensor) -> Tensor:
        return self.model.vision_model.pre_layrnorm(hidden)

    def _vision_blocks(self) -> list[Callable[[Tensor], Tensor]]:
        layers = self.model.vision_model.encoder.layers
        return [lambda x, layer=layer: layer(x, None) for layer in layers]

    def _vision_head(self, tokens: Tensor) -> Tensor:
        vision = self.model.vision_model
        return self.model.visual_projection(vision.post_layernorm(tokens[:, 0]))

    @property
    def logit_scale(self) -> Tensor:
        return self.model.logit_scale.exp()
