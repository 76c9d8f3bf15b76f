"""One-shot pruning end to end: score, allocate the budget, select, slim, check parity."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

from edgeprune import __version__
from edgeprune.errors import EdgepruneError, MethodError
from edgeprune.methods import get_method
from edgeprune.pruning.budget import Budget, allocate, budget_warnings, select_kept
from edgeprune.pruning.graph import ChannelGraph
from edgeprune.pruning.masks import apply_masks, plan_masks
from edgeprune.pruning.parity import compare_outputs, fixed_input
from edgeprune.pruning.plan import PruningPlan, make_plan
from edgeprune.pruning.slim import slim

PARITY_RTOL = 1e-4


class ParityError(EdgepruneError):
    """The slim model does not compute what the masked model computes."""


@dataclass
class PruneResult:
    plan: PruningPlan
    model: nn.Module  # the slim model
    report: dict[str, Any]


def prune_one_shot(
    model: nn.Module,
    spec: str,
    input_shape: tuple[int, ...],
    method: str,
    budget: Budget,
    align: int = 1,
    *,
    options: dict[str, Any] | None = None,
    calibration: Iterable[torch.Tensor] | None = None,
    latency: Any = None,
) -> PruneResult:
    """Prune ``model`` (unchanged) to ``budget`` with a one-shot criterion; return the slim model.

    ``options`` build the method (``get_method(method, **options)``). A method that needs data
    (``needs_data``, `edgeprune.methods.base.DataMethod`: ThiNet, He et al.) reads input batches
    from ``calibration`` first, may choose its own channels at the allocated widths
    (``select``) and refit a dense copy's weights (``reconstruct``) before the copy is slimmed;
    its ``report()`` is stored under report[method]. ``latency`` (a
    `edgeprune.latency.source.LatencySource`) adds the latency metric for ``latency=`` /
    ``latency_ms=`` budgets, calibrated on ``model`` on the table's target."""
    start = time.perf_counter()
    scorer = get_method(method, **(options or {}))
    graph = ChannelGraph(model, input_shape)
    if getattr(scorer, "needs_data", False):
        if calibration is None:
            raise MethodError(f"method {method!r} samples the training data: pass --data (a [data] section)")
        scorer.calibrate(model, graph, calibration)
    scores = scorer.scores(model, graph)
    if latency is not None:
        from edgeprune.latency.source import latency_cost_model

        graph.cost = latency_cost_model(model, graph, input_shape, latency, align, scores=scores, budget=budget)
    widths = allocate(graph.cost, scores, budget, align)
    select = getattr(scorer, "select", None)
    kept = select(scores, widths) if select is not None else select_kept(scores, widths)
    if [len(k) for k in kept] != list(widths):
        raise MethodError(f"method {method!r} selected {[len(k) for k in kept]} channels, not the widths {widths}")
    source = model
    if hasattr(scorer, "reconstruct"):
        source = copy.deepcopy(model)
        scorer.reconstruct(source, graph, kept)
    result = slim_with_parity(source, spec, input_shape, graph, kept, method, budget, align)
    if hasattr(scorer, "report"):
        result.report[method] = scorer.report()
    if latency is not None:
        result.report["latency"]["table_digest"] = latency.digest()
    result.report["elapsed_s"] = round(time.perf_counter() - start, 3)
    return result


def slim_with_parity(
    model: nn.Module,
    spec: str,
    input_shape: tuple[int, ...],
    graph: ChannelGraph,
    kept: list[list[int]],
    method: str,
    budget: Budget,
    align: int,
) -> PruneResult:
    """Plan from kept indices, slim, and check masked == slim; every method ends here."""
    plan = make_plan(spec, input_shape, model, graph, kept)
    slim_model = slim(model, plan)
    parity = masked_vs_slim(model, graph, kept, slim_model, input_shape)
    if not parity.ok(PARITY_RTOL):
        raise ParityError(
            f"slim model differs from the masked model by {parity.rel_diff:.2e} (relative), above "
            f"{PARITY_RTOL:g}: the channel graph of {spec} is not handled correctly; nothing was written"
        )
    return PruneResult(plan, slim_model, build_report(graph, plan, method, budget, align, parity))


def masked_vs_slim(model, graph, kept, slim_model, input_shape):
    handle = apply_masks(model, graph, plan_masks(graph, kept))
    try:
        return compare_outputs(model, slim_model, fixed_input(input_shape))
    finally:
        handle.remove()


def build_report(graph: ChannelGraph, plan: PruningPlan, method: str, budget: Budget, align: int, parity) -> dict[str, Any]:
    cost, widths = graph.cost, plan.widths
    flops_dense, flops_pruned = cost.dense("flops"), cost.flops(widths)
    params_dense, params_pruned = cost.dense("params"), cost.params(widths)
    report = {
        "edgeprune_version": __version__,
        "spec": plan.spec,
        "input_shape": list(plan.input_shape),
        "method": method,
        "budget": str(budget),
        "min_keep": budget.min_keep,
        "align": align,
        "flops_dense": int(flops_dense),
        "flops_pruned": int(flops_pruned),
        "flops_ratio": flops_pruned / flops_dense,
        "params_dense": int(params_dense),
        "params_pruned": int(params_pruned),
        "params_ratio": params_pruned / params_dense,
        "groups": [
            {"root": g.root, "size": g.size, "kept": len(k.kept)} for g, k in zip(graph.prunable, plan.groups)
        ],
        "parity_max_abs_diff": parity.max_abs_diff,
        "parity_rel_diff": parity.rel_diff,
        "warnings": budget_warnings(cost, widths, budget, align, [g.root for g in graph.prunable]),
    }
    if hasattr(cost, "staircase"):  # a latency cost model: the table's prediction
        from edgeprune.latency.source import latency_report

        report["latency"] = latency_report(cost, widths)
    return report
