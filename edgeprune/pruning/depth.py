"""Depth pruning: whole residual blocks removed, each becoming its shortcut (the identity).

A plan may name residual blocks in ``removed_blocks`` (module names, e.g. ``layer1.1``).
`edgeprune.pruning.slim.slim` first removes the plan's channels as usual, then replaces every
removed block by ``nn.Identity`` (`remove_blocks`); module names of everything else are
unchanged, so a slim state_dict still lines up with the dense one (the removed blocks' keys
are simply absent), and a prune folder rebuilds the same slim architecture from its plan.

Which blocks can go (`find_blocks`): the residual blocks of the known ResNet families
(``edgeprune:resnet*``'s ``BasicBlock``, torchvision's ``BasicBlock`` and ``Bottleneck``)
whose shortcut is the identity (``downsample is None``). Such a block computes
``relu(branch(x) + x)``; with its residual branch scaled to 0 it computes ``relu(x)``, which is
``x`` because its input is itself the output of a ReLU (the stem's or the previous block's).
A block with a downsampling (conv) shortcut stays. Identity equivalence is not assumed but
measured: `slim_with_depth` compares the slim model with the masked model (the removed
blocks' residual branches zeroed by the method) and refuses a difference above the parity
tolerance.

FLOPs and parameters of a model without some blocks: `without_blocks` drops their terms from
a `CostModel` (pure numbers, used to allocate channels after removal); the report's
``flops_pruned``/``params_pruned`` are measured on the slim model itself
(`edgeprune.pruning.graph.count_flops_params`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from edgeprune.errors import PlanError
from edgeprune.pruning.cost import CostModel

FIELD = "removed_blocks"  # the plan field


@dataclass(frozen=True)
class ResidualBlock:
    """A residual block: its module name, the BatchNorm that ends its residual branch (full
    module name) and whether its shortcut is the identity (only then can it be removed)."""

    name: str
    last_bn: str
    identity: bool


def _block_types() -> dict[type, str]:
    """Known residual block classes -> the attribute naming the last BN of the residual branch."""
    from edgeprune.models.cifar_resnet import BasicBlock

    types: dict[type, str] = {BasicBlock: "bn2"}
    try:
        from torchvision.models import resnet as tv
    except ImportError:  # torchvision is optional: its blocks are simply not known then
        return types
    types[tv.BasicBlock] = "bn2"
    types[tv.Bottleneck] = "bn3"
    return types


def find_blocks(model) -> list[ResidualBlock]:
    """Every known residual block of ``model``, in module order (removable or not)."""
    from torch import nn

    types = _block_types()
    out = []
    for name, module in model.named_modules():
        bn_attr = types.get(type(module))
        if bn_attr is None or not isinstance(getattr(module, bn_attr, None), nn.modules.batchnorm._BatchNorm):
            continue
        out.append(ResidualBlock(name, f"{name}.{bn_attr}", getattr(module, "downsample", None) is None))
    return out


def check_removed(model, names: Sequence[str], where: str = FIELD) -> None:
    """PlanError, naming ``where[i]``, unless every name is a removable residual block of ``model``."""
    blocks = {b.name: b for b in find_blocks(model)}
    modules = dict(model.named_modules())
    removable = [b.name for b in blocks.values() if b.identity]
    hint = f"removable blocks of this model: {', '.join(removable) if removable else 'none'}"
    for i, name in enumerate(names):
        at = f"{where}[{i}] {name!r}"
        if name not in modules or name == "":
            raise PlanError(f"{at} is not a module of this model; {hint}")
        if name not in blocks:
            raise PlanError(f"{at} is a {type(modules[name]).__name__}, not a residual block; {hint}")
        if not blocks[name].identity:
            raise PlanError(f"{at} has a downsampling shortcut (not the identity) and cannot be removed; {hint}")


def remove_blocks(model, names: Sequence[str]) -> None:
    """In place: replace each named block by ``nn.Identity`` (the names are checked first)."""
    from torch import nn

    check_removed(model, names)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, nn.Identity())


def silence_blocks(model, names: Sequence[str]) -> None:
    """In place: zero the last BatchNorm (scale and shift) of each named block's residual branch,
    so the block computes its shortcut: the masked equivalent of removing it (the names are
    checked first). Used where no method has zeroed the branch (Scratch-E/B on a random model)."""
    import torch

    check_removed(model, names)
    last = {b.name: b.last_bn for b in find_blocks(model)}
    with torch.no_grad():
        for name in names:
            bn = model.get_submodule(last[name])
            if bn.weight is not None:
                bn.weight.zero_()
            if bn.bias is not None:
                bn.bias.zero_()


def _inside(layer: str, blocks: Sequence[str]) -> bool:
    return any(layer.startswith(b + ".") for b in blocks)


def without_blocks(cost: CostModel, blocks: Sequence[str], block_params: Sequence[int]) -> CostModel:
    """The cost model of the same model with ``blocks`` removed (``block_params``: each block's
    parameter count, so that the width-independent part of its parameters goes too)."""
    flops = tuple(t for t in cost.flops_terms if not _inside(t.layer, blocks))
    params = tuple(t for t in cost.params_terms if not _inside(t.layer, blocks))
    dropped_terms = cost.params(cost.sizes) - cost.params_const - sum(t(cost.sizes) for t in params)
    const = cost.params_const - (sum(block_params) - dropped_terms)
    return CostModel(sizes=cost.sizes, flops_terms=flops, params_terms=params, params_const=const)


def block_params(model, names: Sequence[str]) -> list[int]:
    return [sum(p.numel() for p in model.get_submodule(n).parameters()) for n in names]


def slim_with_depth(model, spec: str, input_shape: tuple[int, ...], graph, kept: list[list[int]],
                    removed: Sequence[str], method: str, budget, align: int):
    """As `edgeprune.pruning.one_shot.slim_with_parity`, with ``removed`` blocks taken out too.

    ``model`` is the masked model's source: the removed blocks' residual branches must
    already compute 0 (the method zeroes their factor), so that masked == slim holds. The
    report's flops/params are measured on the slim model, and it gains ``removed_blocks``."""
    from edgeprune.pruning.budget import WINDOW
    from edgeprune.pruning.graph import count_flops_params
    from edgeprune.pruning.one_shot import (
        PARITY_RTOL,
        ParityError,
        PruneResult,
        build_report,
        masked_vs_slim,
    )
    from edgeprune.pruning.plan import make_plan
    from edgeprune.pruning.slim import slim

    plan = dataclasses.replace(make_plan(spec, input_shape, model, graph, kept), removed_blocks=tuple(removed))
    slim_model = slim(model, plan)
    parity = masked_vs_slim(model, graph, kept, slim_model, input_shape)
    if not parity.ok(PARITY_RTOL):
        raise ParityError(
            f"slim model differs from the masked model by {parity.rel_diff:.2e} (relative), above "
            f"{PARITY_RTOL:g}: a removed block of {spec} does not compute the identity once its residual "
            "branch is zero; nothing was written"
        )
    report: dict[str, Any] = build_report(graph, plan, method, budget, align, parity)
    flops, params = count_flops_params(slim_model, input_shape)
    report.update(flops_pruned=int(flops), flops_ratio=flops / report["flops_dense"],
                  params_pruned=int(params), params_ratio=params / report["params_dense"],
                  removed_blocks=list(removed))
    report["warnings"] = [w for w in report["warnings"] if "below the documented window" not in w]
    if budget.kind in ("flops", "params"):
        achieved = report[f"{budget.kind}_ratio"]
        if not WINDOW * budget.value - 1e-9 <= achieved <= budget.value + 1e-9:
            report["warnings"].append(
                f"{budget} kept {budget.kind}={achieved:.4f} with {len(removed)} residual blocks removed, "
                f"outside the documented window [{WINDOW * budget.value:.4f}, {budget.value:g}]")
    return PruneResult(plan, slim_model, report)
