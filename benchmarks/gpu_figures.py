"""GPU figures at the real model sizes, with random weights (no download): one short run.

What it measures, on one CUDA device:

* **captioning**: a BLIP-2 with the FlanT5-XL configuration (ViT-g/14 image
  encoder, 32-query Q-Former, FlanT5-XL) in bfloat16, the paper's 4 beams and a
  forced 16-token budget (``min_new_tokens = max_new_tokens = 16``: random
  weights would otherwise stop at a random length), followed by a bert-base
  caption encoder, through bimors' own :class:`~bimors.captions.captioner.Captioner`
  and :class:`~bimors.captions.encoder.CaptionEncoder`; images/s per batch size;
* **training**: steps/s of every method on a ViT-B/16 CLIP (default settings:
  the image encoder runs every step; bf16 autocast) and with cached image
  features, batch 4 as the papers, 19 PatternNet base classes;
* **evaluation**: images/s per method (batch 100), image encoder included;
* **peak GPU memory** of each part (``torch.cuda.max_memory_allocated``).

Run it as ``python benchmarks/gpu_figures.py --out DIR`` on a GPU machine (about
5 minutes on one H100-class GPU); it writes ``gpu_figures.json`` and
``gpu_figures.md`` under ``DIR`` and prints the table. ``--smoke`` runs the same
code at tiny sizes on any device, which is how the test suite keeps it working.
Random weights cost what trained ones do (same shapes, same token counts), so
the figures are the real cost except for captions' early stopping, which the
forced budget turns into its worst case.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

#: Every method with a per-step cost (the linear probe is fitted in closed form once).
METHODS = (
    "zeroshot", "coop", "cocoop", "clip_adapter", "prograd", "maple", "applenet", "bimors",
)  # fmt: skip


def blip2_config(smoke: bool, vocab: int):
    """BLIP-2 FlanT5-XL's shapes (the hub config of Salesforce/blip2-flan-t5-xl), or tiny."""
    from transformers import Blip2Config

    if smoke:
        vision = dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        )
        qformer = dict(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            encoder_hidden_size=32,
        )
        text = dict(d_model=32, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=16)
        queries = 4
    else:
        vision = dict(
            hidden_size=1408,
            intermediate_size=6144,
            num_hidden_layers=39,
            num_attention_heads=16,
            image_size=224,
            patch_size=14,
        )
        qformer = dict(
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            encoder_hidden_size=1408,
            cross_attention_frequency=2,
        )
        text = dict(
            d_model=2048, d_ff=5120, num_layers=24, num_decoder_layers=24, num_heads=32, d_kv=64
        )
        queries = 32
    text.update(model_type="t5", vocab_size=vocab, feed_forward_proj="gated-gelu",
                tie_word_embeddings=False, decoder_start_token_id=0, pad_token_id=0,
                eos_token_id=1, bos_token_id=1)  # fmt: skip
    # as the hub checkpoint: an image token inside the vocabulary, BOS set in the text config
    return Blip2Config(
        vision_config=vision, qformer_config=qformer, text_config=text, num_query_tokens=queries,
        image_token_index=vocab - 1,
    )  # fmt: skip


def _timed(fn: Callable[[], object], device: torch.device, rounds: int) -> float:
    """Minimum seconds of ``rounds`` calls after one warm-up call."""
    from bimors.perf.flops import sync

    fn()
    best = float("inf")
    for _ in range(rounds):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def caption_figures(device, smoke: bool, batches: list[int], rounds: int) -> list[dict[str, Any]]:
    """Caption + encode images/s per batch size (bf16, 4 beams, forced 16 tokens)."""
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertModel,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
    )

    from bimors.captions.captioner import Captioner, GenerationSettings
    from bimors.captions.encoder import CaptionEncoder
    from bimors.demo.tiny import CLIP_MEAN, CLIP_STD, minilm_path

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tok = AutoTokenizer.from_pretrained(str(minilm_path()))  # bert-base-uncased's vocabulary
    config = blip2_config(smoke, len(tok))
    size = config.vision_config.image_size
    _reset_peak(device)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build the 4B parameters in place, in bf16, on the GPU
    try:
        with torch.device(device):
            model = Blip2ForConditionalGeneration(config).eval().requires_grad_(False)
            bert = BertModel(BertConfig() if not smoke else BertConfig(
                hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
            )).eval().requires_grad_(False)  # fmt: skip
    finally:
        torch.set_default_dtype(default)
    # the worst case of the 16-token budget; BLIP-2's generate hands over to its language
    # model's own generate, whose generation config is the one that counts
    model.language_model.generation_config.min_new_tokens = 16
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(
            size={"height": size, "width": size}, image_mean=list(CLIP_MEAN),
            image_std=list(CLIP_STD),
        ),
        tokenizer=tok,
        num_query_tokens=config.num_query_tokens,
    )  # fmt: skip
    settings = GenerationSettings(num_beams=4, max_new_tokens=16)
    captioner = Captioner(model, processor, "random-blip2-flan-t5-xl", settings)
    encoder = CaptionEncoder(bert, tok, "random-bert-base-uncased")
    params = sum(p.numel() for p in model.parameters())
    generated: list[int] = []  # tokens per caption, as generate returns them
    generate = model.generate

    def counting_generate(*args, **kwargs):
        ids = generate(*args, **kwargs)
        generated.append(ids.shape[1] - 1)  # less the decoder's start token
        return ids

    model.generate = counting_generate
    rng = np.random.default_rng(0)
    out = []
    for batch in batches:
        images = [
            Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
            for _ in range(batch)
        ]

        def step(images=images) -> None:
            encoder.encode(captioner.caption(images))

        try:
            seconds = _timed(step, device, rounds)
        except torch.OutOfMemoryError:
            out.append({"batch": batch, "error": "out of memory"})
            break
        out.append(
            {
                "batch": batch,
                "images_per_s": round(batch / seconds, 2),
                "seconds_per_batch": round(seconds, 3),
                "generated_tokens": generated[-1],
                "peak_gib": _peak_gib(device),
                "captioner_parameters": params,
            }
        )
        print(f"caption batch {batch}: {batch / seconds:.1f} images/s", flush=True)
    return out


