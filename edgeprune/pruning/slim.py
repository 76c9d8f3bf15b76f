"""Physically remove pruned channels: ``slim(model, plan)`` returns a narrower nn.Module.

Module names are unchanged, so a slim state_dict lines up with the dense one key by key
(only shapes differ). A plan's ``removed_blocks`` (depth pruning, `edgeprune.pruning.depth`)
are then replaced by ``nn.Identity``: their keys are absent from the slim state_dict.
"""

from __future__ import annotations

import copy

from torch import nn

from edgeprune.errors import GraphError, PlanError
from edgeprune.pruning.graph import ChannelGraph, _run_once
from edgeprune.pruning.plan import PruningPlan, fingerprint


def check_plan_fits(plan: PruningPlan, model: nn.Module, graph: ChannelGraph) -> None:
    """Raise PlanError unless ``plan`` was made for this (dense) model."""
    actual = fingerprint(model)
    if plan.fingerprint != actual:
        raise PlanError(
            f"the plan was made for {plan.spec} (fingerprint {plan.fingerprint}) but this model's "
            f"structure differs (fingerprint {actual}); a plan replays only on a fresh dense "
            "instance of the model it was made for"
        )
    expected = [(g.root, g.size) for g in graph.prunable]
    got = [(g.root, g.size) for g in plan.groups]
    if expected != got:
        diff = next(((e, g) for e, g in zip(expected, got) if e != g), None)
        raise PlanError(
            f"the plan's groups do not match the model's: expected {len(expected)} groups, got "
            f"{len(got)}" + (f"; first difference: model {diff[0]}, plan {diff[1]}" if diff else "")
        )
    if plan.removed_blocks:
        from edgeprune.pruning.depth import check_removed

        check_removed(model, plan.removed_blocks)


def slim(model: nn.Module, plan: PruningPlan) -> nn.Module:
    """Return a copy of ``model`` with every channel the plan drops physically removed.

    Raises GraphError, naming the layer, if a group cannot be removed consistently or the
    slim model no longer runs on the plan's input shape (never a bare traceback)."""
    slim_model = copy.deepcopy(model)
    graph = ChannelGraph(slim_model, plan.input_shape)  # traced on the copy it will prune
    check_plan_fits(plan, slim_model, graph)
    for group, group_plan in zip(graph.prunable, plan.groups):
        pruned = group_plan.pruned
        if not pruned:
            continue
        tp_group = graph.tp_group(group, pruned)  # checked: GraphError if inconsistent
        try:
            tp_group.prune()
        except Exception as err:  # noqa: BLE001 - Torch-Pruning's own failure, named here
            raise GraphError(
                f"removing {len(pruned)} channels of group {group.root!r} failed in Torch-Pruning: "
                f"{type(err).__name__}: {err}"
            ) from None
    if plan.removed_blocks:
        from edgeprune.pruning.depth import remove_blocks

        remove_blocks(slim_model, plan.removed_blocks)
    try:
        _run_once(slim_model, plan.input_shape)
    except GraphError as err:
        raise GraphError(
            f"the slim model of {plan.spec} does not run: {err}. Its channel groups are not handled "
            "consistently; nothing was written"
        ) from None
    return slim_model
