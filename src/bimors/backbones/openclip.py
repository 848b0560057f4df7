"""open_clip models (OpenAI CLIP, LAION, RemoteCLIP, GeoRSCLIP, SkyCLIP) behind :class:`FrozenCLIP`.

What is taken from open_clip is its public, long-stable surface: the model
classes ``CLIP`` / ``CustomTextCLIP`` with their config dictionaries,
``create_model`` for architecture names, pretrained tags and ``hf-hub:`` ids,
``get_tokenizer``, and the towers' module attributes. Local folders
(``open_clip_config.json`` + weights) and checkpoint files are read here and
loaded strictly, so they work the same on every open_clip release and a file
whose keys do not fit the architecture is refused instead of half-loaded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import Tensor

from bimors.backbones.base import OPENAI_MEAN, OPENAI_STD, FrozenCLIP, ImageFeatures, Preprocess
from bimors.backbones.blocks import UnsupportedBlocks, open_clip_plain_blocks
from bimors.backbones.loading import (
    ModelLoadError,
    _short,
    fetch_weights,
    is_remote_weights,
    load_strict,
    looks_like_path,
    missing_folder,
    offline_weights_advice,
    read_state_dict,
)
from bimors.backbones.presets import OPENAI_SHAPED
from bimors.backbones.quiet import quiet_open_clip
from bimors.backbones.towers import TextTower, VisionTower

logger = logging.getLogger(__name__)

FOLDER_CONFIG = "open_clip_config.json"
FOLDER_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def activation(model) -> str:
    """``quick_gelu`` or ``gelu``: the text tower's activation, as built."""
    text = getattr(model, "text", model)
    act = text.transformer.resblocks[0].mlp.gelu
    return "quick_gelu" if type(act).__name__ == "QuickGELU" else "gelu"


_RANDOM_INIT = "No pretrained weights loaded"


