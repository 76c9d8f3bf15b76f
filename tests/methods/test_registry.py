import numpy as np
import pytest
import torch

from edgeprune.errors import MethodError
from edgeprune.methods import available_methods, get_method
from edgeprune.pruning.graph import ChannelGraph


def test_registry_lists_one_shot_methods():
    assert {"l1", "l2", "bn-scale"} <= set(available_methods())


def test_unknown_method_lists_available():
    with pytest.raises(MethodError, match="unknown pruning method 'l3'; available: .*l1"):
        get_method("l3")


@pytest.mark.parametrize("name", ["l1", "l2", "bn-scale"])
def test_scores_cover_every_channel(resnet20, name):
    model, shape = resnet20
    graph = ChannelGraph(model, shape)
    scores = get_method(name).scores(model, graph)
    assert [len(s) for s in scores] == [g.size for g in graph.prunable]
    assert all(np.all(s >= 0) and np.ptp(s) > 0 for s in scores)


def test_l1_follows_filter_norm():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 1, bias=False), torch.nn.Conv2d(4, 2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, 4.0, 2.0, 3.0]).view(4, 1, 1, 1))
        model[1].weight.fill_(1.0)
    graph = ChannelGraph(model, (1, 1, 4, 4))
    (scores,) = get_method("l1").scores(model, graph)
    assert list(np.argsort(scores)) == [0, 2, 3, 1]


def test_bn_scale_needs_batchnorm():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 1), torch.nn.Conv2d(4, 2, 1))
    graph = ChannelGraph(model, (1, 1, 4, 4))
    with pytest.raises(MethodError, match="needs BatchNorm"):
        get_method("bn-scale").scores(model, graph)
