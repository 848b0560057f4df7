"""The one collective a method's own ``backward`` needs: averaging gradients DDP does not see.

It lives with the methods, not in :mod:`bimors.engine.dist`, because methods sit
below the engine: a method may not import the trainer's process handling.
"""

from __future__ import annotations

import torch


def average_across_processes(tensors: list[torch.Tensor | None]) -> None:
    """Average ``tensors`` in place over the processes of the current group (no-op for one).

    For gradients DDP does not see: it averages only what ``backward`` accumulates
    into ``.grad``, not what ``torch.autograd.grad`` returns (ProGrad's teacher
    gradient). Every rank must pass the same list shape (None in the same places).
    """
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized()):
        return
    world = tdist.get_world_size()
    if world == 1:
        return
    for t in tensors:
        if t is not None:
            tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
            t.div_(world)
