"""Channel groups: which channel dimensions must be pruned together.

A *group* is a set of coupled channel dimensions across layers: a conv's output channels,
the BatchNorm after it, every consumer's input channels, and, across residual adds or
concatenations, everything tied to them. Pruning channel ``i`` of a group removes it from
every member at once. Channels are numbered in the group's *root* (the first conv/linear
that produces them), which is how plans name them.

The engine is Torch-Pruning's DependencyGraph; this module turns it into plain data
(names, sizes, a cost model) and names the module when tracing fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from edgeprune.errors import GraphError
from edgeprune.pruning.cost import CostModel, Term, Width

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_MIXING = _CONV + (nn.Linear,)  # layers whose input channels mix into outputs


@dataclass(frozen=True)
class Member:
    """One module's share of a group: ``count`` of its ``dim`` channels ('out' or 'in')."""

    module: str
    op: str
    dim: str
    count: int


@dataclass(frozen=True)
class ChannelGroup:
    """Coupled channel dimensions. ``producers`` are where a channel mask is applied."""

    index: int
    root: str
    size: int
    members: tuple[Member, ...]
    producers: tuple[str, ...]
    prunable: bool
    reason: str = ""  # why not prunable


def _is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, _CONV) and m.groups > 1 and m.groups == m.in_channels


