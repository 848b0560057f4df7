"""open_clip models (OpenAI CLIP, LAION, RemoteCLIP, GeoRSCLIP, ...) behind :class:`FrozenCLIP`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from bimors.backbones.base import (
    FrozenCLIP,
    ImageFeatures,
    Preprocess,
    additive_mask,
    gather_eos,
)
from bimors.backbones.text_blocks import open_clip_plain_blocks, run_blocks

logger = logging.getLogger(__name__)


def _model_name(model: str) -> str:
    """A folder with ``open_clip_config.json`` becomes open_clip's ``local-dir:`` schema."""
    path = Path(model)
    if path.is_dir():
        if not (path / "open_clip_config.json").is_file():
            raise FileNotFoundError(
                f"{path} has no open_clip_config.json; an open_clip folder needs the config and "
                "weights written by `bimors tiny-models` or open_clip's save_for_hf"
            )
        return f"local-dir:{path.resolve()}"
    return model


class OpenCLIP(FrozenCLIP):
    """A frozen open_clip CLIP.

    ``model`` is an open_clip architecture name (``ViT-B-16``), an ``hf-hub:``
    id, or a local folder; ``pretrained`` is a tag (``openai``) or a checkpoint
    file (e.g. RemoteCLIP's ``RemoteCLIP-ViT-B-32.pt``) for a plain name.
    ViT and ModifiedResNet image towers are supported.
    """

    adapter = "open_clip"

    def __init__(self, model, tokenizer, model_id: str) -> None:
        super().__init__()
        import open_clip
        from open_clip.modified_resnet import ModifiedResNet
        from open_clip.transformer import VisionTransformer

        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        text = self._text
        if getattr(text, "cls_emb", None) is not None:
            raise ValueError(f"{model_id}: text towers with a CLS embedding are not supported")
        pool = getattr(text, "text_pool_type", "argmax")
        if pool not in ("argmax", "eos"):
            raise ValueError(f"{model_id}: text pool type {pool!r} is not supported")
        visual = model.visual
        if isinstance(visual, VisionTransformer):
            self._tower = "vit"
            self.vision_width = int(visual.transformer.width)
        elif isinstance(visual, ModifiedResNet):
            self._tower = "resnet"
            self.vision_width = int(visual.attnpool.k_proj.in_features)
        else:
            raise ValueError(
                f"{model_id}: image tower {type(visual).__name__} is not supported "
                "(ViT and ModifiedResNet are)"
            )
        self.text_width = int(text.token_embedding.embedding_dim)
        self.embed_dim = int(visual.output_dim)
        self.context_length = int(text.positional_embedding.shape[0])
        self.sot_id = int(tokenizer.sot_token_id)
        self.eot_id = int(tokenizer.eot_token_id)
        self.causal_text = getattr(text, "attn_mask", None) is not None
        self.text_depth = len(text.transformer.resblocks)
        # Layer-wise access needs the plain CLIP ViT head (class-token or mean pooling);
        # attentional poolers (CoCa) keep the library forward only.
        pool = getattr(visual, "pool_type", "tok")
        if self._tower == "vit" and getattr(visual, "attn_pool", None) is None and pool != "none":
            self.vision_depth = len(visual.transformer.resblocks)
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", visual.image_size)
        size = size[0] if isinstance(size, (tuple, list)) else size
        self.preprocess = Preprocess(
            int(size),
            tuple(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))),
            tuple(cfg.get("std", (0.26862954, 0.26130258, 0.27577711))),
            str(cfg.get("interpolation", "bicubic")),
        )
        self.freeze()

    @property
    def _text(self):
        """The module holding the text tower (the CLIP itself, or ``.text`` for custom text)."""
        return getattr(self.model, "text", self.model)

    @classmethod
    def from_pretrained(cls, model_id: str, pretrained: str | None = None) -> OpenCLIP:
        import open_clip

        name = _model_name(model_id)
        model = open_clip.create_model(name, pretrained=None if ":" in name else pretrained)
        tokenizer = open_clip.get_tokenizer(name)
        return cls(model.float(), tokenizer, model_id)

    def tokenize(self, texts: list[str]) -> Tensor:
        return self.tokenizer(list(texts), context_length=self.context_length).long()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def embed_tokens(self, ids: Tensor) -> Tensor:
        return self._text.token_embedding(ids.to(self.device))

    def encode_prompts(self, embeds: Tensor, eos_positions: Tensor) -> Tensor:
        text = self._text
        length = embeds.shape[1]
        x = embeds + text.positional_embedding[:length].to(embeds.dtype)
        mask = text.attn_mask[:length, :length] if self.causal_text else None
        if text.transformer.batch_first:
            x = text.transformer(x, attn_mask=mask)
        else:  # older open_clip: sequence-first transformer
            x = text.transformer(x.transpose(0, 1), attn_mask=mask).transpose(0, 1)
        x = gather_eos(text.ln_final(x), eos_positions)
        proj = text.text_projection
        if proj is None:
            return x
        return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj

    @property
    def supports_packing(self) -> bool:
        return self.causal_text

    def encode_prompts_packed(
        self, embeds: Tensor, position_ids: Tensor, allowed: Tensor, gather: Tensor
    ) -> Tensor:
        text = self._text
        x = embeds + text.positional_embedding[position_ids].to(embeds.dtype)
        if not hasattr(self, "_plain_blocks"):
            self._plain_blocks = open_clip_plain_blocks(text.transformer)
        if self._plain_blocks is not None:  # see bimors.backbones.text_blocks for why
            x = run_blocks(self._plain_blocks, x, allowed)
        else:
            mask = additive_mask(allowed, x.dtype)  # open_clip casts masks to float: no bools
            if text.transformer.batch_first:
                x = text.transformer(x, attn_mask=mask)
            else:  # older open_clip: sequence-first transformer
                x = text.transformer(x.transpose(0, 1), attn_mask=mask).transpose(0, 1)
        x = text.ln_final(x[:, gather])  # LayerNorm is per token: only the gathered ones
        proj = text.text_projection
        if proj is None:
            return x
        return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj

    def encode_image(self, pixels: Tensor) -> ImageFeatures:
        if self.vision_depth:
            return self.encode_image_deep(pixels)
        visual = self.model.visual
        captured: list[Tensor] = []
        module = visual.transformer if self._tower == "vit" else visual.layer4
        handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            pooled = visual(pixels)
        finally:
            handle.remove()
        if isinstance(pooled, tuple):
            pooled = pooled[0]
        tokens = captured[0]
        if self._tower == "vit":
            if not visual.transformer.batch_first:
                tokens = tokens.transpose(0, 1)
        else:  # (B, C, H, W) grid -> (B, 1 + HW, C) with the mean token first, as attnpool sees it
            grid = tokens.flatten(2).transpose(1, 2)
            tokens = torch.cat([grid.mean(dim=1, keepdim=True), grid], dim=1)
        norm = pooled.norm(dim=-1, keepdim=True)
        return ImageFeatures(pooled=pooled / norm, tokens=tokens, norm=norm)

    # -- layer-wise primitives (see FrozenCLIP.encode_prompts_deep / encode_image_deep) --
    @staticmethod
    def _blocks(transformer, mask: Tensor | None = None) -> list[Callable[[Tensor], Tensor]]:
        """Residual blocks as batch-first callables, whatever layout the transformer uses."""
        if transformer.batch_first:
            return [lambda x, r=r: r(x, attn_mask=mask) for r in transformer.resblocks]
        return [
            lambda x, r=r: r(x.transpose(0, 1), attn_mask=mask).transpose(0, 1)
            for r in transformer.resblocks
        ]

    def _text_embed(self, embeds: Tensor) -> Tensor:
        pos = self._text.positional_embedding[: embeds.shape[1]]
        return embeds + pos.to(embeds.dtype)

    def _text_blocks(self, hidden: Tensor) -> list[Callable[[Tensor], Tensor]]:
        text, length = self._text, hidden.shape[1]
        mask = text.attn_mask[:length, :length] if self.causal_text else None
        return self._blocks(text.transformer, mask)

    def _text_head(self, hidden: Tensor, eos_positions: Tensor) -> Tensor:
        text = self._text
        x = gather_eos(text.ln_final(hidden), eos_positions)
        proj = text.text_projection
        if proj is None:
            return x
        return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj

    def _vision_embed(self, pixels: Tensor) -> Tensor:
        # open_clip's VisionTransformer._embeds without its patch dropout (inactive in
        # eval) and without ln_pre, so that prompts can be appended in between.
        visual = self.model.visual
        x = visual.conv1(pixels.to(visual.conv1.weight.dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        return torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)

    def _vision_pre_norm(self, hidden: Tensor) -> Tensor:
        return self.model.visual.ln_pre(hidden)

    def _vision_blocks(self) -> list[Callable[[Tensor], Tensor]]:
        return self._blocks(self.model.visual.transformer)

    def _vision_head(self, tokens: Tensor) -> Tensor:
        visual = self.model.visual
        if getattr(visual, "final_ln_after_pool", False):
            pooled = visual.ln_post(self._pool(tokens))
        else:
            pooled = self._pool(visual.ln_post(tokens))
        return pooled @ visual.proj if visual.proj is not None else pooled

    def _pool(self, tokens: Tensor) -> Tensor:
        """The tower's global pool: the class token, or the mean of the patch tokens."""
        pool = getattr(self.model.visual, "pool_type", "tok")
        if pool == "avg":
            return tokens[:, 1:].mean(dim=1)
        if pool == "tok":
            return tokens[:, 0]
        raise ValueError(f"{self.model_id}: image pool type {pool!r} is not supported")

    @property
    def logit_scale(self) -> Tensor:
        return self.model.logit_scale.exp()
