"""CLIP-LoRA (Zanella & Ben Ayed, CVPRW 2024): low-rank updates of CLIP's attention.

Follows MaxZanella/CLIP-LoRA ``loralib/layers.py`` (``LinearLoRA``),
``loralib/utils.py`` (``apply_lora``) and ``lora.py`` with its run arguments:
every q, k and v projection of every block of both encoders gets
``W x + b + (B A dropout(x)) * alpha / r`` with rank ``r = 2``, ``alpha = 1``,
dropout 0.25 (its own mask per projection), ``A`` Kaiming-uniform
(``a = sqrt(5)``) and ``B`` zero, so training starts at zero-shot CLIP. The
class text is the template's, encoded through the adapted text encoder at
every step; logits are CLIP's scaled cosine similarities, the loss
cross-entropy. The official schedule (AdamW, lr 2e-4, weight decay 1e-2,
cosine, 500 x shots iterations of batch 32) is in the preset.

The LoRA layers are built by ``peft`` (``LoraConfig`` and
``inject_adapter_in_model``) on stand-ins of the q/k/v projections that this
method owns, never on the backbone itself: a grid shares one loaded backbone
between cells and methods, so injecting into it would leak one cell's
adapters into the next. The project runs CLIP's blocks with its own code
(:mod:`bimors.backbones.blocks`), so the updates enter through each block's
``qkv_delta`` hook, set only while this method encodes and cleared after.
That also serves open_clip, whose ``nn.MultiheadAttention`` packs q, k and v
in one ``in_proj_weight`` that ``peft`` cannot target: the packed output is
``[q, k, v]``, and the hook returns the three updates in that order.

The image features depend on trainable weights, so ``frozen_image_features``
is False (no feature cache) and checkpoints hold only the LoRA matrices.
Deviations: the template is ``method.template`` (the official per-dataset
templates cover no remote-sensing dataset but EuroSAT); the official trains
under fp16 autocast, here ``train.precision`` decides.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from bimors.backbones.base import FrozenCLIP, ImageFeatures
from bimors.backbones.blocks import PlainBlock
from bimors.methods.prompting import prompt_logits
from bimors.methods.template import TemplateConfig, TemplateMethod

_ENCODERS = ("text", "vision", "both")
_PARAMS = ("q", "k", "v")


@dataclasses.dataclass
class CLIPLoRAConfig(TemplateConfig):
    """The official run arguments: ``--r 2 --alpha 1 --dropout_rate 0.25 --encoder both``."""

    rank: int = 2
    alpha: float = 1.0
    dropout: float = 0.25
    encoder: str = "both"  # text, vision or both
    params: list[str] = dataclasses.field(default_factory=lambda: ["q", "k", "v"])

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rank < 1:
            raise ValueError("rank must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        if self.encoder not in _ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(_ENCODERS)}")
        self.params = list(self.params)
        if self.grad_checkpointing:
            # Recomputation runs in backward, after the LoRA hooks are cleared (see adapted()).
            raise ValueError(
                "grad_checkpointing is not supported: its backward recomputes the blocks "
                "without the LoRA updates; set method.grad_checkpointing: false"
            )
        bad = [p for p in self.params if p not in _PARAMS]
        if bad or not self.params:
            raise ValueError("params must be a non-empty subset of q, k, v")


class _Projections(nn.Module):
    """Stand-ins of one block's q/k/v projections, for ``peft`` to wrap."""

    def __init__(self, width: int, names: tuple[str, ...]) -> None:
        super().__init__()
        for name in names:
            setattr(self, f"{name}_proj", nn.Linear(width, width, bias=False, device="meta"))


def _lora_update(layer: nn.Module, h: Tensor) -> Tensor:
    """``(B A dropout(h)) * scaling`` of one peft ``lora.Linear`` (adapter ``default``)."""
    a, b = layer.lora_A["default"], layer.lora_B["default"]
    return b(a(layer.lora_dropout["default"](h))) * layer.scaling["default"]


