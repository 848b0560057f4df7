"""transformers ``CLIPModel`` behind the :class:`FrozenCLIP` interface.

Only the public loading API (``CLIPModel``, ``AutoTokenizer``,
``AutoImageProcessor``) and module attributes that every release from 4.46 to
5.x shares are used; the encodings themselves are computed by
:mod:`bimors.backbones.towers`.
"""

from __future__ import annotations

import logging

from torch import Tensor

from bimors.backbones.base import OPENAI_MEAN, OPENAI_STD, FrozenCLIP, Preprocess
from bimors.backbones.blocks import UnsupportedBlocks, hf_plain_blocks
from bimors.backbones.loading import ModelLoadError, load_failure, missing_folder
from bimors.backbones.towers import TextTower, VisionTower

logger = logging.getLogger(__name__)


_LOAD_ERRORS = (OSError, ValueError, ImportError, AttributeError, TypeError, RuntimeError)


class HFCLIP(FrozenCLIP):
    """A frozen transformers ``CLIPModel`` (hub id such as
    ``openai/clip-vit-base-patch16``, or a folder written by ``save_pretrained``).
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
        text, vision = model.text_model, model.vision_model
        try:
            text_blocks = hf_plain_blocks(text.encoder)
            vision_blocks = hf_plain_blocks(vision.encoder)
        except UnsupportedBlocks as err:
            raise ModelLoadError(
                f"{model_id}: this CLIPModel's transformer is not CLIP's plain pre-norm block "
                f"stack ({err}); bimors supports transformers' CLIPModel layout"
            ) from err
        self.text_tower = TextTower(
            token_embedding=text.embeddings.token_embedding,
            positional=text.embeddings.position_embedding.weight,
            blocks=text_blocks,
            ln_final=text.final_layer_norm,
            projection=model.text_projection,
            causal=True,
        )
        emb = vision.embeddings
        self.vision_tower = VisionTower(
            patch=emb.patch_embedding,
            class_embedding=emb.class_embedding,
            positional=emb.position_embedding.weight,
            ln_pre=vision.pre_layrnorm,
            blocks=vision_blocks,
            ln_post=vision.post_layernorm,
            projection=model.visual_projection,
            pool="tok",
        )
        self.freeze()

    @classmethod
    def from_pretrained(cls, model_id: str, pretrained: str | None = None) -> HFCLIP:
        """Load model, tokenizer and preprocessing settings from a hub id or folder."""
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        if pretrained:
            raise ModelLoadError(
                "backbone.pretrained is an open_clip option; for the 'hf' adapter put the "
                "hub id or folder in backbone.model"
            )
        folder = missing_folder("CLIP backbone", model_id)
        if folder is not None:
            raise folder
        try:
            model, info = CLIPModel.from_pretrained(model_id, output_loading_info=True)
            tokenizer = AutoTokenizer.from_pretrained(model_id)
        except _LOAD_ERRORS as err:
            raise load_failure("CLIP backbone", model_id, err) from err
        missing = [k for k in info.get("missing_keys", ()) if not k.endswith("position_ids")]
        mismatched = list(info.get("mismatched_keys", ()))
        if missing or mismatched:
            example = (missing or [m[0] if isinstance(m, tuple) else m for m in mismatched])[0]
            raise ModelLoadError(
                f"cannot load the CLIP backbone {model_id!r}: {len(missing)} weights missing and "
                f"{len(mismatched)} of another shape in its checkpoint (e.g. {example}), which "
                "would leave them random. Use the checkpoint's own config.json, or the open_clip "
                "adapter for open_clip checkpoints"
            )
        model = model.float()
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

    @property
    def logit_scale(self) -> Tensor:
        return self.model.logit_scale.exp()
