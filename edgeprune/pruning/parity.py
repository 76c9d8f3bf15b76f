"""Numerical parity between two stages, on a fixed random input, in eval mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    rel_diff: float  # max |a - b| / max |a|

    def ok(self, rtol: float) -> bool:
        return self.rel_diff <= rtol


def fixed_input(input_shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*input_shape, generator=g)


@torch.no_grad()
def compare_outputs(a: nn.Module, b: nn.Module, x: torch.Tensor) -> Parity:
    """Run both modules (eval mode, restored afterwards) on ``x`` and compare outputs."""
    outs = []
    for m in (a, b):
        was = m.training
        m.eval()
        outs.append(m(x))
        m.train(was)
    ya, yb = outs
    diff = (ya - yb).abs().max().item()
    scale = ya.abs().max().item()
    return Parity(diff, diff / scale if scale > 0 else diff)
