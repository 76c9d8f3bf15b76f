"""Exact budgets on real architectures: achieved FLOPs within [0.99, 1.0] x target."""

import pytest

from edgeprune.methods import get_method
from edgeprune.models import build_model
from edgeprune.pruning.budget import Budget, allocate
from edgeprune.pruning.graph import ChannelGraph


@pytest.fixture(scope="module", params=["torchvision:resnet18", "torchvision:resnet50", "torchvision:mobilenet_v2"])
def scored(request):
    model, shape = build_model(request.param)
    graph = ChannelGraph(model, shape)
    return graph, get_method("l1").scores(model, graph)


@pytest.mark.parametrize("align", [1, 8, 16])
@pytest.mark.parametrize("value", [0.3, 0.5, 0.7])
def test_flops_budget_is_exact(scored, value, align):
    graph, scores = scored
    widths = allocate(graph.cost, scores, Budget("flops", value), align)
    achieved = graph.cost.flops(widths) / graph.cost.dense("flops")
    assert 0.99 * value <= achieved <= value
    assert all(w % align == 0 or w == g.size for w, g in zip(widths, graph.prunable))


@pytest.mark.parametrize("value", [0.5])
def test_params_budget_is_exact(scored, value):
    graph, scores = scored
    widths = allocate(graph.cost, scores, Budget("params", value), 8)
    achieved = graph.cost.params(widths) / graph.cost.dense("params")
    assert 0.99 * value <= achieved <= value
