"""Filter-norm criteria (Li et al. 2017 "Pruning Filters for Efficient ConvNets"; SFP uses L2).

The norm is reduced over the whole group: for every layer in the group, the weights that
touch a channel (a conv's output filter, a consumer's input slice, a BatchNorm's scale) add
their |w|^p to that channel's score, averaged over the layers. ``l2`` is therefore the
squared group L2 norm, which ranks channels like the L2 norm does.
"""

from __future__ import annotations

import numpy as np

from edgeprune.methods.base import register


def group_magnitude(graph, p: int, bn_only: bool = False) -> list[np.ndarray]:
    import torch_pruning as tp
    from torch import nn

    if bn_only:
        scorer = tp.importance.GroupMagnitudeImportance(
            p=1, group_reduction="mean", normalizer=None,
            target_types=(nn.modules.batchnorm._BatchNorm,),
        )
    else:
        scorer = tp.importance.GroupMagnitudeImportance(p=p, group_reduction="mean", normalizer=None)
    out = []
    for group in graph.prunable:
        score = scorer(graph.full_tp_group(group))
        out.append(np.ones(group.size) if score is None else score.detach().cpu().double().numpy())
    return out


@register("l1")
class L1Norm:
    """Sum of |w| of every weight that touches the channel, averaged over the group's layers."""

    def scores(self, model, graph):
        return group_magnitude(graph, p=1)


@register("l2")
class L2Norm:
    """Sum of w^2 of every weight that touches the channel, averaged over the group's layers."""

    def scores(self, model, graph):
        return group_magnitude(graph, p=2)
