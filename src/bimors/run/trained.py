"""Loading a finished run back: its config, backbone and method with the learned state.

Shared by ``bimors eval`` and ``bimors predict`` (and the Python API in
:mod:`bimors.run.predict`): the checkpoint is read strictly and must match the
run's method; the run's bimors version must match unless allowed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bimors.backbones import load_backbone
from bimors.backbones.base import FrozenCLIP
from bimors.core.errors import CheckpointError
from bimors.engine.checkpoint import load_into, read_checkpoint
from bimors.engine.dist import Dist
from bimors.engine.rundir import RunDir, check_run_version
from bimors.methods import Method, build_method
from bimors.run.config import RunConfig


@dataclasses.dataclass
class TrainedRun:
    run: RunDir | None  # None when loaded from an export (bimors.run.export)
    cfg: RunConfig
    meta: dict
    backbone: FrozenCLIP
    method: Method
    classnames: list[str]  # the prompt names the method was trained on


def load_trained(
    run_dir: str | Path,
    device: str = "auto",
    allow_other_version: bool = False,
    backbone: FrozenCLIP | None = None,
) -> TrainedRun:
    """Rebuild the run's backbone and method and load its checkpoint strictly."""
    run = RunDir(run_dir)
    meta = check_run_version(run, allow_other_version)
    cfg = RunConfig.from_dict(run.config())
    if meta.get("method") != cfg.method:
        raise CheckpointError(
            f"{run.path}: meta.json says {meta.get('method')!r}, config says {cfg.method!r}"
        )
    if not run.checkpoint.is_file():
        raise CheckpointError(f"{run.path} has no checkpoint.pt: the run has not finished training")
    payload = read_checkpoint(run.checkpoint)
    dist = Dist(device)
    if backbone is None:
        backbone = load_backbone(
            cfg.backbone.adapter,
            cfg.backbone.model,
            cfg.backbone.pretrained,
            cfg.backbone.activation,
        )
    backbone = backbone.to(dist.device)
    caption = payload["state"].get("caption_proj.weight")
    method = build_method(
        cfg.method,
        backbone,
        payload["classnames"],
        cfg.method_params,
        int(caption.shape[1]) if caption is not None else None,
        names=None,  # the checkpoint holds the prompt names it was trained on
    )
    load_into(method, payload, str(run.checkpoint))
    method.eval()
    return TrainedRun(run, cfg, meta, backbone, method, list(payload["classnames"]))
