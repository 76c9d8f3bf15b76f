"""Seeded batching over in-memory tensors, with augmentation vectorised over the batch.

No DataLoader and no worker processes: on a 2-core machine the model is the bottleneck, and a
batch is a tensor slice. Every random choice comes from a generator seeded by
``(seed, epoch)`` (the shuffle, identical on every rank) or ``(seed, epoch, rank)`` (the
augmentation), so a run resumed at an epoch boundary sees exactly the batches an
uninterrupted run would.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from edgeprune.data.base import Augment, ImageSet


def generator(*key: int) -> torch.Generator:
    """A CPU generator seeded by a tuple of small integers (seed, epoch, rank, stream)."""
    seed = 0x9E3779B97F4A7C15
    for k in key:
        seed = (seed * 0x100000001B3 ^ (int(k) + 0x7F4A7C15)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


def augment_batch(x: torch.Tensor, aug: Augment, gen: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding ``aug.pad``) and horizontal flip, per sample, as one gather.

    x: float (N, C, H, W) in [0, 1] (padding with 0 is black, as torchvision's RandomCrop).
    Each output pixel (y, x) of sample i reads padded pixel (oy_i + y, ox_i + x), or
    (oy_i + y, ox_i + W - 1 - x) when sample i is flipped."""
    n, c, h, w = x.shape
    p = aug.pad
    oy = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5 if aug.flip else torch.zeros(n, dtype=torch.bool)
    cols = torch.arange(w).expand(n, w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + ox[:, None]  # (N, W)
    rows = oy[:, None] + torch.arange(h)  # (N, H)
    index = (rows[:, :, None] * (w + 2 * p) + cols[:, None, :]).view(n, 1, h * w)  # (N, 1, H*W)
    padded = F.pad(x, (p, p, p, p)).view(n, c, -1) if p else x.reshape(n, c, -1)
    return torch.gather(padded, 2, index.expand(n, c, h * w)).view(n, c, h, w)


@contextmanager
def one_thread():
    """Run small element-wise work on one thread. A batch of 28x28 images is just above
    ATen's parallel grain, and when the other core is busy (a second job on a 2-core
    machine) every 2-thread op waits a scheduler tick for it: 8 ms instead of 20 us."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def to_input(data: ImageSet, index: torch.Tensor, aug: Augment | None, gen: torch.Generator | None) -> torch.Tensor:
    """Gather, scale to [0, 1], augment (if ``aug``) and normalise a batch."""
    with one_thread():
        x = data.images.index_select(0, index).float().div_(255.0)
        if aug is not None:
            x = augment_batch(x, aug, gen)
        return data.norm.apply(x)


@dataclass(frozen=True)
class Batch:
    """``views`` holds one input tensor, or two independently augmented views of the same samples."""

    views: tuple[torch.Tensor, ...]
    labels: torch.Tensor

    @property
    def x(self) -> torch.Tensor:
        return self.views[0]


def num_train_batches(n: int, batch_size: int, world: int = 1) -> int:
    """Batches per epoch per rank: full batches only (a batch of one breaks BatchNorm),
    but at least one batch when the rank's share is smaller than ``batch_size``."""
    per_rank = -(-n // world)
    return max(1, per_rank // batch_size)


def train_batches(
    data: ImageSet,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    aug: Augment | None,
    views: int = 1,
    rank: int = 0,
    world: int = 1,
) -> Iterator[Batch]:
    """One epoch of shuffled training batches for ``rank`` of ``world``.

    The permutation is shared by all ranks (padded by wrapping around so that every rank
    gets the same number of samples, as DistributedSampler does); each rank takes every
    ``world``-th index. ``views=2`` yields two augmentations of each sample."""
    n = len(data)
    order = torch.randperm(n, generator=generator(seed, epoch, 0, 1))
    per_rank = -(-n // world)
    if per_rank * world > n:
        order = torch.cat([order, order[: per_rank * world - n]])
    mine = order[rank::world]
    steps = num_train_batches(n, batch_size, world)
    size = min(batch_size, len(mine))
    gens = [generator(seed, epoch, rank, 2 + v) for v in range(views)]
    for s in range(steps):
        index = mine[s * size : (s + 1) * size]
        xs = tuple(to_input(data, index, aug, g) for g in gens)
        yield Batch(xs, data.labels[index])


def eval_batches(data: ImageSet, batch_size: int, *, rank: int = 0, world: int = 1) -> Iterator[Batch]:
    """The split in order, no augmentation; rank r takes the r-th contiguous slice."""
    n = len(data)
    lo, hi = n * rank // world, n * (rank + 1) // world
    for start in range(lo, hi, batch_size):
        index = torch.arange(start, min(start + batch_size, hi))
        yield Batch((to_input(data, index, None, None),), data.labels[index])