def method_figures(device, smoke: bool, rounds: int, methods: list[str]) -> list[dict[str, Any]]:
    """Training steps/s (image encoder every step, and cached) and eval images/s per method."""
    from bimors.perf.workload import BenchOptions, Workload

    out = []
    precision = "bf16" if device.type == "cuda" else "fp32"
    for method in methods:
        row: dict[str, Any] = {"method": method}
        if smoke and method == "maple":  # prompt depth 9 needs the real 12 blocks
            continue
        for cached in (False, True):
            _reset_peak(device)
            opts = BenchOptions(
                shape="tiny" if smoke else "ViT-B/16", method=method, batch=4,
                eval_batch=8 if smoke else 100, precision=precision, cache=cached,
                memory=False, device=str(device), repeats=rounds,
            )  # fmt: skip
            with tempfile.TemporaryDirectory(prefix="bimors-gpu-") as tmp:
                work = Workload(opts, Path(tmp))
                work.prepare()
                trains = bool(work.method.trainable_parameters())
                key = "cached" if cached else "default"
                if trains:
                    s = _timed(lambda w=work: w.train_step(False, image_encoder=False), device,
                               rounds)  # fmt: skip
                    row[f"train_steps_per_s_{key}"] = round(1 / s, 2)
                row[f"train_peak_gib_{key}"] = _peak_gib(device)
                if not cached:
                    s = _timed(lambda w=work: w.eval_step(False), device, rounds)
                    row["eval_images_per_s"] = round(work.eval_batch / s, 1)
                del work
        out.append(row)
        print(f"{method}: {row}", flush=True)
    return out


def markdown(result: dict[str, Any]) -> str:
    sizes = "tiny sizes (--smoke)" if result["smoke"] else "random weights at real sizes"
    lines = [
        f"GPU figures, {result['date']}, {result['device']} ({sizes}; "
        "`python benchmarks/gpu_figures.py`)",
        "",
        "| caption batch | images/s | s/batch | tokens | peak GiB |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in result["captioning"]:
        if "error" in r:
            lines.append(f"| {r['batch']} | {r['error']} | | | |")
        else:
            lines.append(
                f"| {r['batch']} | {r['images_per_s']} | {r['seconds_per_batch']} | "
                f"{r['generated_tokens']} | {r['peak_gib'] or '-'} |"
            )
    lines += [
        "",
        "| method | train steps/s (default) | train steps/s (cached) | eval images/s | "
        "peak GiB (default) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in result["methods"]:
        lines.append(
            f"| {r['method']} | {r.get('train_steps_per_s_default', '-')} | "
            f"{r.get('train_steps_per_s_cached', '-')} | {r.get('eval_images_per_s', '-')} | "
            f"{r.get('train_peak_gib_default') or '-'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("gpu_figures"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    p.add_argument("--caption-batches", default="1,8,32,64", help="comma-separated batch sizes")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (minimum taken)")
    p.add_argument("--skip-captions", action="store_true")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    result: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "device": name or device.type,
        "torch": torch.__version__,
        "smoke": args.smoke,
    }
    start = time.perf_counter()
    batches = [int(b) for b in args.caption_batches.split(",")]
    result["captioning"] = (
        [] if args.skip_captions else caption_figures(device, args.smoke, batches, args.rounds)
    )
    result["methods"] = method_figures(device, args.smoke, args.rounds, args.methods)
    result["seconds"] = round(time.perf_counter() - start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_figures.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (args.out / "gpu_figures.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
