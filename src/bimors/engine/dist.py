"""Processes and devices through accelerate: one code path for 1 CPU, 1 GPU or N GPUs.

Under ``accelerate launch`` each process trains on its own shard of the
training images (``train.batch_size`` images per process and step, so the
effective batch grows with the number of processes) and DDP averages the
gradients of the trainable parameters; evaluation shards the
images by rank and sums per-class counts across processes, so the accuracy is
exactly that of one process. Without a launcher everything reduces to a single
process on the chosen device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from typing import TypeVar

import torch
from torch import nn

logger = logging.getLogger(__name__)

T = TypeVar("T")


def check_device(device: str, field: str = "train.device") -> None:
    """Refuse, naming ``field``, a device that is no device name or is not on this machine."""
    from bimors.core.errors import ConfigError

    if device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"{field}={device!r} is not a device; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(
                f"{field}={device!r}: this machine has no CUDA device; use auto or cpu"
            )
        if dev.index is not None and dev.index >= n:
            raise ConfigError(
                f"{field}={device!r}: this machine has {n} CUDA device(s) (0..{n - 1})"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{field}={device!r}: MPS is not available here; use auto or cpu")


class Dist:
    """The process group and device of this run.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``. Under a multi-process
            launch the device is the one accelerate assigns to this rank.
    """

    def __init__(self, device: str = "auto") -> None:
        check_device(device, "device")
        self.requested = device

    @cached_property
    def accelerator(self):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        # The class prompts are frozen buffers: no need to broadcast them every step.
        ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
        return Accelerator(cpu=self.requested == "cpu", kwargs_handlers=[ddp])

    @property
    def world_size(self) -> int:
        return self.accelerator.num_processes if self._launched else 1

    @property
    def rank(self) -> int:
        return self.accelerator.process_index if self._launched else 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @cached_property
    def _launched(self) -> bool:
        import os

        return int(os.environ.get("WORLD_SIZE", "1")) > 1

    @cached_property
    def device(self) -> torch.device:
        if self._launched:
            return self.accelerator.device
        if self.requested == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.requested)

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` wrapped for gradient averaging across processes (unchanged for one)."""
        if self.world_size == 1:
            return model
        return self.accelerator.prepare_model(model)

    def shard(self, n: int) -> list[int]:
        """This rank's indices of ``range(n)`` (strided, so shards differ by at most one)."""
        return list(range(self.rank, n, self.world_size))

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Element-wise sum of ``tensor`` over processes."""
        if self.world_size == 1:
            return tensor
        return self.accelerator.reduce(tensor.to(self.device), reduction="sum").cpu()

    def all_finite(self, value: torch.Tensor) -> bool:
        """Whether ``value`` is finite on every process.

        A step skipped (or a run stopped) on one rank only would leave the others
        waiting in DDP's gradient all-reduce, so the decision is taken together.
        """
        bad = torch.tensor([0.0 if bool(torch.isfinite(value).all()) else 1.0])
        return float(self.sum(bad)) == 0.0

    def barrier(self) -> None:
        if self.world_size > 1:
            self.accelerator.wait_for_everyone()

    def on_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run by the main process only, its result handed to every process.

        For work with side effects on shared files (creating a run directory):
        if every rank did it they would race, one rank seeing the other's
        half-made folder. An error on the main process is raised on every rank,
        so no process is left waiting in a collective for one that has exited.
        """
        if self.world_size == 1:
            return fn()
        import torch.distributed as tdist

        box: list[object] = [None]
        error: BaseException | None = None
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except BaseException as err:  # re-raised below, after every rank knows
                error = err
                box[0] = ("error", f"{type(err).__name__}: {err}")
        tdist.broadcast_object_list(box, src=0)
        kind, value = box[0]  # type: ignore[misc]
        if error is not None:
            raise error
        if kind == "error":
            from bimors.core.errors import BimorsError

            raise BimorsError(f"the main process failed: {value}")
        return value  # type: ignore[return-value]
