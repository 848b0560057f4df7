"""The one trainer for every method.

SGD over the method's trainable parameters (always float32), the reference
schedule stepped per epoch, optional bf16/fp16 autocast, a non-finite loss
either stopping the run with the step named or skipping the step when asked.
Model selection never sees test data: the last epoch, or the best epoch on
val when ``selection: val``.

With an output folder the trainer writes ``metrics.jsonl`` and TensorBoard
events every epoch, ``last.pt`` (everything needed to resume) after every
epoch, and ``checkpoint.pt`` (the selected model) at the end. Because each
epoch's data order and augmentation depend only on (seed, epoch), a run
resumed from ``last.pt`` ends exactly where an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bimors.core import atomic
from bimors.core.errors import BimorsError, CheckpointError
from bimors.core.progress import eta, progress
from bimors.core.stop import StopFlag, stop_on_signals, test_pause
from bimors.engine.checkpoint import read_checkpoint, save_checkpoint
from bimors.engine.config import TrainConfig
from bimors.engine.data import TaskData
from bimors.engine.dist import Dist
from bimors.engine.evaluator import evaluate
from bimors.engine.extract import fit_closed_form
from bimors.engine.features import FeatureSource
from bimors.engine.precision import autocast, grad_scaler
from bimors.engine.rundir import material
from bimors.engine.schedule import lr_at_epoch
from bimors.methods.base import Method

logger = logging.getLogger(__name__)

LAST = "last.pt"
FINAL = "checkpoint.pt"


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """``train.optimizer``: SGD with momentum (Dassl's), AdamW (CLIP-LoRA's) or Adam with
    L2 weight decay (Dassl's ``adam``, TaskRes's), betas ``train.betas``."""
    if cfg.optimizer == "adam":
        betas = (cfg.betas[0], cfg.betas[1])
        return torch.optim.Adam(params, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(
            params, lr=cfg.lr, betas=(cfg.betas[0], cfg.betas[1]), weight_decay=cfg.weight_decay
        )
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


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
    resumed_from: int = 0  # epochs already done when this call started


def set_determinism(deterministic: bool) -> None:
    """Ask torch for deterministic kernels (slower; needed for bit-exact resume on GPU)."""
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
        dist: Dist | None = None,
        features: FeatureSource | None = None,
    ) -> None:
        self.method = method
        self.features = features if features is not None else FeatureSource()
        self.cfg = cfg
        self.out_dir = Path(out_dir) if out_dir else None
        self.run_config = run_config or {}
        self.num_workers = num_workers
        self.progress = progress
        self.dist = dist or Dist("cpu" if method.backbone.device.type == "cpu" else "auto")
        self.device = method.backbone.device
        params = method.trainable_parameters()
        for p in params:
            if p.dtype != torch.float32:
                raise TypeError(
                    "trainable parameters must be float32 (autocast handles low precision)"
                )
        self.optimizer = make_optimizer(params, cfg) if params else None
        #: Keep ``last.pt`` after training (the caller removes it once results are
        #: written, so a kill during evaluation resumes after the last epoch).
        self.keep_last = False
        self.scaler = grad_scaler(self.device, cfg.precision)
        self.model = self.dist.wrap(method) if params else method

    # -- state for resume -------------------------------------------------------------------
    def _state(
        self,
        epoch: int,
        steps: int,
        skipped: int,
        history: list,
        best: dict,
        in_epoch: dict | None = None,
    ) -> dict:
        return {
            "in_epoch": in_epoch,
            "epoch": epoch,
            "steps": steps,
            "skipped": skipped,
            "history": history,
            "best": best,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "method": self.method.resume_state(),
        }

    def _resume(self) -> dict | None:
        if not self.out_dir or not (self.out_dir / LAST).is_file():
            return None
        payload = read_checkpoint(self.out_dir / LAST)
        saved = payload.get("config", {}).get("train")
        now = dataclasses.asdict(self.cfg)
        if saved is not None and material({"train": saved}) != material({"train": now}):
            raise CheckpointError(
                f"{self.out_dir / LAST} was written with other training settings; "
                "resume with the same config, or start a new run directory"
            )
        self.method.load_method_state_dict(payload["state"], str(self.out_dir / LAST))
        trainer = payload["trainer"]
        self.optimizer.load_state_dict(trainer["optimizer"])
        self.scaler.load_state_dict(trainer["scaler"])
        self.method.load_resume_state(trainer.get("method") or {})
        logger.info("resuming %s after epoch %d", self.out_dir, trainer["epoch"])
        return trainer

    def _write_epoch(self, row: dict, history: list) -> None:
        steps_per_s, left_s = getattr(self, "_pace", (0.0, 0.0))
        logger.info("%s", epoch_line(row, self.cfg.epochs, steps_per_s, left_s))
        if not (self.out_dir and self.dist.is_main):
            return
        atomic.write_jsonl(self.out_dir / "metrics.jsonl", history)
        writer = self._tensorboard(row["epoch"])
        if writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    writer.add_scalar(key, value, row["epoch"])
            writer.flush()

    def _tensorboard(self, epoch: int):
        if not hasattr(self, "_tb"):
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out_dir / "tb"), purge_step=epoch)
            except ImportError:  # tensorboard is optional at run time
                logger.warning("tensorboard is not installed; metrics go to metrics.jsonl only")
                self._tb = None
        return self._tb

    # -- training -----------------------------------------------------------------------------
    def fit(self, train: TaskData, val: TaskData | None = None, resume: bool = True) -> TrainResult:
        """Train for ``cfg.epochs`` epochs on ``train``; ``val`` is used only for selection."""
        method = self.method
        if method.closed_form:
            return self._fit_closed_form(train, val)
        if self.optimizer is None:
            return self._fit_nothing(train)
        with stop_on_signals() as flag:
            return self._fit_sgd(train, val, resume, flag)

    def _fit_sgd(
        self, train: TaskData, val: TaskData | None, resume: bool, flag: StopFlag
    ) -> TrainResult:
        """The SGD loop; a stop signal ends it between two steps with ``last.pt`` written."""
        cfg, method = self.cfg, self.method
        if cfg.selection == "val" and val is None:
            raise ValueError("train.selection=val needs a validation split")
        set_determinism(cfg.deterministic)
        method.set_classnames(train.classnames)
        state = self._resume() if resume else None
        start = state["epoch"] if state else 0
        steps = state["steps"] if state else 0
        skipped = state["skipped"] if state else 0
        history: list[dict[str, Any]] = state["history"] if state else []
        best: dict[str, Any] = (
            state["best"] if state else {"acc": -math.inf, "epoch": 0, "state": None}
        )
        loss_value = history[-1]["loss"] if history else float("nan")
        began = time.monotonic()
        position = state.get("in_epoch") if state else None  # stopped inside an epoch
        for epoch in range(start, cfg.epochs):
            lr = lr_at_epoch(epoch, cfg.lr, cfg.epochs, cfg.warmup_epochs, cfg.warmup_lr)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            method.train()
            loader = self.features.train_loader(
                method,
                train,
                cfg.batch_size,
                cfg.seed,
                epoch,
                self.dist,
                self.num_workers,
                self.device.type == "cuda",
                cfg.precision,
            )
            total, correct, loss_sum, n_batches = 0, 0, 0.0, 0
            done = 0  # batches of this epoch already trained (a resumed position skips them)
            if position is not None:
                done, total, correct = position["batches"], position["total"], position["correct"]
                loss_sum, n_batches = position["loss_sum"], position["n_batches"]
            bar = progress(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", enabled=self.progress)
            for i, batch in enumerate(bar):
                if i < done:
                    continue
                if position is not None:  # the global RNGs where the stopped run left them
                    set_rng_state(position["rng"])
                    position = None
                test_pause(steps)
                if flag.requested:
                    at = {"batches": i, "total": total, "correct": correct}
                    at |= {"loss_sum": loss_sum, "n_batches": n_batches, "rng": rng_state()}
                    self._save_last(epoch, steps, skipped, history, best, at)
                    flag.check(f"epoch {epoch + 1}, step {steps}")
                steps += 1
                loss, logits, labels = self._step_loss(train, batch)
                if not self.dist.all_finite(loss.detach()):
                    if cfg.nonfinite == "stop":
                        raise NonFiniteLossError(
                            f"loss is {loss.item()} (on this or another process) at epoch "
                            f"{epoch + 1}, step {steps}; lower "
                            "train.lr, use train.precision=fp32, or set train.nonfinite=skip "
                            "to skip such steps"
                        )
                    skipped += 1
                    self.optimizer.zero_grad(set_to_none=True)
                    continue
                self.optimizer.zero_grad(set_to_none=True)
                method.backward(loss, self.scaler)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                loss_value = float(loss.detach())
                loss_sum += loss_value
                n_batches += 1
                total += labels.numel()
                correct += int((logits.detach().argmax(-1) == labels).sum())
            method.on_epoch_end(epoch, cfg.epochs)
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
                    dist=self.dist,
                    features=self.features,
                ).accuracy
                method.set_classnames(train.classnames)
                row["val_acc"] = acc
                if acc > best["acc"]:
                    best = {"acc": acc, "epoch": epoch + 1, "state": method.method_state_dict()}
            if position is not None:  # stopped after the epoch's last step
                set_rng_state(position["rng"])
                position = None
            history.append(row)
            self._save_last(epoch + 1, steps, skipped, history, best)
            epochs_run = epoch + 1 - start
            per_epoch = (time.monotonic() - began) / epochs_run
            self._pace = (
                n_batches / per_epoch if per_epoch else 0.0,
                per_epoch * (cfg.epochs - epoch - 1),
            )
            self._write_epoch(row, history)
            if epoch + 1 < cfg.epochs:
                flag.check(f"epoch {epoch + 1}, step {steps}")
        method.finish_training()
        selected = cfg.epochs
        if cfg.selection == "val" and best["state"] is not None:
            method.load_method_state_dict(best["state"], "best-on-val state")
            selected = best["epoch"]
        if self.out_dir and self.dist.is_main:
            save_checkpoint(
                self.out_dir / FINAL,
                method,
                self.run_config,
                epoch=cfg.epochs,
                selected_epoch=selected,
                selection=cfg.selection,
            )
            if not self.keep_last:
                (self.out_dir / LAST).unlink(missing_ok=True)
        if getattr(self, "_tb", None) is not None:
            self._tb.close()
        self.dist.barrier()
        return TrainResult(
            cfg.epochs, steps, skipped, loss_value, cfg.selection, selected, history, start
        )

    def _save_last(
        self,
        epoch: int,
        steps: int,
        skipped: int,
        history: list,
        best: dict,
        in_epoch: dict | None = None,
    ) -> None:
        if self.out_dir and self.dist.is_main:
            save_checkpoint(
                self.out_dir / LAST,
                self.method,
                self.run_config,
                trainer=self._state(epoch, steps, skipped, history, best, in_epoch),
            )

    def _save_unlooped(self, selection: str) -> None:
        """``checkpoint.pt`` of a run without an SGD loop (epoch 0), by the main process."""
        if self.out_dir and self.dist.is_main:
            save_checkpoint(
                self.out_dir / FINAL,
                self.method,
                self.run_config,
                epoch=0,
                selected_epoch=0,
                selection=selection,
            )

    def _fit_nothing(self, train: TaskData) -> TrainResult:
        """A method with nothing to train (zero-shot CLIP): still a finished run.

        Its ``checkpoint.pt`` holds no weights but the class names and config, so
        ``bimors eval``, ``bimors predict`` and ``Predictor.from_run`` treat a
        zero-shot run like any other.
        """
        logger.info("method %s has nothing to train; skipping training", self.method.name)
        self.method.set_classnames(train.classnames)
        self._save_unlooped("last")
        self.dist.barrier()
        return TrainResult(0, 0, 0, float("nan"), "last", 0, [])

    def _fit_closed_form(self, train: TaskData, val: TaskData | None) -> TrainResult:
        """A method fitted on frozen features (``Method.closed_form``): no SGD loop.

        Every rank fits on the same features (:func:`fit_closed_form` assembles
        them across processes), so all ranks hold identical weights; the main
        process writes ``metrics.jsonl`` and ``checkpoint.pt`` as for any method.
        A fit is cheap and atomic, so there is no ``last.pt`` to resume from.
        """
        set_determinism(self.cfg.deterministic)
        torch.manual_seed(self.cfg.seed)
        info = fit_closed_form(
            self.method,
            train,
            val,
            self.cfg,
            self.num_workers,
            self.progress,
            self.dist,
            self.features,
        )
        row = {"epoch": 0, **info}
        history = [row]
        self._write_epoch(row, history)
        selection = "val" if val is not None else "last"
        self._save_unlooped(selection)
        if getattr(self, "_tb", None) is not None:
            self._tb.close()
        self.dist.barrier()
        return TrainResult(0, 0, 0, float("nan"), selection, 0, history)

    def _step_loss(
        self, data: TaskData, batch: dict
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        labels = batch["label"].to(self.device, non_blocking=True)
        caps = data.captions[batch["index"]].to(self.device) if data.captions is not None else None
        with autocast(self.device, self.cfg.precision):
            feats = self.features.image_features(self.method, batch, self.device)
            logits = self.model(feats, caps)
            loss = self.method.loss(logits.float(), labels)
        return loss, logits, labels


def epoch_line(row: dict, epochs: int, steps_per_s: float, left_s: float) -> str:
    """One complete log line per epoch: what a log file shows instead of a bar.

    A closed-form fit has one row (epoch 0) with its own fields: they are listed.
    """
    if "loss" not in row or not row.get("epoch"):
        fields = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in row.items()
            if k != "epoch"
        )
        return f"fit: {fields}"
    parts = [f"loss {row['loss']:.4f}", f"train acc {row['train_acc']:.2f}%"]
    if "val_acc" in row:
        parts.append(f"val acc {row['val_acc']:.2f}%")
    if row.get("skipped_steps"):
        parts.append(f"{row['skipped_steps']} skipped steps")
    parts.append(f"lr {row['lr']:.3g}")
    parts.append(f"{steps_per_s:.2f} steps/s, ETA {eta(left_s)}")
    return f"epoch {row['epoch']}/{epochs}: " + ", ".join(parts)


def rng_state() -> dict[str, Any]:
    """The global RNGs' states (torch, NumPy, random), saved with a mid-epoch position."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": [
            torch.from_numpy(x.astype(np.int64)) if isinstance(x, np.ndarray) else x
            for x in np.random.get_state()
        ],  # a tensor, since checkpoints are read with weights_only
        "random": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Put the global RNGs back where :func:`rng_state` saw them."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(
        tuple(x.numpy().astype(np.uint32) if torch.is_tensor(x) else x for x in state["numpy"])
    )
    random.setstate(state["random"])
