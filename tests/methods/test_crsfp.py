"""CR-SFP: the loss, R-NN / P-NN in one backbone, the extra head, the final-Linear check."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.data.batches import Batch
from edgeprune.errors import MethodError
from edgeprune.methods import get_method
from edgeprune.methods.crsfp import crsfp_loss, final_linear, symmetric_kl
from edgeprune.models import build_model
from edgeprune.pruning.budget import Budget, allocate
from edgeprune.pruning.graph import ChannelGraph
from edgeprune.pruning.masks import apply_masks, plan_masks


def _logits(seed, n=16, c=10):
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed)) * 3


def test_lambda_zero_is_the_two_cross_entropies():
    r, p, y = _logits(0), _logits(1), torch.arange(16) % 10
    total, parts = crsfp_loss(r, p, y, 0.0)
    assert torch.allclose(total, F.cross_entropy(r, y) + F.cross_entropy(p, y))
    total2, _ = crsfp_loss(r, p, y, 2.0)
    assert torch.allclose(total2, total + 2.0 * parts["kl"])


def test_symmetric_kl_is_symmetric_nonnegative_and_zero_on_equal_predictions():
    a, b = _logits(2), _logits(3)
    kl = symmetric_kl(a, b)
    assert kl > 0 and torch.allclose(kl, symmetric_kl(b, a))
    pa, pb = F.softmax(a, 1), F.softmax(b, 1)
    reference = F.kl_div(pb.log(), pa, reduction="batchmean") + F.kl_div(pa.log(), pb, reduction="batchmean")
    assert torch.allclose(kl, reference, atol=1e-5)
    assert symmetric_kl(a, a + 5.0).abs() < 1e-6  # softmax is shift-invariant
    for seed in range(5):
        assert symmetric_kl(_logits(10 + seed), _logits(20 + seed)) >= 0


def _attached(lam=1.0):
    torch.manual_seed(0)
    model, shape = build_model("edgeprune:resnet20")
    graph = ChannelGraph(model, shape)
    method = get_method("crsfp", consistency_lambda=lam)
    scores = method.scores(model, graph)
    widths = allocate(graph.cost, scores, Budget.parse("flops=0.5"), 1)
    dense = copy.deepcopy(model)
    method.attach(model, graph, widths, scores)
    with torch.no_grad():  # make the two heads differ
        method.r_head.weight.add_(torch.randn_like(method.r_head.weight))
    return method, model, dense, graph, shape


def test_two_views_run_r_nn_and_p_nn_on_one_backbone():
    method, model, dense, graph, shape = _attached()
    assert method.head_name == "fc" and method.pruned_channels() > 0
    assert torch.equal(model.conv1.weight, dense.conv1.weight)  # CR-SFP does not zero weights
    gen = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(4, *shape[1:], generator=gen), torch.randn(4, *shape[1:], generator=gen)
    model.eval()
    with torch.no_grad():
        both = method.forward(model, (x1, x2))
        p_only = method.forward(model, x2)
    r_ref = copy.deepcopy(dense).eval()
    r_ref.fc = copy.deepcopy(method.r_head)
    p_ref = copy.deepcopy(dense).eval()
    handle = apply_masks(p_ref, ChannelGraph(p_ref, shape), plan_masks(graph, method.kept()))
    with torch.no_grad():
        assert torch.allclose(both[0], r_ref(x1), atol=1e-5)  # R-NN: no mask, extra head
        assert torch.allclose(both[1], p_ref(x2), atol=1e-5)  # P-NN: masked, own head
        assert torch.allclose(p_only, both[1])  # a plain forward (eval) is P-NN
    handle.remove()


def test_r_nn_leaves_batchnorm_statistics_to_p_nn():
    method, model, _, _, shape = _attached()
    model.train()
    x = torch.randn(8, *shape[1:])
    before = model.bn1.running_mean.clone()
    with torch.no_grad(), method.r_mode():
        model(x)
    assert torch.equal(model.bn1.running_mean, before)
    assert model.bn1.momentum == 0.1  # restored
    with torch.no_grad():
        model(x)
    assert not torch.equal(model.bn1.running_mean, before)


def test_loss_trains_backbone_and_both_heads_and_logs_parts():
    method, model, _, _, shape = _attached(lam=0.5)
    model.train()
    gen = torch.Generator().manual_seed(3)
    views = (torch.randn(8, *shape[1:], generator=gen), torch.randn(8, *shape[1:], generator=gen))
    batch = Batch(views, torch.arange(8) % 10)
    loss, logits = method.loss(lambda x: method.forward(model, x), batch)
    loss.backward()
    assert logits.shape == (8, 10)
    assert method.r_head.weight.grad.abs().sum() > 0 and model.fc.weight.grad.abs().sum() > 0
    drop = (method.masks[next(i for i, g in enumerate(method._graph.prunable) if g.root == "conv1")] == 0)
    assert model.conv1.weight.grad[drop].abs().sum() > 0  # masked filters train through R-NN
    metrics = method.on_epoch_end(0)
    assert {"crsfp_ce_r", "crsfp_ce_p", "crsfp_kl", "crsfp_regrown"} <= set(metrics)
    assert metrics["crsfp_ce_r"] + metrics["crsfp_ce_p"] + 0.5 * metrics["crsfp_kl"] == pytest.approx(loss.item(), rel=1e-5)


def test_state_holds_the_extra_head():
    method, *_ = _attached()
    other, *_ = _attached()
    other.load_state_dict(method.state_dict())
    assert torch.equal(other.r_head.weight, method.r_head.weight)
    assert method.parameters() == list(method.r_head.parameters())
    assert method.report()["r_head_dropped"] and method.report()["config"] == {"consistency_lambda": 1.0}


class _SoftmaxOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 10)
        self.out = nn.LogSoftmax(1)

    def forward(self, x):
        return self.out(self.fc(self.conv(x).mean((2, 3))))


class _FunctionalOut(_SoftmaxOut):
    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3))) * 2


def test_final_linear_is_found_or_the_output_producer_is_named():
    model, shape = build_model("edgeprune:resnet20")
    name, module = final_linear(model, shape)
    assert name == "fc" and module is model.fc
    with pytest.raises(MethodError, match=r"needs a final nn.Linear.*'out' \(LogSoftmax\)"):
        final_linear(_SoftmaxOut(), (1, 1, 8, 8))
    with pytest.raises(MethodError, match=r"needs a final nn.Linear.*after module 'fc'"):
        final_linear(_FunctionalOut(), (1, 1, 8, 8))
