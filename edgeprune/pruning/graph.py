"""Channel groups: which channel dimensions must be pruned together.

A *group* is a set of coupled channel dimensions across layers: a conv's output channels,
the BatchNorm after it, every consumer's input channels, and, across residual adds or
concatenations, everything tied to them. Pruning channel ``i`` of a group removes it from
every member at once. Channels are numbered in the group's *root* (the first conv/linear
that produces them), which is how plans name them.

The engine is Torch-Pruning's DependencyGraph; this module turns it into plain data
(names, sizes, a cost model) and names the module when tracing fails. It also decides which
groups can be pruned at all: a group whose channels pass an op that cannot follow a narrower
tensor (a split or slice with sizes fixed in Python, a channel shuffle reshape, a norm across
channels ...) is kept whole, and ``ChannelGraph.notes`` says why, naming the op and the
module it ran in; the rest of the model still prunes. Building is bounded in time
(``GRAPH_TIME_LIMIT_S``): GraphError rather than a hang.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

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


_REACHES_OUTPUT = "its channels reach the model output"


def _is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, _CONV) and m.groups > 1 and m.groups == m.in_channels


class ChannelGraph:
    """The channel groups of ``model`` traced on an input of ``input_shape``.

    Attributes:
        groups: every group, prunable or not, in tracing order.
        prunable: the prunable groups; budgets, plans and masks index these.
        cost: FLOPs/params as functions of the widths of ``prunable`` groups.
        notes: why groups other than the output's are kept whole (module and op named).

    Raises GraphError if the forward fails, the graph cannot be traced, or building it takes
    more than ``time_limit`` seconds (default ``GRAPH_TIME_LIMIT_S``).
    """

    def __init__(
        self, model: nn.Module, input_shape: Sequence[int], time_limit: float | None = None
    ) -> None:
        self.model = model
        self.input_shape = tuple(input_shape)
        self._names = {m: n for n, m in model.named_modules()}
        executed, shapes = _run_once(model, self.input_shape)
        self._deadline = _Deadline(GRAPH_TIME_LIMIT_S if time_limit is None else time_limit, type(model).__name__)
        self.dg = _build_dependency_graph(model, self.input_shape, self._deadline)
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
        self._deadline.step = "collecting channel groups"
        try:
            self.groups = self._collect_groups()
            self.prunable = [g for g in self.groups if g.prunable]
            self._deadline.step = "building the cost model"
            self.cost = self._cost_model(shapes)
        except GraphError:
            raise
        except Exception as err:  # noqa: BLE001 - never a bare traceback from graph building
            raise GraphError(
                f"building the channel graph of {type(model).__name__} failed while {self._deadline.step}: "
                f"{type(err).__name__}: {err}"
            ) from None

    @property
    def notes(self) -> list[str]:
        """Why groups are kept whole, other than reaching the model output: one line per group."""
        return [
            f"group {g.root!r} ({g.size} channels) is kept whole: {g.reason}"
            for g in self.groups
            if not g.prunable and g.reason != _REACHES_OUTPUT
        ]

    # ---- construction -------------------------------------------------------------------

    def _module(self, name: str) -> nn.Module:
        return self.model.get_submodule(name)

    def _collect_groups(self) -> list[ChannelGroup]:
        dg = self.dg
        groups: list[ChannelGroup] = []
        for tp_group in dg.get_all_groups(root_module_types=_MIXING):
            self._deadline.check()
            examined = self._examine(tp_group)
            if examined[-1] and tp_group._ep_conflicts:
                examined, tp_group = self._reroot(tp_group, examined)
            root, size, members, producers, reasons = examined
            reason = reasons[0] if reasons else ""
            groups.append(
                ChannelGroup(
                    index=len(groups),
                    root=self._names[root],
                    size=size,
                    members=tuple(members),
                    producers=tuple(producers),
                    prunable=not reason,
                    reason=reason,
                )
            )
            self._tp_groups.append(tp_group)
        return groups

    def _examine(self, tp_group):
        """(root module, size, members, producers, reasons it cannot be pruned) of a TP group."""
        dg = self.dg
        root = tp_group[0].dep.target.module
        size = int(dg.get_out_channels(root))
        members, producers, outs = [], [], []
        consumers = 0
        ops_reasons: list[str] = []
        reasons: list[str] = []
        for item in tp_group:
            node = item.dep.target
            module = node.module
            if not isinstance(module, nn.Module):
                reasons.append("it includes a bare nn.Parameter")
                continue
            if module not in self._names:  # Torch-Pruning's stand-ins for functional ops (reshape, cat, add)
                if node in dg._ep_unsafe:
                    ops_reasons.append(dg._ep_unsafe[node])
                continue
            name = self._names[module]
            dim = "out" if dg.is_out_channel_pruning_fn(item.dep.handler) else "in"
            members.append(Member(name, type(module).__name__, dim, len(item.idxs)))
            if dim == "in" and isinstance(module, _MIXING) and not _is_depthwise(module):
                consumers += 1
            if dim == "out":
                outs.append(module)
            reasons += self._member_problems(name, module, dim, item, size)
        if tp_group._ep_conflicts:
            reasons.insert(0, self._conflict_text(tp_group))
        reasons = ops_reasons + reasons
        if consumers == 0:
            reasons.append(_REACHES_OUTPUT)
        out_set = set(outs)
        for module in outs:
            feeds_norm = any(
                o.module in out_set and not isinstance(o.module, _MIXING)
                for o in dg.module2node[module].outputs
            )
            if not feeds_norm:  # the last per-channel op of this path: mask here
                producers.append(self._names[module])
        return root, size, members, producers, reasons

    def _reroot(self, tp_group, examined):
        """Torch-Pruning roots a group at the first layer it meets; when that layer sits after a
        concatenation of a tensor with a function of itself (GhostNet's ``cat([x, cheap(x)])``)
        one channel there stands for two, and the group looks inconsistent. Rooted at the layer
        that produces ``x`` it is consistent: try the group's other producers, narrowest first."""
        dg = self.dg
        modules = {it.dep.target.module for it in tp_group}
        candidates = sorted(
            {it.dep.target.module for it in tp_group
             if isinstance(it.dep.target.module, _MIXING) and it.dep.target.module is not examined[0]
             and dg.is_out_channel_pruning_fn(it.dep.handler)},
            key=lambda m: (_is_depthwise(m), int(dg.get_out_channels(m)), self._names[m]),
        )
        for module in candidates:
            self._deadline.check()
            pruner = dg.get_pruner_of_module(module)
            other = dg.get_pruning_group(module, pruner.prune_out_channels, range(int(dg.get_out_channels(module))))
            if {it.dep.target.module for it in other} != modules:
                continue
            again = self._examine(other)
            if not again[-1] or again[-1] == [_REACHES_OUTPUT]:
                return again, other
        return examined, tp_group

    def _member_problems(self, name: str, module: nn.Module, dim: str, item, size: int) -> list[str]:
        """Why pruning this group through ``module`` would not give a consistent narrower model."""
        kind = type(module).__name__
        out: list[str] = []
        if isinstance(module, _CONV) and module.groups > 1 and not _is_depthwise(module):
            out.append(f"grouped conv {name!r} (groups={module.groups}) is not supported")
        if isinstance(module, nn.LayerNorm):
            out.append(f"{kind} {name!r} normalises across the channels: their statistics change when one is removed")
        if isinstance(module, nn.GroupNorm) and module.num_groups != module.num_channels:
            out.append(
                f"{kind} {name!r} normalises groups of channels ({module.num_groups} groups): "
                "their statistics change when one is removed"
            )
        channels = self.dg.get_out_channels(module) if dim == "out" else self.dg.get_in_channels(module)
        if dim == "out" and channels:
            own = [(n, t) for n, t in module.named_parameters(recurse=False) if n not in ("weight", "bias")]
            own += [(n, t) for n, t in module.named_buffers(recurse=False)
                    if t is not None and n not in ("running_mean", "running_var", "num_batches_tracked")]
            extra = [n for n, t in own if channels in tuple(t.shape)]
            if extra:  # e.g. ScaledStdConv2d's gain: Torch-Pruning cuts weight and bias only
                out.append(
                    f"{kind} {name!r} has per-channel tensors Torch-Pruning does not prune ({', '.join(extra)})"
                )
        if channels is not None and item.idxs and max(item.idxs) >= channels:
            out.append(
                f"Torch-Pruning maps the group onto channel {max(item.idxs)} of {name!r} ({kind}), "
                f"which has {channels} {dim}put channels (an op between them is not understood)"
            )
        if len(set(item.root_idxs)) != size:
            out.append(
                f"{name!r} ({kind}) receives only {len(set(item.root_idxs))} of the group's {size} channels, "
                "so pruning could empty it"
            )
        return out

    def _conflict_text(self, tp_group) -> str:
        node, pos, r1, r2 = tp_group._ep_conflicts[0]
        what = self._names.get(node.module) if isinstance(node.module, nn.Module) else None
        what = repr(what) if what else self.dg._ep_where(node)
        cat = next((self.dg._ep_where(it.dep.target) for it in tp_group
                    if it.dep.target in self.dg._ep_concat), None)
        return (
            f"channel {pos} of {what} carries two channels of the group ({r1} and {r2})"
            + (f", through {cat}" if cat else "")
            + ": a tensor is concatenated with a function of itself, so removing one channel removes the other"
        )

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
        """A Torch-Pruning group that removes root channels ``idxs`` of ``group``.

        Checked against the full group: every layer loses exactly the channels that carry the
        removed root channels, and none loses all of its channels; a GraphError names the
        layer otherwise (instead of a crash, or a wrong model, after pruning)."""
        pruned = sorted({int(i) for i in idxs})
        if pruned and (pruned[0] < 0 or pruned[-1] >= group.size or len(pruned) >= group.size):
            raise GraphError(
                f"group {group.root!r} has {group.size} channels; removing {len(pruned)} of them "
                f"(indices {pruned[0]}..{pruned[-1]}) is not possible: a group keeps at least one channel"
            )
        root = self._module(group.root)
        pruner = self.dg.get_pruner_of_module(root)
        self.dg._ep_deadline = _Deadline(self._deadline.limit, type(self.model).__name__)  # per call
        self.dg._ep_deadline.step = f"finding the channels coupled with group {group.root!r}"
        try:
            partial = self.dg.get_pruning_group(root, pruner.prune_out_channels, pruned)
        except GraphError:
            raise
        except Exception as err:  # noqa: BLE001
            raise GraphError(
                f"finding the channels coupled with {len(pruned)} channels of group {group.root!r} failed: "
                f"{type(err).__name__}: {err}"
            ) from None
        self._check_partial(group, partial, set(pruned))
        return partial

    def _check_partial(self, group: ChannelGroup, partial, pruned: set[int]) -> None:
        dg = self.dg
        full = {(it.dep.target, it.dep.handler): it for it in self._tp_groups[group.index]}

        def label(node) -> str:
            m = node.module
            if isinstance(m, nn.Module) and m in self._names:
                return f"{self._names[m]!r} ({type(m).__name__})"
            return dg._ep_where(node)

        def fail(node, text: str):
            raise GraphError(
                f"pruning {len(pruned)} channels of group {group.root!r} would {text} at {label(node)}; "
                "the group's channels are not coupled consistently, nothing was pruned"
            )

        got = set()
        for it in partial:
            key = (it.dep.target, it.dep.handler)
            got.add(key)
            ref = full.get(key)
            if ref is None:
                fail(it.dep.target, "reach a layer outside the group")
            if not set(it.root_idxs) <= pruned:
                fail(it.dep.target, "also remove channels that were to be kept")
            if len(it.idxs) != sum(1 for r in ref.root_idxs if r in pruned):
                fail(it.dep.target, "remove a different number of channels than the group carries")
            m = it.dep.target.module
            if isinstance(m, nn.Module) and m in self._names and dg.is_out_channel_pruning_fn(it.dep.handler):
                channels = dg.get_out_channels(m)
                if channels is not None and len(set(it.idxs)) >= channels:
                    fail(it.dep.target, f"remove all {channels} output channels")
        for key, ref in full.items():
            if key not in got and any(r in pruned for r in ref.root_idxs):
                fail(key[0], "leave channels in place that carry removed ones")

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


# ---- building the dependency graph -------------------------------------------------------
#
# Torch-Pruning traces the autograd graph and couples channels across every op it finds, but
# it only knows the sizes of splits, slices and concatenations from the autograd node, not
# the Python constants the model's forward uses (``torch.split(x, self.splits)``,
# ``x[:, :self.oup]``), and it treats every op it does not know (permute, channel shuffle
# reshapes, pixel_shuffle, reductions over channels ...) as element-wise. Pruning through
# such an op either crashes in the slim model or silently changes what it computes. So the
# graph is built here with the exact tensor shapes autograd recorded, every op on a path of
# channels is classified, and a group that passes an op which cannot follow a narrower
# tensor is kept whole (with a reason naming the op and the module it ran in); the rest of
# the model still prunes. Building is bounded in time: a model that would take longer
# fails with a GraphError instead of hanging.

GRAPH_TIME_LIMIT_S = 60.0  # the most one ChannelGraph may take to build
_MAX_GROUP_PAIRS = 2_000_000  # (layer, channel, root channel) triples in one group


class _Deadline:
    def __init__(self, limit: float | None, what: str) -> None:
        self.limit, self.what = limit, what
        self.start = time.perf_counter()
        self.step = "tracing the forward"
        self._calls = 0

    def check(self, every: int = 1) -> None:
        self._calls += 1
        if self.limit is None or self._calls % every:
            return
        if time.perf_counter() - self.start > self.limit:
            raise GraphError(
                f"building the channel graph of {self.what} took more than {self.limit:g} s "
                f"(while {self.step}); edgeprune gives up rather than hang. The model's channel "
                "dependencies are too entangled to trace (often a concatenation of overlapping "
                "slices of one tensor, repeated in every block)"
            )


class _RecordOps(TorchFunctionMode):
    """Remembers, for the autograd node of every op's output, the op and the module it ran in."""

    def __init__(self, ops: dict, stack: list[str]) -> None:
        super().__init__()
        self.ops, self.stack = ops, stack

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        where = self.stack[-1] if self.stack else ""
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if args and isinstance(args[0], torch.Tensor):
            outs = (*outs, args[0])  # in-place ops and slice assignment change their first argument
        for t in outs:
            if isinstance(t, torch.Tensor) and t.grad_fn is not None and t.grad_fn not in self.ops:
                self.ops[t.grad_fn] = (func, where)
        return out


def _op_name(func) -> str:
    name = getattr(func, "__name__", None) or repr(func)
    qual = getattr(func, "__qualname__", name) or name
    if name == "__getitem__":
        return "indexing x[...]"
    if name == "__setitem__":
        return "slice assignment x[...] = ..."
    if "." in qual and qual.split(".")[0] in ("Tensor", "TensorBase", "_TensorBase"):
        return f"Tensor.{name}"
    module = getattr(func, "__module__", None) or ""
    if module.startswith("torch.nn.functional"):
        return f"F.{name}"
    return f"torch.{name}" if module.startswith("torch") or not module else f"{module}.{name}"


def _prod(xs) -> int:
    n = 1
    for x in xs:
        n *= int(x)
    return n


def _norm_dim(d, rank: int) -> int:
    d = int(d)
    return d + rank if d < 0 else d


def _dims(value, rank: int) -> tuple[int, ...] | None:
    """A saved ``dim`` argument (int, tuple or empty = all dims) as non-negative dims."""
    if isinstance(value, (tuple, list)):
        return tuple(_norm_dim(d, rank) for d in value) if value else tuple(range(rank))
    if isinstance(value, int) and abs(value) < 64:  # some PyTorch builds leave garbage in unset dims
        return (_norm_dim(value, rank),)
    return None


def _follow(a: tuple, c: int, b: tuple):
    """Where the channel dim ``c`` of shape ``a`` lands in shape ``b`` after a reshape:
    (dim, 1) if it survives whole, (dim, stride) if it is flattened with the dims after it,
    None if it is split or merged with the dims before it."""
    pre, size = _prod(a[:c]), a[c]
    ks = [k for k in range(len(b)) if _prod(b[:k]) == pre]
    for k in ks:
        if b[k] == size:
            return k, 1
    for k in ks:
        merged = size
        for m in range(c + 1, len(a)):
            merged *= a[m]
            if b[k] == merged:
                return k, _prod(a[c + 1:m + 1])
    return None


_CROSS_CHANNEL_NAMES = ("PixelShuffle", "PixelUnshuffle", "ChannelShuffle", "Index", "Scatter",
                        "Gather", "Take", "Put", "MaskedScatter", "MaskedSelect", "Nonzero")
_MIXING_NAMES = ("Mm", "Mv", "Convolution", "Linear", "Matmul", "Dot", "Einsum", "Tensordot", "Cdist")


def _tp_graph_class():
    """A DependencyGraph with exact shapes, classified ops, a time bound and a fast group closure."""
    global _TPGraph
    if _TPGraph is not None:
        return _TPGraph
    import torch_pruning as tp
    from torch_pruning import _helpers, ops
    from torch_pruning.dependency import index_mapping
    from torch_pruning.dependency.dependency import Dependency
    from torch_pruning.dependency.group import Group
    from torch_pruning.pruner import function

    stand_ins = (ops._ConcatOp, ops._SplitOp, ops._ElementWiseOp, ops._ReshapeOp, ops._SliceOp,
                 ops._UnbindOp, ops._ExpandOp)

    class _Group(Group):
        def prune(self, idxs=None, record_history=True):
            super().prune(idxs, record_history)
            self._DG._ep_dirty = True  # concatenation offsets moved: re-derive the index mapping

    class _Graph(tp.DependencyGraph):
        def build(self, model: nn.Module, example: torch.Tensor, deadline: _Deadline):
            self.verbose = False
            self.model = model
            self._module2name = {m: n for n, m in model.named_modules()}
            self.ignored_params = []
            self._param_to_name, self.unwrapped_parameters = self._detect_unwrapped_parameters(None)
            self._ep_deadline = deadline
            self._ep_names = {m: n for n, m in model.named_modules()}
            self._ep_ops: dict = {}
            self._ep_internal: dict = {}  # grad_fn -> the layer whose forward created it
            stack: list[str] = []
            entry: dict = {}
            layers = (nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.LayerNorm,
                      nn.GroupNorm, nn.modules.instancenorm._InstanceNorm, nn.PReLU, nn.Embedding)

            def pre(module, inputs):
                stack.append(self._ep_names[module])
                if isinstance(module, layers):
                    entry[module] = {t.grad_fn for t in inputs if isinstance(t, torch.Tensor)}
                hooks = module._forward_hooks
                if len(hooks) > 1:  # Torch-Pruning's recorder first: it must see the layer's own
                    for key, hook in list(hooks.items()):  # output, not one a mask hook (DTP) made
                        if getattr(hook, "__name__", "") == "_record_grad_fn":
                            hooks.move_to_end(key, last=False)

            def post(module, _inputs, output):
                stack.pop()
                if isinstance(module, layers) and isinstance(output, torch.Tensor) and output.grad_fn is not None:
                    self._ep_mark_internal(module, output.grad_fn, entry.pop(module, set()))

            handles = [m.register_forward_pre_hook(pre) for m in model.modules()]
            handles += [m.register_forward_hook(post) for m in model.modules()]
            try:
                with _RecordOps(self._ep_ops, stack):
                    # forward_fn: Torch-Pruning would otherwise first try model(*x), i.e. the
                    # unbatched x[0], and count every module that ran as reused
                    self.module2node = self._trace(model, example, lambda m, x: m(x), None)
            finally:
                for h in handles:
                    h.remove()
            deadline.step = "classifying the ops between layers"
            self._ep_analyse()
            self._build_dependency(self.module2node)
            # index mappings from the recorded shapes (Torch-Pruning's own shape inference
            # guesses: it crashes on channel shuffles and DPN's tuple concatenations)
            for node, stride in self._ep_flatten.items():
                self._ep_map(node, node.inputs, index_mapping._FlattenIndexMapping, stride, slot=0)
            for node, (start, end, step) in self._ep_slices.items():
                def sliced(_, reverse, start=start, end=end, step=step):
                    return index_mapping._SliceIndexMapping(dim=1, start=start, step=step, end=end, reverse=reverse)
                self._ep_map(node, node.inputs, sliced, None, slot=0)
            for (node, user), pieces in self._ep_split_uses.items():
                offsets = self._ep_splits[node]
                fwd = [d for d in node.dependencies if d.target is user]
                back = [d for d in user.dependencies if d.target is node]
                for dep_f, dep_b, k in zip(fwd, back, pieces):
                    dep_f.index_mapping[0] = index_mapping._SplitIndexMapping(offsets[k:k + 2], reverse=False)
                    dep_b.index_mapping[0] = index_mapping._SplitIndexMapping(offsets[k:k + 2], reverse=True)
            self._ep_update_index_mapping()
            return self

        def _ep_mark_internal(self, module, out_fn, boundary) -> None:
            """Remember the autograd nodes a layer's forward made between its input and its
            output (F.linear on an NHWC tensor: view -> addmm -> view)."""
            found, todo = [], [f for f, _ in out_fn.next_functions if f is not None]
            while todo:
                fn = todo.pop()
                if fn in boundary or fn in self._ep_internal or "accumulategrad" in fn.name().lower():
                    continue
                found.append(fn)
                if len(found) > 64:
                    return  # not a simple layer: leave its ops to be classified
                todo += [f for f, _ in fn.next_functions if f is not None]
            for fn in found:
                self._ep_internal[fn] = module

        # -- shapes and channel dims ------------------------------------------------------

        def _ep_edges(self, node):
            """[(next_function, nr, shape, input node or None)] for every input of ``node``'s op."""
            g = node.grad_fn
            if g is None or not hasattr(g, "next_functions"):
                return None
            params = [p for p, _ in self.unwrapped_parameters]
            edges, tp_inputs = [], iter(node.inputs)
            for fn, nr in g.next_functions:
                if fn is None:
                    edges.append((None, nr, None, None))
                    continue
                shape = _shape_of(fn, nr)
                if "accumulategrad" in fn.name().lower() and not any(fn.variable is p for p in params):
                    edges.append((fn, nr, shape, None))
                    continue
                edges.append((fn, nr, shape, next(tp_inputs, None)))
            if sum(e[3] is not None for e in edges) != len(node.inputs):
                return None
            return edges

        def _ep_analyse(self) -> None:
            self._ep_cd: dict = {}  # node -> (channel dim, stride) of its output
            self._ep_unsafe: dict = {}  # node -> why pruning through it is not possible
            self._ep_flatten: dict = {}  # reshape node -> stride
            self._ep_concat: dict = {}  # concat node -> slots (input node or None per cat input)
            self._ep_splits: dict = {}  # channel split/unbind node -> offsets of its pieces
            self._ep_slices: dict = {}  # channel slice node -> (start, end, step)
            self._ep_split_uses: dict = {}  # (split node, user node) -> piece index per remaining edge
            decouple = []
            active = set()  # nodes downstream of a layer: they carry activations
            for node in self._ep_topological():
                if isinstance(node.module, nn.Module) and node.module in self._ep_names:
                    shape = _out_shapes(node)
                    self._ep_cd[node] = _module_cd(node.module, shape[0]) if shape else None
                    active.add(node)
                    continue
                if not isinstance(node.module, stand_ins) or not any(i in active for i in node.inputs):
                    continue  # e.g. a mask computed from a method's own parameters (DTP) or a weight transpose
                active.add(node)
                if self._ep_internal.get(node.grad_fn) in self.module2node:
                    # inside a layer Torch-Pruning prunes as a whole (F.linear on NHWC input runs
                    # view -> addmm -> view, and the layer's node is the last view): part of it
                    self._ep_cd[node] = next((self._ep_cd[i] for i in node.inputs if self._ep_cd.get(i)), None)
                    continue
                cd, reason, cut = self._ep_classify(node)
                self._ep_cd[node] = cd
                if reason:
                    self._ep_unsafe[node] = reason
                if cut:
                    decouple.append((node, cut))
            for node in self.module2node.values():  # which piece of a split each user takes
                edges = self._ep_edges(node)
                if edges is None:
                    continue
                cut = next((c for n, c in decouple if n is node), ())
                used = [(fn, nr, n) for fn, nr, _, n in edges if n is not None]
                for k, (fn, nr, n) in enumerate(used):
                    if n in self._ep_splits and k not in cut:
                        self._ep_split_uses.setdefault((n, node), []).append(nr)
            for node, cut in decouple:  # broadcast over channels (x * mask[N,1,H,W]): not coupled
                for k in sorted(cut, reverse=True):
                    inp = node.inputs.pop(k)
                    inp.outputs.remove(node)

        def _ep_topological(self):
            order, done = [], set()
            for start in self.module2node.values():
                stack = [(start, False)]
                while stack:
                    node, expanded = stack.pop()
                    if expanded:
                        order.append(node)
                        continue
                    if node in done:
                        continue
                    done.add(node)
                    stack.append((node, True))
                    stack.extend((i, False) for i in node.inputs if i not in done)
            return order

        def _ep_classify(self, node):
            """(channel dim of the output, reason it cannot be pruned through, inputs to decouple)."""
            g = node.grad_fn
            name = g.name().split("::")[-1]
            outs = _out_shapes(node)
            edges = self._ep_edges(node)
            if not outs or edges is None:
                return None, None, ()
            out = outs[0]
            act = [(n, shape, self._ep_cd.get(n)) for _, _, shape, n in edges if n is not None]  # = node.inputs
            if not act:
                return None, None, ()  # acts on parameters only (a weight transpose)
            known = [(shape, cd) for _, shape, cd in act if cd is not None and shape is not None]
            if not known:
                same = all(shape == out for _, shape, _ in act)
                return None, (None if same else self._ep_why(node, "acts on a tensor whose channel dimension is unknown")), ()
            a, (c, stride) = max(known, key=lambda k: len(k[0]))
            r_in, r = len(a), len(out)
            why = lambda text: self._ep_why(node, text)

            def dim_attr(attr):
                return _dims(getattr(g, attr), r_in) if hasattr(g, attr) else None

            if name.startswith("Cat"):
                d = dim_attr("_saved_dim")
                if d is None or any(cd is not None and cd[0] != c for _, _, cd in act):
                    return None, why("concatenates tensors whose channels lie on different dimensions"), ()
                if d[0] != c:
                    return (c, stride), None, ()
                if stride != 1:
                    return None, why("concatenates flattened channels"), ()
                sizes = [shape[c] if shape is not None else None for _, _, shape, _ in edges]
                if sizes.count(None) > 1 or (None in sizes and out[c] is None):
                    return None, why("concatenates tensors of unknown sizes"), ()
                if None in sizes:
                    sizes[sizes.index(None)] = out[c] - sum(s for s in sizes if s is not None)
                node.module.concat_sizes = [int(s) for s in sizes]
                self._ep_concat[node] = [n for _, _, _, n in edges]
                return (c, 1), None, ()
            if stride != 1 and not (r == r_in and all(shape == out for _, shape, _ in act)):
                return None, why("acts on flattened channels (only element-wise ops may follow a flatten)"), ()
            if name.startswith("Permute"):
                dims = dim_attr("_saved_dims")
                return ((dims.index(c), 1) if dims and c in dims else None), None, ()
            if name.startswith("Transpose") or name == "TBackward0":
                d0, d1 = (dim_attr("_saved_dim0"), dim_attr("_saved_dim1")) if name != "TBackward0" else ((0,), (1,))
                if d0 is None or d1 is None:
                    return None, why("transposes unknown dimensions"), ()
                swap = {d0[0]: d1[0], d1[0]: d0[0]}
                return (swap.get(c, c), 1), None, ()
            if name.startswith(("Split", "Unbind", "Slice", "Select", "Narrow", "Unsafesplit")):
                d = dim_attr("_saved_dim")
                if d is None:
                    return None, why("splits an unknown dimension"), ()
                if d[0] == c:
                    if name.startswith("Slice"):
                        self._ep_slices[node] = (int(g._saved_start), min(int(g._saved_end), a[c]), int(g._saved_step))
                    elif name.startswith(("Split", "Unbind")):
                        offsets = [0]
                        for shape in outs:
                            offsets.append(offsets[-1] + (shape[c] if name.startswith("Split") else 1))
                        self._ep_splits[node] = offsets
                    return None, why(self._ep_split_text(name, g, a, c)), ()
                drops = name.startswith(("Unbind", "Select"))
                return (c - (1 if drops and d[0] < c else 0), 1), None, ()
            if name.startswith("Stack"):
                d = _dims(getattr(g, "_saved_dim", None), r)
                return ((c + (1 if d and d[0] <= c else 0), 1) if d else None), None, ()
            if name.startswith("NativeLayerNorm"):
                n = len(getattr(g, "_saved_normalized_shape", ()) or ())
                if c >= r_in - n:
                    return None, why("normalises across the channels (layer norm): the statistics change when one is removed"), ()
                return (c, 1), None, ()
            if name.startswith("NativeGroupNorm"):
                groups = getattr(g, "_saved_group", None)
                if c != 1 or groups != a[1]:
                    return None, why(f"normalises groups of channels (group norm, {groups} groups): the statistics change when one is removed"), ()
                return (c, 1), None, ()
            if name.startswith(_CROSS_CHANNEL_NAMES):
                return None, why("moves or selects channels by index"), ()
            if any(k in name for k in _MIXING_NAMES):
                return None, why("mixes channels outside a Conv/Linear module, where Torch-Pruning cannot follow"), ()
            if name.startswith("AsStrided") and a != out:
                return None, why(f"takes a strided view {list(a)} -> {list(out)}"), ()
            if not name.startswith(("Unsqueeze", "Expand")):
                for attr in ("_saved_dim", "_saved_dims"):
                    d = dim_attr(attr)
                    if d is not None and c in d:
                        return None, why(f"works across the channels ({name}, dim={getattr(g, attr)}): removing one changes the others"), ()
            if r != r_in or isinstance(node.module, ops._ReshapeOp):
                to = _follow(a, c, out) if r > 0 else None
                if to is None:
                    return None, why(f"reshapes {list(a)} -> {list(out)}, which splits or merges the channel dimension ({a[c]} channels)"), ()
                if to[1] != 1:
                    if not isinstance(node.module, ops._ReshapeOp):
                        return None, why(f"merges the channels with other dimensions {list(a)} -> {list(out)}"), ()
                    self._ep_flatten[node] = to[1]
                return to, None, ()
            # element-wise, with broadcasting
            C, cut = out[c], []
            for k, (n, shape, cd) in enumerate(act):
                if shape is None:
                    continue
                j = c - (r - len(shape))
                if j < 0 or (shape[j] == 1 and C > 1):
                    cut.append(k)
                elif shape[j] != C:
                    return None, why(f"changes the channel count from {shape[j]} to {C}"), ()
                elif cd is not None and cd[0] != j:
                    return None, why("combines tensors whose channels lie on different dimensions"), ()
            return (c, 1), None, tuple(cut)

        def _ep_split_text(self, name, g, shape, c) -> str:
            size = shape[c]
            if name.startswith("Slice"):
                start, end, step = g._saved_start, min(int(g._saved_end), size), g._saved_step
                return (f"takes channels {start}:{end}" + (f":{step}" if step != 1 else "")
                        + f" of {size} (bounds fixed in Python, they do not follow a pruned tensor)")
            if name.startswith("SplitWithSizes"):
                return f"splits the {size} channels into pieces of fixed sizes {list(g._saved_split_sizes)}"
            if name.startswith("Split"):
                return f"splits the {size} channels into pieces of {g._saved_split_size} (sizes fixed at trace time)"
            if name.startswith("Unbind"):
                return f"unbinds the {size} channels"
            return f"selects one of the {size} channels"

        def _ep_why(self, node, text: str) -> str:
            return f"{self._ep_where(node)} {text}"

        def _ep_where(self, node) -> str:
            """'torch.split in module 'a.b' (MixedConv2d)' for a stand-in node."""
            rec = self._ep_ops.get(node.grad_fn)
            if rec is not None:
                func, where = rec
                module = self.model.get_submodule(where) if where else self.model
                place = f"module {where!r}" if where else "the top-level forward"
                return f"{_op_name(func)} ({node.grad_fn.name()}) in {place} ({type(module).__name__})"
            near, seen, todo = None, set(), list(node.inputs)
            while todo and near is None:  # no Python-level op recorded: name the nearest layer before it
                n = todo.pop(0)
                if n in seen:
                    continue
                seen.add(n)
                if isinstance(n.module, nn.Module) and n.module in self._ep_names:
                    near = self._ep_names[n.module]
                todo += n.inputs
            return f"{node.grad_fn.name()}" + (f" after module {near!r}" if near else "")

        # -- index mapping ----------------------------------------------------------------

        def _ep_map(self, node, in_nodes, mapping, arg, slot, offsets=None):
            """Set ``mapping`` on the dependencies between ``node`` and each of ``in_nodes``."""
            done_out, done_in = [], []
            for i, in_node in enumerate(in_nodes):
                a = arg if offsets is None else offsets[i]
                for dep in node.dependencies:
                    if dep.target is in_node and not any(dep is d for d in done_out):
                        dep.index_mapping[slot] = mapping(a, reverse=True)
                        done_out.append(dep)
                        break
                for dep in in_node.dependencies:
                    if dep.target is node and not any(dep is d for d in done_in):
                        dep.index_mapping[slot] = mapping(a, reverse=False)
                        done_in.append(dep)
                        break

        def _ep_update_index_mapping(self) -> None:
            for node, slots in self._ep_concat.items():
                sizes = node.module.concat_sizes
                offsets = [0]
                for s in sizes:
                    offsets.append(offsets[-1] + s)
                node.module.offsets = offsets
                ranges = [offsets[i:i + 2] for i, n in enumerate(slots) if n is not None]
                self._ep_map(node, node.inputs, index_mapping._ConcatIndexMapping, None, 1, ranges)
            self._ep_dirty = False

        # -- groups -----------------------------------------------------------------------

        def get_pruning_group(self, module, pruning_fn, idxs):
            """Torch-Pruning's closure, over (layer, channel, root channel) triples, so that
            every triple is visited once (its own compares whole index lists against every
            item found so far, which takes minutes on RexNet's partial residuals). It stops at
            ops classified unsafe and records channels that carry two different root channels."""
            if module not in self.module2node:
                raise ValueError(f"module {module} is not in the dependency graph")
            if isinstance(module, ops.TORCH_CONV) and module.groups == module.out_channels and module.out_channels > 1:
                pruning_fn = function.prune_depthwise_conv_out_channels
            if getattr(self, "_ep_dirty", False):
                self._ep_update_index_mapping()
            deadline = self._ep_deadline
            idxs = [_helpers._HybridIndex(idx=int(i), root_idx=int(i)) for i in idxs]
            root = self.module2node[module]
            items = [(Dependency(pruning_fn, pruning_fn, source=root, target=root), idxs)]
            seen = {(root, pruning_fn): set(idxs)}
            stack = [items[0]]
            pairs = len(idxs)
            while stack:
                deadline.check(every=256)
                dep, current = stack.pop()
                node, fn = dep.target, dep.handler
                for new_dep in node.dependencies:
                    if not new_dep.is_triggered_by(fn):
                        continue
                    new = current
                    for mapping in new_dep.index_mapping:
                        if mapping is not None:
                            new = mapping(new)
                    if not new:
                        continue
                    known = seen.setdefault((new_dep.target, new_dep.handler), set())
                    fresh = [i for i in dict.fromkeys(new) if i not in known]
                    if not fresh:
                        continue
                    known.update(fresh)
                    pairs += len(fresh)
                    if pairs > _MAX_GROUP_PAIRS:
                        raise GraphError(
                            f"the channels of {self._ep_names.get(module, module)!r} are coupled with more than "
                            f"{_MAX_GROUP_PAIRS} (layer, channel) pairs; edgeprune gives up rather than hang"
                        )
                    items.append((new_dep, fresh))
                    if new_dep.target not in self._ep_unsafe:
                        # past an op that cannot follow a narrower tensor, the group is kept whole
                        # anyway (as is every group that reaches the op from its other side)
                        stack.append((new_dep, fresh))
            group = _Group()
            order: dict = {}
            conflicts = []
            for dep, found in items:
                key = (dep.target, dep.handler)
                if key not in order:
                    order[key] = (dep, {})
                by_pos = order[key][1]
                for i in found:
                    if i.idx in by_pos and by_pos[i.idx].root_idx != i.root_idx:
                        conflicts.append((dep.target, i.idx, by_pos[i.idx].root_idx, i.root_idx))
                    else:
                        by_pos.setdefault(i.idx, i)
            for dep, by_pos in order.values():
                hybrid = list(by_pos.values())
                item = _helpers.GroupItem(dep, _helpers.to_plain_idxs(hybrid))
                item.root_idxs = _helpers.to_root_idxs(hybrid)
                group.add_dep(dep, item.idxs)
                group[len(group) - 1] = item
            group._DG = self
            group._ep_conflicts = conflicts
            return group

    _TPGraph = _Graph
    return _Graph


_TPGraph = None


def _shape_of(fn, nr: int):
    try:
        return tuple(int(d) for d in fn._input_metadata[nr].shape)
    except Exception:  # noqa: BLE001 - no metadata: shape unknown
        return None


def _out_shapes(node):
    try:
        return [tuple(int(d) for d in m.shape) for m in node.grad_fn._input_metadata]
    except Exception:  # noqa: BLE001
        return []


def _module_cd(module: nn.Module, shape: tuple[int, ...]):
    """(dim that holds the layer's output channels, 1), or None if unknown."""
    rank = len(shape)
    if rank == 0:
        return None
    if isinstance(module, nn.LayerNorm):
        # LayerNorm2d (timm, torchvision) permutes to NHWC and back inside: NCHW out
        size = int(module.normalized_shape[-1])
        if rank >= 3 and shape[1] == size and (shape[-1] != size or type(module).__name__.lower().endswith("2d")):
            return 1, 1
        return rank - 1, 1
    if isinstance(module, (nn.Linear, nn.Embedding)):
        return rank - 1, 1
    if isinstance(module, (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.GroupNorm,
                           nn.modules.instancenorm._InstanceNorm, nn.PReLU)):
        return (1 if rank >= 2 else 0), 1
    return None


def _build_dependency_graph(model: nn.Module, input_shape: tuple[int, ...], deadline: _Deadline):
    was_training = model.training
    model.eval()  # tracing must not update BatchNorm running statistics
    try:
        with torch.enable_grad():
            return _tp_graph_class()().build(model, torch.randn(1, *input_shape[1:]), deadline)
    except GraphError:
        raise
    except Exception as err:  # noqa: BLE001
        raise GraphError(
            f"tracing channel dependencies failed while {deadline.step}: {type(err).__name__}: {err}. "
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
