"""A small grid run with and without shared training views: encoder work, wall time, equality.

Runs ``bimors run`` (base-to-new, one seed, frozen-feature methods that need
no captions) on the tiny random-weight CLIP and synthetic scenes twice, in
this process: with ``features.share_views=false`` (every method runs the
image encoder on its training batches) and with the default sharing (the
first method computes each batch's frozen features, the others read them).
Each grid has its own feature folder, so the evaluation cache is filled alike
in both. Prints the image-encoder forwards (calls and images) of training
steps and in all, the wall time of each grid, and checks that the two grids
gave bit-equal results: accuracies and correct counts of every record, every
trained parameter (``torch.equal``) and every epoch's loss.

    python benchmarks/shared_views.py [--work DIR] [--methods coop cocoop ...]
                                      [--epochs 3] [--shots 4] [--image-size 64]
                                      [--share-fields pooled norm layer_means]

Exit status: 0 when the shared grid equals the unshared one and ran the
encoder on fewer training batches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from bimors.backbones.base import FrozenCLIP
from bimors.cli import main
from bimors.engine.trainer import FINAL, Trainer

DEFAULT_METHODS = ["coop", "cocoop", "prograd", "clip_adapter", "applenet"]


class Counter:
    """Image-encoder calls and images, in training steps and in all."""

    def __init__(self) -> None:
        self.calls = self.images = self.step_calls = self.step_images = 0

    def install(self) -> None:
        real_encode, real_step = FrozenCLIP.encode_image, Trainer._step_loss
        counter = self

        def encode(self, pixels):
            counter.calls += 1
            counter.images += len(pixels)
            return real_encode(self, pixels)

        def step(self, data, batch):
            if "pixels" in batch:
                counter.step_calls += 1
                counter.step_images += len(batch["pixels"])
            return real_step(self, data, batch)

        FrozenCLIP.encode_image, Trainer._step_loss = encode, step
        self._restore = (real_encode, real_step)

    def uninstall(self) -> None:
        FrozenCLIP.encode_image, Trainer._step_loss = self._restore


def grid(args, env: dict, out: Path, feats: Path, share: bool) -> tuple[float, Counter]:
    counter = Counter()
    counter.install()
    argv = ["-q", "run", "--protocol", "base2new", "--method", *args.methods]
    argv += ["--dataset", "synthetic", "--root", f"synthetic={env['scenes']}", "--seeds", "1"]
    argv += ["--out", str(out), *env["sets"], "--set", f"features.dir={feats}"]
    argv += ["--set", f"features.share_views={str(share).lower()}"]
    argv += ["--set", f"features.share_fields=[{','.join(args.share_fields)}]"]
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    finally:
        counter.uninstall()
    if code != 0:
        raise SystemExit(f"bimors run failed with status {code}")
    return time.perf_counter() - start, counter


def results(out: Path) -> tuple[dict, dict, dict]:
    records, states, losses = {}, {}, {}
    for path in sorted(out.rglob("results.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            records[(r["method"], r["dataset"], r["split"])] = r
    for path in sorted(out.rglob(FINAL)):
        states[path.parent.parent.name] = torch.load(path, weights_only=False)["state"]
    for path in sorted(out.rglob("metrics.jsonl")):
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        losses[path.parent.parent.name] = [r.get("loss") for r in rows]
    return records, states, losses


def differences(a: Path, b: Path) -> list[str]:
    (ra, sa, la), (rb, sb, lb) = results(a), results(b)
    bad = []
    if ra.keys() != rb.keys() or sa.keys() != sb.keys():
        return ["the grids produced different runs"]
    for k in ra:
        if (ra[k]["accuracy"], ra[k]["correct"]) != (rb[k]["accuracy"], rb[k]["correct"]):
            bad.append(f"accuracy of {k}: {ra[k]['accuracy']} vs {rb[k]['accuracy']}")
    for m in sa:
        for key in sa[m]:
            if not torch.equal(sa[m][key], sb[m][key]):
                bad.append(f"parameter {m}.{key} differs")
    bad += [f"losses of {m} differ" for m in la if la[m] != lb.get(m)]
    return bad


def setup(work: Path, args) -> dict:
    from bimors.data.synthetic import SCENES, generate_scenes
    from bimors.demo.tiny import write_all

    tiny = work / "tiny"
    if not tiny.is_dir():
        write_all(tiny)
    scenes = work / f"scenes-{args.image_size}"
    if not scenes.is_dir():
        generate_scenes(scenes, per_class=12, size=args.image_size, classes=list(SCENES)[:4])
    sets = [
        "backbone.adapter=hf",
        f"backbone.model={tiny / 'clip-hf'}",
        "train.device=cpu",
        f"train.epochs={args.epochs}",
        "train.batch_size=4",
        f"data.shots={args.shots}",
        "data.num_workers=0",
    ]
    return {"scenes": scenes, "sets": [x for s in sets for x in ("--set", s)]}


def main_(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=None, help="keep models and runs here")
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--shots", type=int, default=4)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument(
        "--share-fields",
        nargs="+",
        default=["pooled", "norm"],
        help="features.share_fields (add layer_means to share APPLeNet's too)",
    )
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bimors-shared-views-") as tmp:
        work = args.work or Path(tmp)
        env = setup(work, args)
        stamp = str(time.time_ns())
        plain_out, shared_out = work / f"plain-{stamp}", work / f"shared-{stamp}"
        t_plain, c_plain = grid(args, env, plain_out, work / f"f-plain-{stamp}", False)
        t_shared, c_shared = grid(args, env, shared_out, work / f"f-shared-{stamp}", True)
        bad = differences(plain_out, shared_out)
        print(f"grid: base2new, methods {' '.join(args.methods)}, 1 seed, {args.epochs} epochs")
        print(
            f"{'':10} {'train-step forwards':>20} {'images':>8} {'all forwards':>13} {'wall s':>8}"
        )
        for name, t, c in (("unshared", t_plain, c_plain), ("shared", t_shared, c_shared)):
            print(f"{name:10} {c.step_calls:>20} {c.step_images:>8} {c.calls:>13} {t:>8.1f}")
        ratio = c_plain.step_images / max(c_shared.step_images, 1)
        speed = t_plain / t_shared
        print(f"training-step encoder images: {ratio:.1f}x fewer shared; wall {speed:.2f}x")
        if bad:
            print("NOT EQUAL:\n  " + "\n  ".join(bad))
            return 1
        print("equal: every accuracy, trained parameter (torch.equal) and epoch loss")
        return 0 if c_shared.step_images < c_plain.step_images else 1


if __name__ == "__main__":
    sys.exit(main_())
