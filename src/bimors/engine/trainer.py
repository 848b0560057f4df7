"""The one trainer for every method.

SGD over the method's trainable parameters (always float32), the reference
schedule stepped per epoch, optional bf16/fp16 autocast, a non-finite loss
either stopping the run with the step named or skipping the step when asked.
Model selection never sees test data: the last epoch, or the best epoch on
val when ``selection: val``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from bimors.engine.checkpoint import save_checkpoint
from bimors.engine.data import TaskData
from bimors.engine.evaluator import evaluate
from bimors.engine.features import FeatureSource
from bimors.engine.precision import autocast, grad_scaler
from bimors.engine.schedule import lr_at_epoch
from bimors.errors import BimorsError
from bimors.methods.base import Method
from bimors.run_config import TrainConfig

logger = logging.getLogger(__name__)


class NonFiniteLossError(BimorsError, FloatingPointError):
    """The loss became NaN or infinite."""


@dataclasses.dataclass
class TrainResult:
    epochs_run: int
    steps: int
    skipped_steps: int
    final_loss: float
    selection: str  # "last" or "val"
    selected_epoch: int
    history: list[dict[str, Any]]


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


class Trainer:
    """Train ``method`` with ``cfg``; writes metrics and checkpoints under ``out_dir`` if given."""

    def __init__(
        self,
        method: Method,
        cfg: TrainConfig,
        out_dir: str | Path | None = None,
        run_config: dict[str, Any] | None = None,
        num_workers: int = 0,
        progress: bool = False,
        features: FeatureSource | None = None,
    ) -> None:
        self.method = method
        self.features = features if features is not None else FeatureSource()
        self.cfg = cfg
        self.out_dir = Path(out_dir) if out_dir else None
        self.run_config = run_config or {}
        self.num_workers = num_workers
        self.progress = progress
        self.device = method.backbone.device
        params = method.trainable_parameters()
        for p in params:
            if p.dtype != torch.float32:
                raise TypeError(
                    "trainable parameters must be float32 (autocast handles low precision)"
                )
        self.optimizer = (
            torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
            if params
            else None
        )
        self.scaler = grad_scaler(self.device, cfg.precision)

    def _log(self, row: dict[str, Any]) -> None:
        logger.info("epoch %d: %s", row["epoch"], {k: v for k, v in row.items() if k != "epoch"})
        if self.out_dir:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

    def fit(self, train: TaskData, val: TaskData | None = None) -> TrainResult:
        """Train for ``cfg.epochs`` epochs on ``train``; ``val`` is used only for selection."""
        cfg, method = self.cfg, self.method
        if self.optimizer is None:
            logger.info("method %s has nothing to train; skipping training", method.name)
            return TrainResult(0, 0, 0, float("nan"), "last", -1, [])
        if cfg.selection == "val" and val is None:
            raise ValueError("train.selection=val needs a validation split")
        seed_everything(cfg.seed, cfg.deterministic)
        method.set_classnames(train.classnames)
        loader = self.features.loader(
            method,
            train,
            cfg.batch_size,
            True,
            seed=cfg.seed,
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            precision=cfg.precision,
        )
        history: list[dict[str, Any]] = []
        steps = skipped = 0
        best_acc, best_epoch, best_state = -math.inf, -1, None
        loss_value = float("nan")
        for epoch in range(cfg.epochs):
            lr = lr_at_epoch(epoch, cfg.lr, cfg.epochs, cfg.warmup_epochs, cfg.warmup_lr)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            method.train()
            self.features.start_epoch(epoch)
            total, correct, loss_sum, n_batches = 0, 0, 0.0, 0
            bar = tqdm(
                loader,
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                disable=not self.progress,
                leave=False,
            )
            for batch in bar:
                steps += 1
                loss, logits, labels = self._step_loss(train, batch)
                if not torch.isfinite(loss):
                    if cfg.nonfinite == "stop":
                        raise NonFiniteLossError(
                            f"loss is {loss.item()} at epoch {epoch + 1}, step {steps}; lower "
                            "train.lr, use train.precision=fp32, or set train.nonfinite=skip "
                            "to skip such steps"
                        )
                    skipped += 1
                    self.optimizer.zero_grad(set_to_none=True)
                    continue
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                loss_value = float(loss.detach())
                loss_sum += loss_value
                n_batches += 1
                total += labels.numel()
                correct += int((logits.detach().argmax(-1) == labels).sum())
            row = {
                "epoch": epoch + 1,
                "lr": lr,
                "loss": loss_sum / max(n_batches, 1),
                "train_acc": 100.0 * correct / max(total, 1),
                "skipped_steps": skipped,
            }
            if val is not None and cfg.selection == "val":
                acc = evaluate(
                    method,
                    val,
                    cfg.eval_batch_size,
                    cfg.precision,
                    self.num_workers,
                    features=self.features,
                ).accuracy
                method.set_classnames(train.classnames)
                row["val_acc"] = acc
                if acc > best_acc:
                    best_acc, best_epoch, best_state = acc, epoch + 1, method.method_state_dict()
            history.append(row)
            self._log(row)
        selected = cfg.epochs
        if cfg.selection == "val" and best_state is not None:
            method.load_method_state_dict(best_state, "best-on-val state")
            selected = best_epoch
        if self.out_dir:
            save_checkpoint(
                self.out_dir / "checkpoint.pt",
                method,
                self.run_config,
                epoch=cfg.epochs,
                selected_epoch=selected,
                selection=cfg.selection,
            )
        return TrainResult(cfg.epochs, steps, skipped, loss_value, cfg.selection, selected, history)

    def _step_loss(
        self, data: TaskData, batch: dict
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        labels = batch["label"].to(self.device, non_blocking=True)
        caps = data.captions[batch["index"]].to(self.device) if data.captions is not None else None
        with autocast(self.device, self.cfg.precision):
            feats = self.features.image_features(self.method, batch, self.device)
            logits = self.method(feats, caps)
            loss = self.method.loss(logits.float(), labels)
        return loss, logits, labels
