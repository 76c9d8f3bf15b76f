"""Parity: the slim model computes what the masked dense model computes."""

import pytest
import torch
from torch_helpers import randomize_batchnorm

from edgeprune.models import build_model
from edgeprune.pruning.budget import Budget
from edgeprune.pruning.graph import ChannelGraph, count_flops_params
from edgeprune.pruning.masks import apply_masks, plan_masks
from edgeprune.pruning.one_shot import prune_one_shot
from edgeprune.pruning.parity import compare_outputs, fixed_input
from edgeprune.pruning.slim import slim

MODELS = [
    "torchvision:resnet18",
    "torchvision:resnet50",
    "torchvision:mobilenet_v2",
    "torchvision:vgg11_bn",
    "edgeprune:resnet20",
    "edgeprune:resnet56",
]


@pytest.mark.parametrize("spec", MODELS)
def test_masked_equals_slim_at_half_flops(spec):
    model, shape = build_model(spec)
    randomize_batchnorm(model)
    result = prune_one_shot(model, spec, shape, "l1", Budget.parse("flops=0.5"), align=1)
    slim_model = result.model
    # independent re-check of what prune_one_shot asserted
    graph = ChannelGraph(model, shape)
    handle = apply_masks(model, graph, plan_masks(graph, [g.kept for g in result.plan.groups]))
    x = fixed_input(shape, seed=1)
    try:
        parity = compare_outputs(model, slim_model, x)
    finally:
        handle.remove()
    assert parity.rel_diff <= 1e-4, parity
    # not vacuous: the slim model is really narrower and really differs from the dense one
    macs, _ = count_flops_params(slim_model, shape)
    assert macs == result.report["flops_pruned"]
    assert 0.495 <= result.report["flops_ratio"] <= 0.5
    assert compare_outputs(model, slim_model, x).max_abs_diff > 0


def test_plan_replays_on_a_fresh_instance(resnet20):
    model, shape = resnet20
    result = prune_one_shot(model, "edgeprune:resnet20", shape, "l2", Budget.parse("flops=0.5"), 8)
    fresh, _ = build_model("edgeprune:resnet20")
    replayed = slim(fresh, result.plan)
    a, b = result.model.state_dict(), replayed.state_dict()
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
    replayed.load_state_dict(a)
    assert compare_outputs(result.model, replayed, fixed_input(shape)).max_abs_diff == 0
    # module names are unchanged, so dense and slim state_dicts line up key by key
    assert a.keys() == model.state_dict().keys()


def test_slim_leaves_the_dense_model_alone(resnet20):
    model, shape = resnet20
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prune_one_shot(model, "edgeprune:resnet20", shape, "l1", Budget.parse("ratio=0.5"), 1)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model._forward_hooks and not model.bn1._forward_hooks
