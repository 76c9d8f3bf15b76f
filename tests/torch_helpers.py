"""Helpers shared by torch-side tests (import as `from torch_helpers import ...`: several
test folders have a conftest.py, so `from conftest import` is ambiguous)."""

from __future__ import annotations


def randomize_batchnorm(model, seed: int = 0):
    """Give every BatchNorm non-trivial statistics and affine parameters.

    Freshly initialised BN is the identity, which can hide slimming bugs (and makes some
    torchvision models output ~1e-9); parity tests run on randomized BN instead."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model
