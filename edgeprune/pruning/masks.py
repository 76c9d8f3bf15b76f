"""Channel masks on a dense model: multiply each group's producers' outputs by a mask.

A mask is a 1-D tensor over the group's root channels (1 keep, 0 drop, or anything between
for soft masks during training). It is applied where the channels are produced: on the last
per-channel op of every path (BatchNorm after a conv, or the conv itself), so a residual
stream is masked on every branch that adds into it. With hard 0/1 masks the masked model
computes what the slim model computes.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from edgeprune.pruning.graph import ChannelGraph


class MaskHandle:
    """Holds the hooks; ``remove()`` restores the plain model."""

    def __init__(self, handles: list) -> None:
        self._handles = handles

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def apply_masks(
    model: nn.Module, graph: ChannelGraph, masks: Sequence[torch.Tensor] | Callable[[int], torch.Tensor]
) -> MaskHandle:
    """Register hooks multiplying producer outputs by ``masks[i]`` for prunable group i.

    ``masks`` may be a callable returning the current mask of group i, so that masks that
    change during training (DTP, SFP) need no re-registration.
    """
    get = masks if callable(masks) else (lambda i: masks[i])
    slices: dict[str, list[tuple[int, torch.Tensor, torch.Tensor]]] = {}
    for i, group in enumerate(graph.prunable):
        for producer in group.producers:
            positions, roots = graph.producer_channels(group, producer)
            slices.setdefault(producer, []).append((i, positions, roots))
    handles = []
    for producer, parts in slices.items():
        module = model.get_submodule(producer)
        dim = -1 if isinstance(module, nn.Linear) else 1
        whole = len(parts) == 1 and torch.equal(parts[0][1], parts[0][2]) and (
            torch.equal(parts[0][1], torch.arange(graph.prunable[parts[0][0]].size))
        )

        def hook(_m, _inp, out, parts=parts, dim=dim, whole=whole):
            if whole:  # the common case: the producer's channels are exactly the group's
                mask = get(parts[0][0])
            else:
                mask = torch.ones(out.shape[dim], dtype=out.dtype, device=out.device)
                for i, positions, roots in parts:
                    mask = mask.index_copy(0, positions, get(i)[roots].to(out.dtype))
            shape = [1] * out.dim()
            shape[dim] = -1
            return out * mask.to(out.dtype).view(shape)

        handles.append(module.register_forward_hook(hook))
    return MaskHandle(handles)


def plan_masks(graph: ChannelGraph, kept: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Hard 0/1 masks from kept indices, one per prunable group."""
    out = []
    for group, k in zip(graph.prunable, kept):
        m = torch.zeros(group.size)
        m[torch.as_tensor(list(k), dtype=torch.long)] = 1.0
        out.append(m)
    return out
