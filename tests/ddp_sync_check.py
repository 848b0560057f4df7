"""Run under ``accelerate launch`` by ``test_every_sgd_method_stays_in_sync_across_ranks``.

Trains every SGD method for one epoch on two processes with the one trainer,
then compares each rank's trainable weights: DDP must leave them identical,
whatever a method does outside the wrapped forward (MaPLe's image prompts,
ProGrad's teacher gradient, BiMoRS's caption projection). Then a loss that is
non-finite on one rank only, every other step: with ``nonfinite=skip`` both
ranks must skip the same steps (a one-sided skip leaves the other rank waiting
forever in the gradient all-reduce). Exits non-zero on a mismatch, naming the
method and the weights.

Usage: python ddp_sync_check.py CLIP_DIR SCENES_DIR
"""

from __future__ import annotations

import hashlib
import sys

import torch
import torch.distributed as tdist

from bimors.backbones import load_backbone
from bimors.data.images import ImageDataset
from bimors.data.synthetic import SyntheticScenes
from bimors.data.transforms import build_transform
from bimors.engine.data import TaskData
from bimors.engine.dist import Dist
from bimors.engine.trainer import Trainer
from bimors.methods import METHODS, build_method
from bimors.protocols.base2new import base2new_tasks
from bimors.run.config import TrainConfig

PARAMS = {  # the tiny CLIP has 2 blocks per encoder
    "maple": {"prompt_depth": 2},
    "tcp": {"layer": 1},
    "ivlp": {"prompt_depth_text": 2, "prompt_depth_vision": 2},
    "promptsrc": {"prompt_depth_text": 2, "prompt_depth_vision": 2},
}


def digest(method) -> dict[str, str]:
    return {
        name: hashlib.sha256(p.detach().float().cpu().numpy().tobytes()).hexdigest()
        for name, p in method.own_parameters()
        if p.requires_grad
    }


def main(clip_dir: str, scenes: str) -> int:
    dist = Dist("cpu")
    backbone = load_backbone("hf", clip_dir).to(dist.device)
    dataset = SyntheticScenes(scenes)
    task = base2new_tasks(dataset.split(), shots=4, seed=1, dataset=dataset.name).train
    images = ImageDataset(
        dataset.image_root, task.samples, build_transform(backbone.preprocess, True)
    )
    captions = torch.randn(len(task.samples), 16, generator=torch.Generator().manual_seed(0))
    data = TaskData(images, dataset.prompt_names(task.classnames), captions)
    cfg = TrainConfig(epochs=1, batch_size=4, device="cpu", warmup_epochs=0)
    failures = []
    for name in METHODS.names():
        if METHODS.get(name).closed_form:
            continue  # fitted identically on every rank: tested on its own
        torch.manual_seed(0)  # the same initial weights on every rank
        method = build_method(name, backbone, data.classnames, PARAMS.get(name), caption_dim=16)
        if not any(p.requires_grad for _, p in method.own_parameters()):
            continue  # nothing to train (zero-shot CLIP)
        before = digest(method)
        Trainer(method, cfg, dist=dist).fit(data)
        mine = digest(method)
        everyone: list[dict[str, str] | None] = [None] * dist.world_size
        tdist.all_gather_object(everyone, mine)
        differ = sorted(k for k in mine if any(d[k] != mine[k] for d in everyone))  # type: ignore[index]
        if differ:
            failures.append(f"{name}: ranks disagree on {', '.join(differ)}")
        if mine == before:
            failures.append(f"{name}: no trainable weight changed")
    failures += one_sided_nan(backbone, data, cfg, dist)
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    return 0


def one_sided_nan(backbone, data: TaskData, cfg: TrainConfig, dist: Dist) -> list[str]:
    torch.manual_seed(0)
    method = build_method("coop", backbone, data.classnames)
    plain_loss, calls = method.loss, [0]

    def loss(logits, labels):
        calls[0] += 1
        value = plain_loss(logits, labels)
        return value * float("nan") if dist.rank == 1 and calls[0] % 2 else value

    method.loss = loss  # type: ignore[method-assign]
    skip = TrainConfig(**{**cfg.__dict__, "nonfinite": "skip"})
    result = Trainer(method, skip, dist=dist).fit(data)
    everyone: list[tuple[int, str] | None] = [None] * dist.world_size
    tdist.all_gather_object(everyone, (result.skipped_steps, str(sorted(digest(method).items()))))
    skipped = {e[0] for e in everyone}  # type: ignore[index]
    if len(skipped) != 1 or skipped == {0}:
        return [f"one-sided non-finite loss: skipped steps per rank {everyone}"]
    if len({e[1] for e in everyone}) != 1:  # type: ignore[index]
        return ["one-sided non-finite loss: ranks disagree on the weights"]
    return []


if __name__ == "__main__":
    code = main(*sys.argv[1:3])
    tdist.barrier()
    tdist.destroy_process_group()  # gloo may abort at interpreter exit otherwise
    sys.exit(code)
