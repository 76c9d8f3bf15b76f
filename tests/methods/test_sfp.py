"""SFP: keep counts from the allocator, norm-based selection, exact zeroing, regrowth."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.errors import MethodError
from edgeprune.methods import get_method, method_options
from edgeprune.methods.crsfp import CRSFP
from edgeprune.methods.magnitude import group_magnitude
from edgeprune.methods.sfp import SFP
from edgeprune.models import build_model
from edgeprune.pruning.budget import Budget, allocate, select_kept
from edgeprune.pruning.graph import ChannelGraph
from edgeprune.pruning.masks import apply_masks, plan_masks


def _model(seed=0):
    torch.manual_seed(seed)
    model, shape = build_model("edgeprune:resnet20")
    with torch.no_grad():  # non-trivial BatchNorm so that zeroing beta / running_mean matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model, shape


def _attached(budget="flops=0.5", align=1, seed=0):
    model, shape = _model(seed)
    graph = ChannelGraph(model, shape)
    sfp = get_method("sfp")
    scores = sfp.scores(model, graph)
    widths = allocate(graph.cost, scores, Budget.parse(budget), align)
    dense = copy.deepcopy(model)
    sfp.attach(model, graph, widths, scores)
    return sfp, model, dense, graph, widths, scores, shape


def test_registry_builds_methods_with_options_and_names_unknown_ones():
    assert isinstance(get_method("sfp"), SFP) and get_method("sfp").training_time
    crsfp = get_method("crsfp", consistency_lambda=0.5)
    assert isinstance(crsfp, CRSFP) and crsfp.config.consistency_lambda == 0.5 and crsfp.views == 2
    assert get_method("crsfp").config.consistency_lambda == 1.0
    assert get_method("dtp", anneal_end=0.7).config.anneal_end == 0.7
    with pytest.raises(MethodError, match=r"no option 'lam'.*allowed: consistency_lambda"):
        get_method("crsfp", lam=1.0)
    with pytest.raises(MethodError, match="no option 'p'.*takes no options"):
        get_method("l1", p=2)
    with pytest.raises(MethodError, match=">= 0"):
        get_method("crsfp", consistency_lambda=-1.0)
    assert method_options("crsfp") == ["consistency_lambda"] and method_options("l2") == []
    for name in ("l1", "l2", "bn-scale", "dtp", "sfp", "crsfp"):
        assert get_method(name).name == name


@pytest.mark.parametrize("budget, align", [("flops=0.5", 1), ("params=0.6", 4), ("ratio=0.3", 1)])
def test_masks_keep_exactly_the_allocated_counts_by_group_l2(budget, align):
    sfp, model, dense, graph, widths, scores, _ = _attached(budget, align)
    assert [int(m.sum()) for m in sfp.masks] == list(widths)
    expected = select_kept(group_magnitude(ChannelGraph(dense, graph.input_shape), p=2), widths)
    assert sfp.kept() == expected
    if budget.startswith("flops"):
        assert 0.99 * 0.5 <= graph.cost.flops(widths) / graph.cost.dense("flops") <= 0.5
    if budget.startswith("ratio"):
        for g, w in zip(graph.prunable, widths):
            assert w == g.size - int(0.3 * g.size) or abs(w - 0.7 * g.size) <= 1


def test_eval_mode_is_the_masked_model_and_filters_are_zeroed():
    sfp, model, dense, graph, _, _, shape = _attached()
    assert sfp.pruned_channels() > 0
    x = torch.randn(8, *shape[1:], generator=torch.Generator().manual_seed(1))
    masked = copy.deepcopy(dense).eval()
    handle = apply_masks(masked, ChannelGraph(masked, shape), plan_masks(graph, sfp.kept()))
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), masked(x), atol=1e-5, rtol=1e-5)
    handle.remove()
    stem = _stem(graph)
    drop = (sfp.masks[stem] == 0).nonzero().flatten()
    assert len(drop) > 0 and (model.conv1.weight[drop] == 0).all()
    for name in ("bn1.weight", "bn1.bias", "bn1.running_mean", "layer1.0.bn2.bias"):  # BatchNorm untouched
        assert torch.equal(model.get_parameter(name) if "running" not in name else model.get_buffer(name),
                           dense.get_parameter(name) if "running" not in name else dense.get_buffer(name))
    kept = (sfp.masks[stem] == 1).nonzero().flatten()
    assert torch.equal(model.conv1.weight[kept], dense.conv1.weight[kept])
    with torch.no_grad():  # in training mode no mask: the zeroed channel is BatchNorm's shift
        model.train()
        model(x)


def _stem(graph):
    return next(i for i, g in enumerate(graph.prunable) if g.root == "conv1")


def test_zeroed_filters_get_gradient_and_regrow():
    sfp, model, _, graph, _, _, shape = _attached()
    stem = _stem(graph)
    drop = (sfp.masks[stem] == 0).nonzero().flatten()
    assert len(drop) > 1
    with torch.no_grad():  # a positive BatchNorm shift passes the following ReLU; a negative one does not
        model.bn1.bias[drop] = 0.3
        model.bn1.bias[drop[-1]] = -0.3
        for block in model.layer1:
            block.bn2.bias[drop[-1]] = -0.3
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(16, *shape[1:], generator=torch.Generator().manual_seed(2))
    y = torch.arange(16) % 10
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    grad = model.conv1.weight.grad[drop].flatten(1).abs().sum(1)
    assert (grad[:-1] > 0).all()  # the gradient reaches zeroed filters through BatchNorm
    opt.step()
    assert (model.conv1.weight[drop[:-1]].flatten(1).abs().sum(1) > 0).all()  # they regrow
    # a pruned channel made large is selected again at the epoch end and counted as regrown
    with torch.no_grad():
        model.conv1.weight[drop[0]].fill_(10.0)
    metrics = sfp.on_epoch_end(0)
    assert metrics["sfp_regrown"] >= 1 and sfp.masks[stem][drop[0]] == 1
    assert [int(m.sum()) for m in sfp.masks] == list(sfp.widths)  # counts stay exact
    new_drop = (sfp.masks[stem] == 0).nonzero().flatten()
    assert (model.conv1.weight[new_drop] == 0).all()  # and the new selection is zeroed


def test_state_round_trips_and_refuses_other_widths():
    sfp, model, *_ = _attached()
    state = sfp.state_dict()
    other, *_ = _attached(seed=1)
    other.load_state_dict(state)
    assert other.kept() == sfp.kept()
    third, *_ = _attached("flops=0.7")
    with pytest.raises(MethodError, match="other keep counts"):
        third.load_state_dict(state)


def test_group_l2_scores_are_what_the_allocator_ranks():
    model, shape = _model()
    graph = ChannelGraph(model, shape)
    s = get_method("sfp").scores(model, graph)
    assert all(np.allclose(a, b) for a, b in zip(s, group_magnitude(graph, p=2)))