def build_lora_layers(width: int, depth: int, cfg: CLIPLoRAConfig) -> nn.ModuleList:
    """``depth`` blocks of peft LoRA layers on ``width``-wide projections (on CPU)."""
    from peft import LoraConfig, inject_adapter_in_model

    stand_ins = nn.ModuleList(_Projections(width, cfg.params) for _ in range(depth))
    config = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=[f"{p}_proj" for p in cfg.params],
        bias="none",
    )
    layers = inject_adapter_in_model(config, stand_ins)
    for block in layers:
        for name in cfg.params:
            layer = getattr(block, f"{name}_proj")
            # The base weight is never used (the backbone's is): drop the meta stand-in.
            layer.base_layer.register_parameter("weight", None)
            for sub in (layer.lora_A["default"], layer.lora_B["default"]):
                sub.to_empty(device="cpu")
            layer.reset_lora_parameters("default", True)
    return layers


class CLIPLoRA(TemplateMethod):
    name = "clip_lora"
    config_cls = CLIPLoRAConfig
    frozen_image_features = False

    def __init__(
        self,
        backbone: FrozenCLIP,
        classnames: list[str],
        cfg: CLIPLoRAConfig | None = None,
        caption_dim: int | None = None,
    ) -> None:
        super().__init__(backbone, classnames, cfg, caption_dim)
        encoders = ("text", "vision") if self.cfg.encoder == "both" else (self.cfg.encoder,)
        if "vision" in encoders and not backbone.vision_depth:
            raise ValueError(
                f"encoder={self.cfg.encoder!r} puts LoRA in the image encoder's attention, "
                f"but {backbone.model_id} has no transformer image tower (a ResNet): use a "
                "ViT backbone or set method.encoder: text"
            )
        self.lora = nn.ModuleDict()
        self._blocks: dict[str, list[PlainBlock]] = {}
        for enc in encoders:
            tower = backbone.text_tower if enc == "text" else backbone.vision_tower
            width = backbone.text_width if enc == "text" else backbone.vision_width
            self._blocks[enc] = list(tower.blocks)
            self.lora[enc] = build_lora_layers(width, len(tower.blocks), self.cfg).to(
                backbone.device
            )
        self.set_classnames(classnames)

    # -- the hook -------------------------------------------------------------------------
    def _delta(self, block: nn.Module, width: int):
        names = self.cfg.params

        def qkv_delta(h: Tensor) -> Tensor:
            parts = []
            for p in _PARAMS:
                if p in names:
                    parts.append(_lora_update(getattr(block, f"{p}_proj"), h))
                else:
                    parts.append(h.new_zeros(*h.shape[:-1], width))
            return torch.cat(parts, dim=-1)

        return qkv_delta

    @contextlib.contextmanager
    def adapted(self) -> Iterator[None]:
        """The backbone with this method's LoRA updates, for the duration of the block."""
        set_blocks: list[PlainBlock] = []
        try:
            for enc, blocks in self._blocks.items():
                width = blocks[0].qkv[0][0].shape[1] if blocks else 0
                for plain, layers in zip(blocks, self.lora[enc], strict=True):
                    plain.qkv_delta = self._delta(layers, width)
                    set_blocks.append(plain)
            yield
        finally:
            for plain in set_blocks:
                plain.qkv_delta = None

    # -- forward --------------------------------------------------------------------------
    def own_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The LoRA matrices only (the stand-ins' base layers hold no weight)."""
        return [(n, p) for n, p in self.named_parameters() if n.startswith("lora.")]

    def image_features(self, pixels: Tensor) -> ImageFeatures:
        """Image features through the adapted image encoder (with gradients)."""
        with self.adapted():
            return self.backbone.encode_image(pixels)

    def class_text(self) -> Tensor:
        """Text features of the template through the adapted text encoder (with gradients)."""
        if "text" not in self._blocks:
            return super().class_text()
        with self.adapted():
            return self.encode_class_prompts(None).float()

    def forward(self, feats: ImageFeatures, captions: Tensor | None = None) -> Tensor:
        return prompt_logits(self.backbone.logit_scale, feats.pooled.float(), self.class_text())
