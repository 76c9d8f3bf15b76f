"""Data-parallel training on gloo (CPU). ``torchrun --nproc_per_node 2 edgeprune train ...``
sets RANK / WORLD_SIZE / MASTER_ADDR; `from_env` joins that group. Everything else in the
trainer asks a `Dist` for its rank and uses its collectives, which are no-ops on one process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def broadcast_(self, t: torch.Tensor, src: int = 0) -> torch.Tensor:
        """In place: every rank ends with ``src``'s values."""
        if self.enabled:
            dist.broadcast(t, src)
        return t

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def current() -> Dist:
    """The process group this process is in (a one-process Dist when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size())
    return Dist()


def from_env() -> Dist:
    """Join the gloo group torchrun describes in the environment, if there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return current()
