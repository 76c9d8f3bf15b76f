import numpy as np
import pytest

from edgeprune.errors import BudgetError
from edgeprune.pruning.budget import Budget, allocate, allowed_widths, select_kept
from edgeprune.pruning.cost import CostModel, Term, Width


@pytest.mark.parametrize(
    "text, kind, value",
    [("flops=0.5", "flops", 0.5), ("params=1", "params", 1.0), ("ratio=0.3", "ratio", 0.3), (" FLOPS=0.25", "flops", 0.25)],
)
def test_parse(text, kind, value):
    assert Budget.parse(text) == Budget(kind, value)


@pytest.mark.parametrize("text", ["flops", "flops=abc", "macs=0.5", "flops=0", "flops=1.5", "ratio=1", "ratio=-0.1"])
def test_parse_rejects_with_allowed_forms(text):
    with pytest.raises(BudgetError, match="budget"):
        Budget.parse(text)


def test_allowed_widths_never_zero_and_keep_full():
    assert allowed_widths(24, 16) == [16, 24]
    assert allowed_widths(64, 16) == [16, 32, 48, 64]
    assert allowed_widths(8, 16) == [8]
    assert allowed_widths(5, 1) == [1, 2, 3, 4, 5]


def _chain_cost(sizes):
    """A plain conv chain: 3 -> g0 -> g1 -> ... -> 10, each 9x9 kernel x positions."""
    terms, prev = [], Width(3.0)
    for i, _ in enumerate(sizes):
        cur = Width(0.0, ((i, 1.0),))
        terms.append(Term(f"c{i}", 9.0 * 64 / (i + 1), prev, cur))
        prev = cur
    terms.append(Term("fc", 1.0, prev, Width(10.0)))
    return CostModel(tuple(sizes), tuple(terms), tuple(terms))


@pytest.mark.parametrize("value", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("align", [1, 8])
def test_allocation_meets_budget_on_toy_chain(value, align):
    sizes = [32, 64, 64, 128]
    cost = _chain_cost(sizes)
    rng = np.random.default_rng(0)
    scores = [rng.random(n) for n in sizes]
    widths = allocate(cost, scores, Budget("flops", value), align)
    achieved = cost.flops(widths) / cost.dense("flops")
    assert 0.99 * value <= achieved <= value
    for w, n in zip(widths, sizes):
        assert w > 0 and (w % align == 0 or w == n)


def test_ratio_budget_is_per_group():
    sizes = [32, 64, 100]
    cost = _chain_cost(sizes)
    widths = allocate(cost, [np.ones(n) for n in sizes], Budget("ratio", 0.3), 1)
    assert widths == [22, 45, 70]
    widths = allocate(cost, [np.ones(n) for n in sizes], Budget("ratio", 0.3), 16)
    assert widths == [16, 48, 64]


def test_infeasible_budget_states_smallest_achievable():
    sizes = [16, 16]
    cost = _chain_cost(sizes)
    floor = cost.flops([16, 16]) / cost.dense("flops")  # align 16: nothing can shrink
    with pytest.raises(BudgetError, match=f"smallest achievable is flops={floor:.4f}"):
        allocate(cost, [np.ones(16)] * 2, Budget("flops", 0.5), 16)


def test_select_kept_takes_top_scores_deterministically():
    assert select_kept([np.array([0.1, 0.9, 0.5, 0.9])], [2]) == [[1, 3]]
    assert select_kept([np.array([1.0, 1.0, 1.0])], [2]) == [[0, 1]]


def test_low_importance_groups_are_pruned_first():
    sizes = [64, 64]
    cost = _chain_cost(sizes)
    # group 1 is far less important everywhere: it should lose more channels
    scores = [np.full(64, 1.0) + np.linspace(0, 0.01, 64), np.linspace(0.0, 2.0, 64) ** 4]
    widths = allocate(cost, scores, Budget("flops", 0.6), 1)
    assert widths[1] < widths[0]


def test_min_keep_floors_every_group():
    sizes = [16, 64, 64]
    cost = _chain_cost(sizes)
    rng = np.random.default_rng(1)
    scores = [rng.random(n) for n in sizes]
    # the first group is the most expensive per channel: unfloored, greedy cuts it deepest
    free = allocate(cost, scores, Budget("flops", 0.3, min_keep=0.0), 1)
    floored = allocate(cost, scores, Budget("flops", 0.3, min_keep=0.5), 1)
    assert min(w / n for w, n in zip(free, sizes)) < 0.5
    assert all(w >= 0.5 * n for w, n in zip(floored, sizes))
    assert 0.99 * 0.3 <= cost.flops(floored) / cost.dense("flops") <= 0.3
    with pytest.raises(BudgetError, match="--min-keep"):
        Budget("flops", 0.5, min_keep=1.5)
    assert str(Budget("flops", 0.5, min_keep=0.1)) == "flops=0.5 (min_keep=0.1)"


def test_results_outside_the_documented_window_are_reported(resnet20):
    """flops= below 0.99 x the request, or a ratio= that alignment moved, is a warning, not silence."""
    from edgeprune.pruning.one_shot import prune_one_shot

    model, shape = resnet20
    coarse = prune_one_shot(model, "edgeprune:resnet20", shape, "l1", Budget.parse("flops=0.5"), 16).report
    assert coarse["flops_ratio"] < 0.495 and "below the documented window [0.4950, 0.5]" in coarse["warnings"][0]
    fine = prune_one_shot(model, "edgeprune:resnet20", shape, "l1", Budget.parse("flops=0.5"), 1).report
    assert fine["warnings"] == []
    moved = prune_one_shot(model, "edgeprune:resnet20", shape, "l1", Budget.parse("ratio=0.3"), 16).report
    assert "ratio=0.3 with --align 16 removes another fraction" in moved["warnings"][0]
    exact = prune_one_shot(model, "edgeprune:resnet20", shape, "l1", Budget.parse("ratio=0.25"), 4).report
    assert exact["warnings"] == []
