"""Run under ``accelerate launch`` by ``test_a_rank_failing_alone_ends_the_launch``.

Rank 1 runs a ``bimors`` command that fails; rank 0 meanwhile waits in a
collective the failed rank never joins (as a rank building DDP would). The
failed process must exit at once, so that the launcher stops the other one,
instead of waiting for it at a barrier.
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as tdist

from bimors import cli
from bimors.engine.dist import Dist


def main() -> int:
    dist = Dist("cpu")
    dist.barrier()  # both processes have joined the group
    if dist.rank == 0:
        tdist.broadcast(torch.zeros(1), src=1)  # rank 1 never sends: waits until stopped
        return 0
    return cli.main(["report", "/nonexistent/rank-1-fails-alone"])


if __name__ == "__main__":
    sys.exit(main())
