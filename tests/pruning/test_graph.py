import pytest
import torch
from torch import nn

from edgeprune.errors import GraphError
from edgeprune.models import build_model
from edgeprune.pruning.graph import ChannelGraph, count_flops_params


def test_resnet20_groups_couple_residual_stream():
    model, shape = build_model("edgeprune:resnet20")
    graph = ChannelGraph(model, shape)
    by_root = {g.root: g for g in graph.groups}
    stem = by_root["conv1"]
    # the stage-1 residual stream: stem conv and every block's conv2 share channels
    members = {m.module for m in stem.members}
    assert {"conv1", "bn1", "layer1.0.bn2", "layer1.2.bn2", "layer2.0.conv1", "layer2.0.downsample.0"} <= members
    # masks go on the BatchNorms of every branch, not on the convs before them
    assert set(stem.producers) == {"bn1", "layer1.0.bn2", "layer1.1.bn2", "layer1.2.bn2"}
    assert not by_root["fc"].prunable and "output" in by_root["fc"].reason
    assert len(graph.prunable) == 12 and stem.size == 16


@pytest.mark.parametrize(
    "spec", ["edgeprune:resnet20", "torchvision:resnet18", "torchvision:mobilenet_v2", "torchvision:densenet121"]
)
def test_cost_model_matches_measured_counts(spec):
    model, shape = build_model(spec)
    graph = ChannelGraph(model, shape)
    macs, params = count_flops_params(model, shape)
    assert graph.cost.dense("flops") == macs
    assert graph.cost.dense("params") == params


def test_known_dense_flops():
    model, shape = build_model("torchvision:resnet18")
    assert round(ChannelGraph(model, shape).cost.dense("flops") / 1e9, 2) == 1.81  # the usual 1.8 GMACs


class BreaksAutograd(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        y = self.conv(x).mean((2, 3))
        y = torch.from_numpy(y.detach().numpy())  # leaves autograd
        return self.head(y)


class FailsInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(5, 5))

    def forward(self, x):
        return self.body(x)


def test_untraceable_model_names_the_module():
    with pytest.raises(GraphError, match="'conv'.*Conv2d.*autograd"):
        ChannelGraph(BreaksAutograd(), (1, 3, 8, 8))


def test_forward_failure_names_the_module():
    with pytest.raises(GraphError, match=r"failed in module 'body.1' \(Linear\)"):
        ChannelGraph(FailsInForward(), (1, 3, 8, 8))


def test_tracing_keeps_batchnorm_statistics():
    model, shape = build_model("edgeprune:resnet20")
    model.train()
    before = model.bn1.running_mean.clone()
    ChannelGraph(model, shape)
    assert torch.equal(before, model.bn1.running_mean) and model.training
