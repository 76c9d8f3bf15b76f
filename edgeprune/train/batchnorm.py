"""BatchNorm re-estimation: recompute the running statistics of a (pruned) model on training
images, as adaptive BN (Li et al., EagleEye, ECCV 2020) does before evaluating a candidate.

Training-time methods end with running statistics that lag the network they leave: soft-mask
methods (SFP, REPrune's soft phase) gather them on the unmasked network, ResRep's shrink
compactor rows until the last epochs. The slim model's own statistics, measured on training
images with the weights fixed, remove that skew; nothing else changes (no gradient step)."""

from __future__ import annotations

import torch
from torch import nn

from edgeprune.data.base import ImageSet
from edgeprune.data.batches import generator, to_input

DEFAULT_BATCHES = 50


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: ImageSet, batch_size: int, batches: int = DEFAULT_BATCHES,
                          *, seed: int = 0) -> int:
    """Reset every tracked BatchNorm's running mean and variance and re-estimate them as the
    plain average over ``batches`` batches of ``data`` (shuffled with ``seed``, no augmentation:
    the images the deployed model sees). Only the BatchNorms run in training mode (dropout and
    the rest stay in eval). Every rank draws the same batches, so the statistics agree across
    processes. Returns the number of images used (0 when the model has no tracked BatchNorm or
    ``batches`` is 0)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms or batches <= 0 or len(data) == 0:
        return 0
    was = model.training
    momenta = [m.momentum for m in norms]
    order = torch.randperm(len(data), generator=generator(seed, 0, 0, 7))
    size = min(batch_size, len(data))
    steps = min(batches, max(1, len(data) // size))
    try:
        model.eval()
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches
            m.train()
        for s in range(steps):
            model(to_input(data, order[s * size:(s + 1) * size], None, None))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was)
    return steps * size
