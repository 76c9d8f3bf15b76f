"""BatchNorm scale criterion (Liu et al. 2017 "Network Slimming"): |gamma| per channel,
averaged over the BatchNorms of the group. A group without BatchNorm scores all its
channels equally (it is then pruned by cost alone); a model with no BatchNorm at all is an
error."""

from __future__ import annotations

from edgeprune.errors import MethodError
from edgeprune.methods.base import register
from edgeprune.methods.magnitude import group_magnitude


@register("bn-scale")
class BNScale:
    def scores(self, model, graph):
        from torch import nn

        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise MethodError("method 'bn-scale' needs BatchNorm layers; this model has none (try l1)")
        return group_magnitude(graph, p=1, bn_only=True)