class _HideRandomInit(logging.Filter):
    """Drops open_clip's "initialized randomly" line: bimors loads the weights itself next."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _RANDOM_INIT not in record.getMessage()


def check_activation(name: str, activation: str | None) -> None:
    """Refuse a checkpoint file on an OpenAI-shaped architecture without ``-quickgelu``
    unless ``backbone.activation`` says which activation is meant."""
    if name in OPENAI_SHAPED and activation is None:
        raise ModelLoadError(
            f"a checkpoint file in open_clip architecture {name!r} would run GELU, but weights "
            f"fine-tuned from OpenAI (RemoteCLIP, GeoRSCLIP) need QuickGELU: use "
            f"backbone.model={name}-quickgelu, or backbone.activation=gelu if the checkpoint "
            "really was trained with GELU (the weights cannot tell)"
        )


def _quick_gelu_hint(name: str) -> str:
    return (
        f" (checkpoints fine-tuned from OpenAI weights need the QuickGELU variant, "
        f"{name}-quickgelu)"
        if not name.endswith("quickgelu")
        else ""
    )


def _read_folder(folder: Path) -> tuple[dict, dict, Path]:
    """(model_cfg, preprocess_cfg, weights file) of an open_clip folder, or a clear error."""
    config = folder / FOLDER_CONFIG
    held = ", ".join(sorted(p.name for p in folder.iterdir())[:10]) or "nothing"
    if not config.is_file():
        raise ModelLoadError(
            f"cannot load the open_clip folder {str(folder)!r}: it has no {FOLDER_CONFIG} (it "
            f"holds: {held}). An open_clip folder holds {FOLDER_CONFIG} and "
            f"{FOLDER_WEIGHTS[0]} (as written by open_clip's save_for_hf or `bimors tiny-models`); "
            "a transformers folder needs backbone.adapter=hf"
        )
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        model_cfg = dict(data["model_cfg"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ModelLoadError(
            f"{config}: not an open_clip config ({type(err).__name__}: {err}); it needs a "
            "'model_cfg' object with embed_dim, vision_cfg and text_cfg"
        ) from err
    weights = next((folder / w for w in FOLDER_WEIGHTS if (folder / w).is_file()), None)
    if weights is None:
        raise ModelLoadError(
            f"cannot load the open_clip folder {str(folder)!r}: no weights file "
            f"({' or '.join(FOLDER_WEIGHTS)}); it holds: {held}"
        )
    return model_cfg, dict(data.get("preprocess_cfg") or {}), weights


def _build_from_cfg(model_cfg: dict, where: str):
    """An open_clip CLIP from its config dictionary, through the public model classes."""
    import open_clip

    cfg = dict(model_cfg)
    if "multimodal_cfg" in cfg:
        raise ModelLoadError(f"{where}: CoCa models (multimodal_cfg) are not supported")
    custom = cfg.pop("custom_text", False) or "hf_model_name" in cfg.get("text_cfg", {})
    cls = open_clip.CustomTextCLIP if custom else open_clip.CLIP
    try:
        return cls(**cfg)
    except TypeError as err:
        raise ModelLoadError(
            f"{where}: this open_clip ({open_clip.__version__}) cannot build the config "
            f"({err}); install the open_clip release that wrote it"
        ) from err


def _load_file(model, path: Path, what: str) -> None:
    try:
        state = read_state_dict(path)
    except (OSError, RuntimeError, ValueError) as err:
        raise ModelLoadError(
            f"cannot read the checkpoint {str(path)!r} ({type(err).__name__}: {err}); it must be "
            "a safetensors file or a torch state dict"
        ) from err
    load_strict(model, state, what)


class OpenCLIP(FrozenCLIP):
    """A frozen open_clip CLIP.

    ``model`` is an open_clip architecture name (``ViT-B-16``), an ``hf-hub:``
    id, or a local folder; ``pretrained`` is a tag (``openai``) or a checkpoint
    file (e.g. RemoteCLIP's ``RemoteCLIP-ViT-B-32.pt``) for a plain name.
    ViT and ModifiedResNet image towers are supported.
    """

    adapter = "open_clip"

    def __init__(self, model, tokenizer, model_id: str, preprocess_cfg: dict | None = None):
        super().__init__()
        import open_clip
        from open_clip.modified_resnet import ModifiedResNet
        from open_clip.transformer import VisionTransformer

        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        text = getattr(model, "text", model)
        if not hasattr(text, "token_embedding") or getattr(text, "cls_emb", None) is not None:
            raise ModelLoadError(
                f"{model_id}: only CLIP's own text transformer is supported (this model's text "
                f"tower is {type(text).__name__})"
            )
        pool = getattr(text, "text_pool_type", "argmax")
        if pool not in ("argmax", "eos"):
            raise ModelLoadError(f"{model_id}: text pool type {pool!r} is not supported")
        visual = model.visual
        if isinstance(visual, VisionTransformer):
            self._tower = "vit"
            self.vision_width = int(visual.transformer.width)
        elif isinstance(visual, ModifiedResNet):
            self._tower = "resnet"
            self.vision_width = int(visual.attnpool.k_proj.in_features)
        else:
            raise ModelLoadError(
                f"{model_id}: image tower {type(visual).__name__} is not supported "
                "(ViT and ModifiedResNet are)"
            )
        try:
            text_blocks = open_clip_plain_blocks(text.transformer)
            vision_blocks = self._vision_blocks(visual)
        except UnsupportedBlocks as err:
            raise ModelLoadError(f"{model_id}: {err}; this architecture is not supported") from err
        self.text_width = int(text.token_embedding.embedding_dim)
        self.embed_dim = int(visual.output_dim)
        self.context_length = int(text.positional_embedding.shape[0])
        encoder = getattr(tokenizer, "encoder", {})
        self.sot_id = int(getattr(tokenizer, "sot_token_id", None) or encoder["<start_of_text>"])
        self.eot_id = int(getattr(tokenizer, "eot_token_id", None) or encoder["<end_of_text>"])
        self.text_tower = TextTower(
            token_embedding=text.token_embedding,
            positional=text.positional_embedding,
            blocks=text_blocks,
            ln_final=text.ln_final,
            projection=text.text_projection,
            causal=getattr(text, "attn_mask", None) is not None,
        )
        if vision_blocks is not None:
            self.vision_tower = VisionTower(
                patch=visual.conv1,
                class_embedding=visual.class_embedding,
                positional=visual.positional_embedding,
                ln_pre=visual.ln_pre,
                blocks=vision_blocks,
                ln_post=visual.ln_post,
                projection=visual.proj,
                pool=self._pool_type(visual),
                norm_after_pool=bool(getattr(visual, "final_ln_after_pool", False)),
            )
        cfg = dict(preprocess_cfg or {})
        if not cfg and hasattr(open_clip, "get_model_preprocess_cfg"):
            cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", visual.image_size)
        size = size[0] if isinstance(size, (tuple, list)) else size
        self.preprocess = Preprocess(
            int(size),
            tuple(cfg.get("mean") or getattr(visual, "image_mean", None) or OPENAI_MEAN),
            tuple(cfg.get("std") or getattr(visual, "image_std", None) or OPENAI_STD),
            str(cfg.get("interpolation", "bicubic")),
        )
        self.freeze()

    def _vision_blocks(self, visual):
        """The ViT's blocks, or None when the tower keeps the library's forward.

        ResNets and ViTs with an attentional pooler (CoCa-style) have no plain
        layer-wise path; they are encoded by the library's own forward.
        """
        if self._tower != "vit" or getattr(visual, "attn_pool", None) is not None:
            return None
        if self._pool_type(visual) not in ("tok", "avg"):
            return None
        return open_clip_plain_blocks(visual.transformer)

    @staticmethod
    def _pool_type(visual) -> str:
        pool = getattr(visual, "pool_type", None)
        if pool is None:  # open_clip before pool_type: a boolean switch
            pool = "avg" if getattr(visual, "global_average_pool", False) else "tok"
        return pool

    @classmethod
    def from_pretrained(
        cls, model_id: str, pretrained: str | None = None, activation: str | None = None
    ) -> OpenCLIP:
        """Build from a folder, an architecture name (+ tag or file), or an ``hf-hub:`` id.

        ``activation`` (``backbone.activation``): ``gelu`` allows a checkpoint file
        on a plain OpenAI-shaped name (see :func:`check_activation`), ``quick_gelu``
        builds it as its ``-quickgelu`` variant; ``None`` lets the name decide.
        """
        if activation == "quick_gelu" and not model_id.endswith("-quickgelu"):
            if model_id.startswith("hf-hub:") or looks_like_path(model_id):
                raise ModelLoadError(
                    f"backbone.activation=quick_gelu needs an architecture name, not {model_id!r}"
                )
            model_id = f"{model_id}-quickgelu"
        if activation == "gelu" and model_id.endswith("-quickgelu"):
            raise ModelLoadError(
                f"backbone.activation=gelu contradicts backbone.model={model_id!r}; drop one"
            )
        import open_clip

        folder = missing_folder("open_clip backbone", model_id)
        if folder is not None:
            raise folder
        path = Path(model_id).expanduser()
        if looks_like_path(model_id) and path.is_dir():
            if pretrained:
                raise ModelLoadError(
                    f"backbone.pretrained={pretrained!r} cannot be combined with the folder "
                    f"{model_id!r}, which holds its own weights"
                )
            model_cfg, preprocess_cfg, weights = _read_folder(path)
            model = _build_from_cfg(model_cfg, model_id)
            _load_file(model, weights, f"open_clip folder {model_id!r}")
            tokenizer = open_clip.get_tokenizer("ViT-B-32")  # CLIP's BPE (custom text refused)
            return cls(model.float(), tokenizer, model_id, preprocess_cfg)
        if model_id.startswith("hf-hub:"):
            model = cls._create(model_id, None)
            return cls(model.float(), open_clip.get_tokenizer(model_id), model_id)
        checkpoint = None
        if is_remote_weights(pretrained):
            checkpoint = fetch_weights(pretrained)
        elif pretrained and (looks_like_path(pretrained) or Path(pretrained).suffix):
            checkpoint = Path(pretrained).expanduser()
            if not checkpoint.is_file():
                problem = missing_folder("checkpoint", pretrained)
                raise problem or ModelLoadError(
                    f"backbone.pretrained={pretrained!r} is not a checkpoint file"
                )
        if checkpoint is not None:
            check_activation(model_id, activation)
        model = cls._create(model_id, None if checkpoint else pretrained)
        if checkpoint is not None:
            _load_file(
                model,
                checkpoint,
                f"{checkpoint.name} in open_clip architecture {model_id!r}"
                + _quick_gelu_hint(model_id),
            )
        tokenizer = open_clip.get_tokenizer(model_id.removesuffix("-quickgelu"))
        return cls(model.float(), tokenizer, model_id)

    @staticmethod
    def _create(name: str, tag: str | None):
        """``open_clip.create_model`` with QuickGELU made explicit and failures as one line.

        ``NAME-quickgelu`` is built as ``NAME`` with ``force_quick_gelu``, and so
        are OpenAI's own weights (tag ``openai``): open_clip's ``-quickgelu``
        configs and its automatic QuickGELU for ``openai`` differ between releases
        (before 2.23 some configs are missing; from 2.29 ``openai`` on a plain name
        gives GELU), while ``force_quick_gelu`` means the same in all of them.
        """
        import open_clip

        arch, quick = name, tag == "openai"
        if name.endswith("-quickgelu") and not name.startswith("hf-hub:"):
            arch, quick = name[: -len("-quickgelu")], True
        hide = _HideRandomInit()
        watched = [logging.getLogger(), logging.getLogger("open_clip")]
        if tag is None:  # bimors loads the weights itself right after
            for lg in watched:
                lg.addFilter(hide)
        try:
            with quiet_open_clip():
                model = open_clip.create_model(arch, pretrained=tag, force_quick_gelu=quick)
        except RuntimeError as err:
            text = " ".join(str(err).split())
            if "not found" in text.lower() and "config" in text.lower():
                close = [
                    m for m in open_clip.list_models() if m.lower().startswith(name[:5].lower())
                ]
                raise ModelLoadError(
                    f"open_clip has no architecture {name!r}; close ones: "
                    f"{', '.join(close[:8]) or 'none'} (open_clip.list_models() lists all)"
                ) from err
            if "state_dict" in text:
                raise ModelLoadError(
                    f"the {tag!r} weights do not fit open_clip architecture {name!r}: "
                    f"{_short(text, 200)}"
                ) from err
            if tag and "download" in text.lower():
                raise ModelLoadError(offline_weights_advice(name, tag, text)) from err
            raise ModelLoadError(
                f"cannot build open_clip {name!r} / {tag!r}: {_short(text)}"
            ) from err
        except (OSError, ValueError) as err:
            text = " ".join(str(err).split())
            raise ModelLoadError(
                offline_weights_advice(name, tag, f"{type(err).__name__}: {text}")
            ) from err
        finally:
            for lg in watched:
                lg.removeFilter(hide)
        if quick and activation(model) != "quick_gelu":
            raise ModelLoadError(f"open_clip built {name!r} without QuickGELU; refusing to run it")
        return model

    def tokenize(self, texts: list[str]) -> Tensor:
        return self.tokenizer(list(texts), context_length=self.context_length).long()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def encode_image(self, pixels: Tensor) -> ImageFeatures:
        if self.vision_tower is not None and self.vision_depth:
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
            if not getattr(visual.transformer, "batch_first", False):
                tokens = tokens.transpose(0, 1)
        else:  # (B, C, H, W) grid -> (B, 1 + HW, C) with the mean token first, as attnpool sees it
            grid = tokens.flatten(2).transpose(1, 2)
            tokens = torch.cat([grid.mean(dim=1, keepdim=True), grid], dim=1)
        norm = pooled.norm(dim=-1, keepdim=True)
        return ImageFeatures(pooled=pooled / norm, tokens=tokens, norm=norm)

    @property
    def logit_scale(self) -> Tensor:
        return self.model.logit_scale.exp()