class ChannelGraph:
    """The channel groups of ``model`` traced on an input of ``input_shape``.

    Attributes:
        groups: every group, prunable or not, in tracing order.
        prunable: the prunable groups; budgets, plans and masks index these.
        cost: FLOPs/params as functions of the widths of ``prunable`` groups.
    """

    def __init__(self, model: nn.Module, input_shape: Sequence[int]) -> None:
        self.model = model
        self.input_shape = tuple(input_shape)
        self._names = {m: n for n, m in model.named_modules()}
        executed, shapes = _run_once(model, self.input_shape)
        self.dg = _build_dependency_graph(model, self.input_shape)
        missing = [n for n in executed if n and self._module(n) not in self.dg.module2node
                   and isinstance(self._module(n), _MIXING)]
        if missing:
            raise GraphError(
                f"module {missing[0]!r} ({type(self._module(missing[0])).__name__}) ran in forward "
                "but its output does not reach the model output through autograd-traceable ops "
                "(e.g. .numpy(), .item(), torch.no_grad() or a Python-side copy breaks the graph); "
                f"edgeprune cannot know which channels it is coupled with ({len(missing)} such modules)"
            )
        self._tp_groups: list = []  # Torch-Pruning groups, parallel to self.groups
        self.groups = self._collect_groups()
        self.prunable = [g for g in self.groups if g.prunable]
        self.cost = self._cost_model(shapes)

    # ---- construction -------------------------------------------------------------------

    def _module(self, name: str) -> nn.Module:
        return self.model.get_submodule(name)

    def _collect_groups(self) -> list[ChannelGroup]:
        dg = self.dg
        groups: list[ChannelGroup] = []
        for tp_group in dg.get_all_groups(root_module_types=_MIXING):
            root = tp_group[0].dep.target.module
            members, producers, outs = [], [], []
            consumers = 0
            reason = ""
            for item in tp_group:
                module = item.dep.target.module
                if not isinstance(module, nn.Module):
                    reason = reason or "it includes a bare nn.Parameter"
                    continue
                if module not in self._names:
                    continue  # Torch-Pruning's stand-ins for functional ops (reshape, cat, add)
                name = self._names[module]
                dim = "out" if dg.is_out_channel_pruning_fn(item.dep.handler) else "in"
                members.append(Member(name, type(module).__name__, dim, len(item.idxs)))
                if dim == "in" and isinstance(module, _MIXING) and not _is_depthwise(module):
                    consumers += 1
                if dim == "out":
                    outs.append(module)
                if isinstance(module, _CONV) and module.groups > 1 and not _is_depthwise(module):
                    reason = reason or f"grouped conv {name!r} (groups={module.groups}) is not supported"
            if consumers == 0:
                reason = reason or "its channels reach the model output"
            out_set = set(outs)
            for module in outs:
                feeds_norm = any(
                    o.module in out_set and not isinstance(o.module, _MIXING)
                    for o in dg.module2node[module].outputs
                )
                if not feeds_norm:  # the last per-channel op of this path: mask here
                    producers.append(self._names[module])
            size = dg.get_out_channels(root)
            groups.append(
                ChannelGroup(
                    index=len(groups),
                    root=self._names[root],
                    size=int(size),
                    members=tuple(members),
                    producers=tuple(producers),
                    prunable=not reason,
                    reason=reason,
                )
            )
            self._tp_groups.append(tp_group)
        return groups

    def _cost_model(self, shapes: dict[str, tuple[int, ...]]) -> CostModel:
        var = {g.index: i for i, g in enumerate(self.prunable)}  # group index -> variable
        parts: dict[tuple[str, str], list[tuple[int, float]]] = {}  # (module, dim) -> [(var, scale)]
        for g, var_index in ((g, var.get(g.index)) for g in self.groups):
            if var_index is None:
                continue
            for member in g.members:
                parts.setdefault((member.module, member.dim), []).append((var_index, member.count / g.size))

        def width(name: str, dim: str, full: int) -> Width:
            p = tuple(parts.get((name, dim), ()))
            fixed = full - sum(scale * self.prunable[v].size for v, scale in p)
            return Width(float(round(fixed)), p)

        def out_width(name: str, full: int) -> Width:
            return width(name, "out", full)

        def in_width(name: str, full: int) -> Width:
            return width(name, "in", full)

        flops, params = [], []
        counted = 0
        for name, module in self.model.named_modules():
            if name not in shapes:
                continue  # never ran: costs nothing at inference
            own = sum(p.numel() for p in module.parameters(recurse=False))
            if isinstance(module, _MIXING):
                if isinstance(module, nn.Linear):
                    cin, cout, kernel, groups = module.in_features, module.out_features, 1, 1
                    positions = _numel(shapes[name]) // cout
                else:
                    cin, cout, groups = module.in_channels, module.out_channels, module.groups
                    kernel = int(torch.tensor(module.kernel_size).prod())
                    positions = _numel(shapes[name][1:])  # shapes exclude the batch dim
                out_w = out_width(name, cout)
                bias = 1 if module.bias is not None else 0
                if _is_depthwise(module):
                    # every output channel sees one input channel, whatever the multiplier
                    flops.append(Term(name, float(kernel * positions), out_w))
                    params.append(Term(name, float(kernel + bias), out_w))
                else:
                    in_w = in_width(name, cin)
                    flops.append(Term(name, kernel * positions / groups, in_w, out_w))
                    params.append(Term(name, kernel / groups, in_w, out_w))
                    if bias:
                        params.append(Term(name, 1.0, out_w))
                counted += own
            elif own and (name, "out") in parts:  # per-channel layers: BatchNorm, LayerNorm, PReLU ...
                channels = _channels(module)
                params.append(Term(name, own / channels, out_width(name, channels)))
                counted += own
        total = sum(p.numel() for p in self.model.parameters())
        return CostModel(
            sizes=tuple(g.size for g in self.prunable),
            flops_terms=tuple(flops),
            params_terms=tuple(params),
            params_const=float(total - counted),
        )

    # ---- use ----------------------------------------------------------------------------

    def full_tp_group(self, group: ChannelGroup):
        """The Torch-Pruning group covering all of ``group``'s channels (for importance scorers)."""
        return self._tp_groups[group.index]

    def tp_group(self, group: ChannelGroup, idxs: Sequence[int]):
        """A Torch-Pruning group that removes root channels ``idxs`` of ``group``."""
        root = self._module(group.root)
        pruner = self.dg.get_pruner_of_module(root)
        return self.dg.get_pruning_group(root, pruner.prune_out_channels, list(idxs))

    def producer_channels(self, group: ChannelGroup, producer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(channel positions in ``producer``'s output, the root channels they carry).

        A producer after a concatenation (DenseNet) carries several groups, each at an offset."""
        module = self._module(producer)
        for item in self._tp_groups[group.index]:
            if item.dep.target.module is module and self.dg.is_out_channel_pruning_fn(item.dep.handler):
                return torch.as_tensor(item.idxs, dtype=torch.long), torch.as_tensor(item.root_idxs, dtype=torch.long)
        raise KeyError(f"{producer!r} is not a producer of group {group.root!r}")


def _channels(module: nn.Module) -> int:
    for attr in ("num_features", "num_channels", "num_parameters"):
        if hasattr(module, attr):
            return int(getattr(module, attr))
    if isinstance(module, nn.LayerNorm):
        return int(module.normalized_shape[-1])
    raise GraphError(f"module of type {type(module).__name__} has parameters per channel but no known channel count")


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _run_once(model: nn.Module, input_shape: tuple[int, ...]):
    """Run one forward (eval, batch 1); return executed module names and output shapes.

    If forward fails, the error names the innermost module that was running."""
    stack: list[str] = []
    executed: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}
    names = {m: n for n, m in model.named_modules()}

    def pre(module, _inputs):
        stack.append(names[module])

    def post(module, _inputs, output):
        stack.pop()
        executed.append(names[module])
        if isinstance(output, torch.Tensor):
            shapes[names[module]] = tuple(output.shape[1:]) if output.dim() > 1 else tuple(output.shape)

    handles = [m.register_forward_pre_hook(pre) for m in model.modules()]
    handles += [m.register_forward_hook(post) for m in model.modules()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.randn(1, *input_shape[1:]))
    except Exception as err:  # noqa: BLE001 - report where it failed, whatever it was
        where = stack[-1] if stack and stack[-1] else "the top-level forward"
        module = model.get_submodule(stack[-1]) if stack and stack[-1] else model
        raise GraphError(
            f"forward on an input of shape {list(input_shape)} failed in module {where!r} "
            f"({type(module).__name__}): {type(err).__name__}: {err}"
        ) from None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return executed, shapes


def _build_dependency_graph(model: nn.Module, input_shape: tuple[int, ...]):
    import torch_pruning as tp

    was_training = model.training
    model.eval()  # tracing must not update BatchNorm running statistics
    try:
        with torch.enable_grad():
            return tp.DependencyGraph().build_dependency(
                model, example_inputs=torch.randn(1, *input_shape[1:]), verbose=False
            )
    except Exception as err:  # noqa: BLE001
        raise GraphError(
            f"tracing channel dependencies failed: {type(err).__name__}: {err}. "
            "edgeprune traces through autograd; ops without a grad_fn or custom autograd "
            "functions may need a customized pruner"
        ) from None
    finally:
        model.train(was_training)


def count_flops_params(model: nn.Module, input_shape: Sequence[int]) -> tuple[int, int]:
    """Measure MACs (Conv/Linear, one sample) and parameters of any model by running it.

    Independent of the cost model, so tests can check one against the other."""
    _, shapes = _run_once(model, tuple(input_shape))
    macs = 0
    for name, m in model.named_modules():
        if name not in shapes or not isinstance(m, _MIXING):
            continue
        if isinstance(m, nn.Linear):
            macs += _numel(shapes[name]) * m.in_features
        else:
            per_out = m.in_channels // m.groups * int(torch.tensor(m.kernel_size).prod())
            macs += _numel(shapes[name]) * per_out
    return macs, sum(p.numel() for p in model.parameters())
