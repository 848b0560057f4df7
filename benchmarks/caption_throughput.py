"""Images per second of the batched caption job against the official one-image loop.

The baseline follows ipankhi/BiMoRS ``gen_caption/gen_caption.py`` step by
step, one image at a time: decode, resize to 224 px, to tensor, min-max
stretch, back to PIL, processor, ``generate``, decode, BERT on the caption
alone, mean over tokens, ``torch.save`` one ``.pt`` file per image. The only
change is ``max_new_tokens`` for its ``max_length``, so both sides generate
the same number of tokens. The batched side is :func:`caption_images` into a
fresh store: read + hash + decode, batched generation, batched encoding, one
SQLite transaction per batch.

Both run in one process on the same tiny random BLIP-2 (``bimors.demo.tiny``) and
the real all-MiniLM-L6-v2 encoder, alternating, ``--repeats`` times; each
side's best time is used, which is the least disturbed by other processes on
a shared machine. Model loading is excluded from both.

    python benchmarks/caption_throughput.py                  # 64 images, batch 16
    python benchmarks/caption_throughput.py --batch-sizes 1 4 16 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from PIL import Image

from bimors.captions.captioner import Captioner, GenerationSettings
from bimors.captions.encoder import CaptionEncoder
from bimors.captions.job import caption_images
from bimors.data.synthetic import SCENES, generate_scenes
from bimors.demo.tiny import minilm_path, write_blip2


@torch.inference_mode()
def reference_loop(
    root: Path, relpaths: list[str], cap: Captioner, enc: CaptionEncoder, out: Path
) -> None:
    """The official script's per-image recipe, on the same models."""
    from torchvision import transforms

    resize = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor()])
    to_pil = transforms.ToPILImage()
    settings = cap.settings
    for rel in relpaths:
        target = out / rel.replace(".png", ".pt")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # the official resume check
            continue
        tensor = resize(Image.open(root / rel).convert("RGB"))
        tensor = (tensor - tensor.min()) / (tensor.max() - tensor.min())
        pixels = cap.processor(images=to_pil(tensor), return_tensors="pt")["pixel_values"]
        ids = cap.model.generate(
            pixel_values=pixels,
            num_beams=settings.num_beams,
            max_new_tokens=settings.max_new_tokens,
            early_stopping=True,
        )
        caption = cap.processor.decode(ids[0], skip_special_tokens=True)
        tokens = enc.tokenizer(caption, return_tensors="pt")
        vector = enc.model(**tokens).last_hidden_state.mean(dim=1)
        torch.save(vector.cpu(), target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64, help="images (a multiple of 8)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="bimors-bench-") as tmp:
        tmp = Path(tmp)
        classes = list(SCENES)[:8]
        root = generate_scenes(tmp / "scenes", args.images // len(classes), args.size, 0, classes)
        relpaths = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
        cap = Captioner.from_pretrained(str(write_blip2(tmp / "blip2")), GenerationSettings())
        enc = CaptionEncoder.from_pretrained(str(minilm_path()))
        cap.caption([Image.open(root / relpaths[0])])  # warm up both models once
        enc.encode(["warm up"])

        times: dict[str, list[float]] = {"reference": []}
        for bs in args.batch_sizes:
            times[f"batch {bs}"] = []
        for r in range(args.repeats):
            start = time.perf_counter()
            reference_loop(root, relpaths, cap, enc, tmp / f"ref{r}")
            times["reference"].append(time.perf_counter() - start)
            for bs in args.batch_sizes:
                store = tmp / f"store-{bs}-{r}.sqlite"
                start = time.perf_counter()
                caption_images(root, relpaths, store, cap, enc, bs, progress=False).close()
                times[f"batch {bs}"].append(time.perf_counter() - start)

    n = len(relpaths)
    base = min(times["reference"])
    print(
        f"{n} images of {args.size} px, tiny BLIP-2 + all-MiniLM-L6-v2, beam "
        f"{cap.settings.num_beams}, {cap.settings.max_new_tokens} new tokens, "
        f"{torch.get_num_threads()} torch threads, best of {args.repeats}"
    )
    print(f"{'':22s} {'img/s':>8s} {'median img/s':>13s} {'speed-up':>9s}")
    for name, ts in times.items():
        label = "reference loop" if name == "reference" else f"batched job, {name}"
        print(
            f"{label:22s} {n / min(ts):8.1f} {n / statistics.median(ts):13.1f} "
            f"{base / min(ts):8.2f}x"
        )


if __name__ == "__main__":
    main()
