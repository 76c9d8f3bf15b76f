import json

import numpy as np
import pytest
import torch
from torch import nn

from edgeprune.errors import BudgetError, MethodError
from edgeprune.methods import get_method
from edgeprune.methods.dtp import (
    DTP,
    DTPConfig,
    binary_entropy,
    row_residual,
    sinkhorn_step,
    solve_eps,
)
from edgeprune.pruning.budget import Budget, allocate
from edgeprune.pruning.graph import ChannelGraph


def _stacked(sizes, keeps, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, k, N = torch.tensor(sizes, dtype=torch.float64), torch.tensor(keeps, dtype=torch.float64), max(sizes)
    valid = torch.arange(N)[None, :] < n[:, None]
    log_a = torch.where(valid, -n.log()[:, None], torch.full((len(sizes), N), -1e30, dtype=torch.float64))
    log_b = torch.stack([(k / n).log(), (1 - k / n).log()], 1)
    scores = torch.randn(len(sizes), N, generator=g, dtype=torch.float64)
    return scores, valid, n, k, log_a, log_b


def test_one_sinkhorn_iteration_makes_the_keep_column_exact():
    scores, valid, n, k, log_a, log_b = _stacked([16, 7, 32], [5, 1, 20])
    duals = torch.randn(3, 2, dtype=torch.float64)  # any warm start
    eps = torch.tensor([1.0, 0.3, 0.05], dtype=torch.float64)
    log_p, new = sinkhorn_step(scores, duals, eps, log_a, log_b)
    masks = n[:, None] * log_p[..., 0].exp()
    assert torch.allclose((masks * valid).sum(1), k, atol=1e-12, rtol=0)
    assert torch.allclose(log_p.exp().sum(1), log_b.exp(), atol=1e-12, rtol=0)  # both columns
    assert (masks[~valid] == 0).all()
    # algebraically m = k * sigma / sum(sigma), sigma = sigmoid((s + g_keep - g_drop) / eps)
    sigma = torch.sigmoid((scores + (duals[:, 0] - duals[:, 1])[:, None]) / eps[:, None]) * valid
    assert torch.allclose(masks, k[:, None] * sigma / sigma.sum(1, keepdim=True), atol=1e-10)


def test_warm_started_iterations_converge_to_the_transport():
    scores, valid, n, k, log_a, log_b = _stacked([16, 7], [5, 3])
    duals, eps = torch.zeros(2, 2, dtype=torch.float64), torch.full((2,), 0.5, dtype=torch.float64)
    residuals = []
    for _ in range(200):
        log_p, duals = sinkhorn_step(scores, duals, eps, log_a, log_b)
        residuals.append(row_residual(log_p, log_a).max().item())
    assert residuals[-1] < 1e-9 < residuals[0]
    masks = n[:, None] * log_p[..., 0].exp()
    assert ((masks <= 1 + 1e-9) & (masks >= 0))[valid].all()


def test_eps_bisection_hits_the_entropy():
    z = torch.randn(1, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).expand(3, 10)
    valid = torch.ones(3, 10, dtype=torch.bool)
    target = torch.tensor([0.5, 0.05, 1e-3], dtype=torch.float64)
    eps = solve_eps(z, valid, target)
    got = binary_entropy(torch.sigmoid(z / eps[:, None])).mean(1)
    assert torch.allclose(got, target, rtol=1e-3)
    assert eps[0] > eps[1] > eps[2]


def test_config_round_trips_and_rejects_unknown_keys():
    config = DTPConfig(eps_init=0.5, anneal_end=0.7)
    assert DTPConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    with pytest.raises(MethodError, match="unknown DTP options"):
        DTPConfig.from_json({"temperature": 1})


def _attached(model, shape, budget="flops=0.5", align=1):
    graph = ChannelGraph(model, shape)
    dtp = get_method("dtp")
    scores = dtp.scores(model, graph)
    widths = allocate(graph.cost, scores, Budget.parse(budget), align)
    dtp.attach(model, graph, widths, scores)
    return dtp, graph, widths


def test_dtp_is_registered_as_a_training_time_method():
    assert isinstance(get_method("dtp"), DTP) and get_method("dtp").training_time


def test_masks_sum_to_the_keep_count_at_every_step(resnet20):
    model, shape = resnet20
    dtp, graph, widths = _attached(model, shape, "ratio=0.4")
    assert len(dtp.groups) == len(graph.prunable)  # every group pruned under ratio=
    opt = torch.optim.SGD(list(model.parameters()) + dtp.parameters(), lr=0.5, momentum=0.9)
    model.train()
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for step in range(12):
        dtp.on_step_start(step, 12)
        dtp.before_forward()
        for m, w in zip(dtp.soft_masks(), widths):
            worst = max(worst, abs(m.double().sum().item() - w))
        loss = nn.functional.cross_entropy(model(torch.randn(8, *shape[1:], generator=g)), torch.arange(8))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert worst < 1e-5 and float(dtp.max_sum_error) < 1e-5
    assert dtp.frozen is not None  # the last steps are past anneal_end
    assert [len(k) for k in dtp.kept()] == widths


def test_gradient_reaches_the_scores_through_the_iteration(resnet20):
    model, shape = resnet20
    dtp, _, _ = _attached(model, shape, "ratio=0.5")
    model.train()
    dtp.on_step_start(0, 100)
    dtp.before_forward()
    model(torch.randn(4, *shape[1:])).square().mean().backward()
    grad = dtp.score.grad
    assert grad is not None and grad[dtp.valid].abs().sum() > 0 and (grad[~dtp.valid] == 0).all()


def test_eval_mode_uses_the_hard_top_k(resnet20):
    model, shape = resnet20
    dtp, graph, widths = _attached(model, shape, "flops=0.5")
    for r, i in enumerate(dtp.groups):
        soft, hard = dtp.soft_masks()[i], dtp.hard_masks()[r]
        assert hard.sum() == widths[i] and set(hard.nonzero().flatten().tolist()) == set(soft.topk(widths[i]).indices.tolist())
    model.eval()
    assert torch.equal(dtp.mask(dtp.groups[0]), dtp.hard_masks()[0])
    whole = [i for i in range(len(widths)) if i not in dtp.groups]
    assert whole and all(torch.equal(dtp.mask(i), torch.ones(graph.prunable[i].size)) for i in whole)


def test_state_dict_round_trip_and_mismatch(resnet20):
    model, shape = resnet20
    dtp, _, _ = _attached(model, shape, "flops=0.5")
    state = dtp.state_dict()
    other, _, _ = _attached(model, shape, "flops=0.5")
    with torch.no_grad():
        other.score.add_(1.0)
    other.load_state_dict(state)
    assert torch.equal(other.score, dtp.score) and torch.equal(other.duals, dtp.duals)
    assert all(torch.equal(a, b) for a, b in zip(other.soft_masks(), dtp.soft_masks()))
    third, _, _ = _attached(model, shape, "flops=0.3")
    with pytest.raises(MethodError, match="other keep counts"):
        third.load_state_dict(state)


def _two_layer():
    return nn.Sequential(nn.Conv2d(1, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 24, 3),
                         nn.BatchNorm2d(24), nn.ReLU(), nn.Conv2d(24, 10, 1))


def test_annealing_cools_learns_the_ranking_and_ends_binary():
    """Reward per channel w: the transport learns to keep the top-k of w, eps falls by orders
    of magnitude, and from anneal_end on the mask is exactly the binary top-k."""
    torch.manual_seed(0)
    model = _two_layer()
    graph = ChannelGraph(model, (1, 1, 8, 8))
    sizes = [g.size for g in graph.prunable]
    widths = [n // 4 for n in sizes]
    dtp = DTP()
    dtp.attach(model, graph, widths, [np.zeros(n) for n in sizes])  # start undecided
    reward = [torch.linspace(-1, 1, n)[torch.randperm(n)] for n in sizes]
    opt = torch.optim.SGD(dtp.parameters(), lr=0.05, momentum=0.9)
    model.train()
    total, eps, entropy, sums = 300, [], [], []
    for step in range(total):
        for group in opt.param_groups:
            group["lr"] = 0.025 * (1 + np.cos(np.pi * step / total))
        dtp.on_step_start(step, total)
        dtp.before_forward()
        eps.append(dtp.eps.clone())
        entropy.append(dtp.entropy().max().item())
        sums.append([float(m.double().sum()) for m in dtp.soft_masks()])
        loss = -sum((dtp.mask(i) * w).sum() for i, w in enumerate(reward))
        opt.zero_grad()
        loss.backward()
        opt.step()
    frozen_at = int(dtp.config.anneal_end * total)
    # annealed (this reward pushes hard on the k-th channel, so the one-iteration transport
    # never quite binarises before the freeze: that is what the freeze is for)
    assert (eps[frozen_at - 1] < eps[0] / 2).all() and entropy[frozen_at - 1] < entropy[0] / 4
    best = [sorted(w.topk(k).indices.tolist()) for w, k in zip(reward, widths)]
    assert dtp.kept() == best
    for m, w in zip(dtp.soft_masks(), widths):  # binary after anneal_end
        assert set(m.unique().tolist()) == {0.0, 1.0} and m.sum() == w
    assert max(abs(s - w) for row in sums for s, w in zip(row, widths)) < 1e-5
    assert 0.0 <= dtp.gap_at_freeze <= 1.0 + 1e-6


def test_infeasible_budget_is_a_clear_error(resnet20):
    model, shape = resnet20
    with pytest.raises(BudgetError, match="smallest achievable"):
        _attached(model, shape, "flops=0.001", align=16)
