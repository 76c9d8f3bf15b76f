"""ResRep (Ding et al., ICCV 2021, "Lossless CNN Pruning via Decoupling Remembering and
Forgetting"): compactors after conv-BN, gradient resetting, then structural re-parameterisation.

``--method resrep --budget flops=F --epochs N``. Choices (ours, where the paper leaves room or is
ResNet-specific):

* **Compactors**, one per prunable group, applied by a forward hook on the group's producers
  (the BatchNorms where a channel mask goes), so state_dict names do not change:

  - *full* (the paper's 1x1 conv, a C x C matrix Q initialised to the identity) when the group
    has one producer, a BatchNorm right after one ordinary conv (groups = 1): it is merged into
    that conv and BatchNorm at the end (``W' = Q diag(s) W``, BN shift ``Q (beta - s mu)``,
    ``s = gamma / sqrt(var + eps)``; the BN becomes an exact identity plus that shift);
  - *diagonal* (a per-channel scale d, initialised to 1) for groups whose channels are
    produced in several places (residual streams, depthwise chains): the same d multiplies
    every producer's output and is folded into each producer's affine scale and shift. A full
    matrix could not be merged there (a sum or a depthwise conv lies between), the diagonal one
    always can, exactly.

* **Gradient resetting**: channels chosen to forget get no task gradient (their compactor
  entries enter the forward pass detached) and get the group-lasso gradient
  ``lasso * q / |q|`` (|q| the row's L2 norm); the channels kept get the task gradient only,
  untouched by the penalty. (The paper's equation adds the penalty to every row; applying it to
  the forgotten rows only is the decoupling the paper argues for, and keeps the remembered
  rows' training exactly the task's.) Compactors train with the network's SGD (momentum,
  no weight decay, ``lr x lr_scale``).
* **Progressive selection**: ``rounds`` selections at evenly spaced steps from ``begin`` (0.05)
  to ``end`` (0.3) (fractions of the training steps). Round k of K allocates widths under the budget
  moved k/K of the way from dense to the target (``flops=1 - (1 - F) k / K``; ``ratio=R k / K``)
  by the core allocator (``--align``, ``--min-keep``) on the compactor row norms, and forgets
  the smallest rows of each group beyond those widths. Channels already forgotten score 0, so
  the forget set grows round by round (one comes back only if the allocator gives its group
  more width than it has remembered channels). The last round uses the target itself, so the
  final widths are exact.
* ``lasso = "auto"`` (default): a row forgotten at step t gets its own strength
  ``|q| / sum_s lr_s (1 - mu^(s - t + 1)) / (1 - mu)`` over the steps s from t to ``settle``
  (0.5) of training: how far a constant unit gradient moves it under SGD momentum mu, so that
  the row (whose penalty gradient keeps its direction: it gets no task gradient) arrives at
  zero by then, without the overshoot a shared strength gives rows forgotten earlier. A number
  (e.g. the paper's 1e-4, which fits long schedules) is the one strength of every row.
* A forgotten row that arrives (its norm under 1% of its start, or past zero) is set to exactly
  0 and held there, momentum included (``resrep_at_zero`` per epoch). The last part of training
  then runs on the pruned network itself, so that the weights and the BatchNorm running
  statistics settle on it: arriving at zero only at the last step left eval-mode accuracy far
  below training-mode accuracy (the statistics lagged the shrinking rows; README benchmark). The forgotten rows are set to exactly 0 at the end and the largest
  norm they still had is reported (``forgotten_norm_max``).
* **Merge**: the compactors are merged into the model (the original architecture); the merged
  model is compared with the compactor model on a probe batch (``merge_rel_diff``, refused above
  1e-5), then the job slims it (masked == slim) like every training-time method.
* Per epoch: ``resrep_forgotten`` (channels forgotten) and ``resrep_forgotten_norm`` (largest
  forgotten row norm).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from edgeprune.errors import MethodError
from edgeprune.methods.base import MethodBase, RunBudget, register
from edgeprune.methods.magnitude import group_magnitude

MERGE_RTOL = 1e-5


@dataclass(frozen=True)
class ResRepConfig:
    """``lasso``: the penalty strength ("auto" or a number >= 0); ``rounds``: selections;
    ``begin``/``end``: fractions of the training steps of the first and last selection;
    ``settle``: the fraction by which "auto" brings the forgotten rows to zero (the rest of
    training runs with them at 0)."""

    lasso: float | str = "auto"
    rounds: int = 8
    begin: float = 0.05
    end: float = 0.3
    settle: float = 0.5

    def __post_init__(self) -> None:
        if self.lasso != "auto" and (isinstance(self.lasso, bool) or not isinstance(self.lasso, (int, float))
                                     or not self.lasso >= 0):
            raise MethodError(f"resrep: lasso must be \"auto\" or a number >= 0, got {self.lasso!r}")
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 1:
            raise MethodError(f"resrep: rounds must be a positive integer, got {self.rounds!r}")
        for key in ("begin", "end"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise MethodError(f"resrep: {key} must be a fraction of the training steps in [0, 1), got {value!r}")
        if self.begin > self.end:
            raise MethodError(f"resrep: begin ({self.begin}) must not come after end ({self.end})")
        s = self.settle
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not self.end <= s <= 1:
            raise MethodError(f"resrep: settle must be a fraction of the training steps in [end, 1], got {s!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Compactor:
    """One group's compactor: a C x C matrix (``full``) or a C-vector (diagonal), and its
    forget mask (True = forgotten)."""

    def __init__(self, size: int, full: bool, producers: Sequence[str], conv: str | None) -> None:
        self.full, self.producers, self.conv = full, list(producers), conv
        self.param = nn.Parameter(torch.eye(size) if full else torch.ones(size))
        self.forgotten = torch.zeros(size, dtype=torch.bool)
        self.strength = torch.zeros(size)  # the penalty strength of each forgotten row
        self.dead = torch.zeros(size, dtype=torch.bool)  # forgotten rows that reached 0: held there
        self.anchor = self.param.detach().clone()  # each row as it was when forgotten

    def norms(self) -> torch.Tensor:
        q = self.param.detach()
        return q.norm(dim=1) if self.full else q.abs()

    def effective(self) -> torch.Tensor:
        """The compactor as the forward pass uses it: forgotten rows carry no task gradient."""
        keep = (~self.forgotten).to(self.param.dtype)
        keep = keep[:, None] if self.full else keep
        return self.param * keep + (self.param * (1 - keep)).detach()

    def penalty(self) -> torch.Tensor:
        """sum of strength x |q| over the forgotten rows (gradient strength x q / |q| on them,
        0 on the kept rows)."""
        if not bool(self.forgotten.any()):
            return self.param.sum() * 0.0
        rows, strength = self.param[self.forgotten], self.strength[self.forgotten].to(self.param.dtype)
        if self.full:  # |q| with a floor, so that a row at exactly 0 has gradient 0, not NaN
            return (strength * torch.sqrt((rows * rows).sum(dim=1) + 1e-24)).sum()
        return (strength * rows.abs()).sum()


def apply(q: torch.Tensor, full: bool, output: torch.Tensor) -> torch.Tensor:
    """The compactor on a module's output (channels on dim 1)."""
    if full:
        return torch.einsum("oc,nc...->no...", q, output)
    return output * q.view(1, -1, *([1] * (output.dim() - 2)))


@register("resrep")
class ResRep(RunBudget, MethodBase):
    """Compactors trained with gradient resetting; merged into the original architecture."""

    config_class = ResRepConfig
    training_time = True

    def __init__(self, config: ResRepConfig | None = None) -> None:
        self.config = config or ResRepConfig()
        self._handles: list[Any] = []
        self._final: dict[str, Any] | None = None
        self.lasso = 0.0 if self.config.lasso == "auto" else float(self.config.lasso)
        self.rounds_done = 0
        self.round_widths: list[list[int]] = []
        self.history: list[dict[str, float]] = []
        self._lrs: list[float] | None = None

    def scores(self, model, graph) -> list[np.ndarray]:
        return group_magnitude(graph, p=1)  # only for the widths that identify the run

    # ---- attach: one compactor per group -------------------------------------------------------

    def attach(self, model: nn.Module, graph, widths: Sequence[int], init_scores: Sequence[np.ndarray]) -> None:
        sizes = [g.size for g in graph.prunable]
        if len(widths) != len(sizes) or any(not 1 <= w <= n for w, n in zip(widths, sizes)):
            raise MethodError("resrep needs one keep count in [1, size] per prunable group")
        self._model, self._graph, self.widths = model, graph, [int(w) for w in widths]
        modules = dict(model.named_modules())
        self.compactors: list[Compactor] = []
        for g in graph.prunable:
            outs = [m for m in g.members if m.dim == "out"]
            for name in g.producers:
                out_channels = _out_channels(modules[name])
                if out_channels != g.size:
                    raise MethodError(f"resrep: group {g.root!r}: producer {name!r} has {out_channels} output "
                                      f"channels, not the group's {g.size}; no compactor fits there (try dtp)")
            convs = [m.module for m in outs if isinstance(modules[m.module], nn.Conv2d)]
            bns = [m.module for m in outs if isinstance(modules[m.module], nn.modules.batchnorm._BatchNorm)]
            full = (len(g.producers) == 1 and len(outs) == 2 and len(convs) == 1 and bns == list(g.producers)
                    and modules[convs[0]].groups == 1 and modules[bns[0]].affine
                    and modules[bns[0]].track_running_stats)
            self.compactors.append(Compactor(g.size, full, g.producers, convs[0] if full else None))
        for c in self.compactors:
            for name in c.producers:
                self._handles.append(modules[name].register_forward_hook(self._hook(c)))

    @staticmethod
    def _hook(c: Compactor):
        def compact(_module, _inputs, output):
            return apply(c.effective(), c.full, output)

        return compact

    def parameters(self) -> list[nn.Parameter]:
        return [c.param for c in self.compactors]

    def on_train_start(self, trainer) -> None:
        from edgeprune.train.base import lr_at

        self.budget_from_run(trainer)
        total = trainer.total_steps
        self._lrs = [lr_at(trainer.config, s, total) * self.lr_scale for s in range(total)]
        self._momentum = trainer.config.momentum
        self._optimizer = trainer.optimizer

    # ---- progressive selection -----------------------------------------------------------------

    def round_steps(self, total_steps: int) -> list[int]:
        """The step before which each selection round happens."""
        c = self.config
        last = max(0, total_steps - 1)
        return [min(last, int((c.begin + (c.end - c.begin) * (k + 1) / c.rounds) * total_steps))
                for k in range(c.rounds)]

    def round_budget(self, k: int):
        """The budget of round k (1-based): k/K of the way from dense to the target."""
        import dataclasses

        b, frac = self._budget, k / self.config.rounds
        if k == self.config.rounds:
            return b
        if b.kind == "ratio":
            return dataclasses.replace(b, value=b.value * frac)
        if b.kind == "latency_ms":  # as a fraction of the predicted dense latency
            b = dataclasses.replace(b, kind="latency", value=b.fraction(self._graph.cost))
        return dataclasses.replace(b, value=1.0 - (1.0 - b.value) * frac)

    def on_step_start(self, step: int, total_steps: int) -> None:
        steps = self.round_steps(total_steps)
        while self.rounds_done < len(steps) and step >= steps[self.rounds_done]:
            self._select(self.rounds_done + 1, step)
            self.rounds_done += 1

    def _select(self, k: int, step: int) -> None:
        from edgeprune.pruning.budget import allocate, select_kept

        if self._budget is None:
            raise MethodError("resrep: no budget to select under (the trainer's run names none; call set_budget)")
        # channels already forgotten score 0: they stay forgotten unless a group needs them back
        norms = [np.where(c.forgotten.numpy(), 0.0, c.norms().double().numpy()) for c in self.compactors]
        widths = allocate(self._graph.cost, norms, self.round_budget(k), self._align)
        reach = 1.0
        if self.config.lasso == "auto" and self._lrs is not None:
            # how far a constant unit gradient moves a row under SGD momentum by the last step
            mu = self._momentum
            settle = max(step + 1, int(self.config.settle * len(self._lrs)))  # arrive by then
            reach = sum(lr * (1.0 - mu ** (i + 1)) / (1.0 - mu) for i, lr in enumerate(self._lrs[step:settle])) or 1e-12
        for c, kept in zip(self.compactors, select_kept(norms, widths)):
            was = c.forgotten
            c.forgotten = torch.ones(len(c.forgotten), dtype=torch.bool)
            c.forgotten[list(kept)] = False
            new = c.forgotten & ~was
            with torch.no_grad():
                c.anchor[new] = c.param.detach()[new]
            c.dead &= c.forgotten  # a row the allocator gives back trains again (from 0)
            if self.config.lasso == "auto":  # each newly forgotten row: the strength that zeroes it by the end
                c.strength[new] = c.norms()[new].float() / reach
            else:
                c.strength[new] = self.lasso
            c.strength[~c.forgotten] = 0.0
        self.round_widths.append([int(w) for w in widths])

    @torch.no_grad()
    def after_step(self) -> None:
        """A forgotten row that reached zero (its norm below 1% of where it started, or past zero:
        pointing against its starting direction) is set to exactly 0 and held there (its
        momentum too), instead of oscillating around 0 for the rest of training."""
        for c in self.compactors:
            moving = c.forgotten & ~c.dead
            if not bool(moving.any()):
                continue
            q, a = c.param[moving], c.anchor[moving]
            if c.full:
                dot, start, now = (q * a).sum(dim=1), a.norm(dim=1), q.norm(dim=1)
            else:
                dot, start, now = q * a, a.abs(), q.abs()
            arrived = (dot <= 0) | (now <= 0.01 * start)
            if not bool(arrived.any()):
                continue
            rows = torch.nonzero(moving).flatten()[arrived]
            c.param[rows] = 0.0
            state = self._optimizer.state.get(c.param, {}) if getattr(self, "_optimizer", None) else {}
            if state.get("momentum_buffer") is not None:
                state["momentum_buffer"][rows] = 0.0
            c.dead[rows] = True

    def on_step(self, loss: torch.Tensor) -> torch.Tensor:
        if not any(bool(c.forgotten.any()) for c in self.compactors):
            return loss
        return loss + sum(c.penalty() for c in self.compactors)

    def lasso_max(self) -> float:
        return max((float(c.strength.max()) for c in self.compactors), default=0.0)

    def forgotten_norm(self) -> float:
        return max((float(c.norms()[c.forgotten].max()) for c in self.compactors if c.forgotten.any()), default=0.0)

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        record = {"resrep_forgotten": float(sum(int(c.forgotten.sum()) for c in self.compactors)),
                  "resrep_at_zero": float(sum(int(c.dead.sum()) for c in self.compactors)),
                  "resrep_forgotten_norm": self.forgotten_norm(), "resrep_lasso_max": self.lasso_max()}
        self.history.append(record)
        return record

    # ---- the end: zero the forgotten rows, merge, compare ---------------------------------------

    def _finalise(self) -> dict[str, Any]:
        if self._final is not None:
            return self._final
        if self.rounds_done < self.config.rounds:
            raise MethodError(f"resrep: only {self.rounds_done} of {self.config.rounds} selection rounds ran "
                              "(training stopped early); nothing to merge")
        model = self._model
        norm_max = self.forgotten_norm()
        with torch.no_grad():
            for c in self.compactors:
                c.param[c.forgotten] = 0.0
        probe = _probe(model, self._graph)
        was = model.training
        model.eval()
        with torch.no_grad():
            reference = model(probe)
            self._remove_hooks()
            modules = dict(model.named_modules())
            for c in self.compactors:
                q = c.param.detach()
                if c.full:
                    _merge_full(modules[c.conv], modules[c.producers[0]], q)
                else:
                    for name in c.producers:
                        _merge_diagonal(modules[name], q)
            merged = model(probe)
        model.train(was)
        diff = float((merged - reference).abs().max())
        rel = diff / max(float(reference.abs().max()), 1e-12)
        if not rel <= MERGE_RTOL:
            raise MethodError(f"resrep: the merged model differs from the compactor model by {rel:.2e} (relative), "
                              f"above {MERGE_RTOL:g}; nothing was written")
        kept = [sorted(int(i) for i in torch.nonzero(~c.forgotten).flatten()) for c in self.compactors]
        self._final = {"kept": kept, "merge_max_abs_diff": diff, "merge_rel_diff": rel,
                       "forgotten_norm_max": norm_max}
        return self._final

    def kept(self) -> list[list[int]]:
        """The kept channels per group. Finalises: forgotten rows to 0, compactors merged into the
        model (hooks removed), so the plain model is the masked model the job slims."""
        return self._finalise()["kept"]

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def detach(self) -> None:
        self._finalise()

    # ---- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "rounds_done": self.rounds_done, "lasso": self.lasso,
                "round_widths": [list(w) for w in self.round_widths], "history": list(self.history),
                "compactors": [c.param.detach().clone() for c in self.compactors],
                "forgotten": [c.forgotten.clone() for c in self.compactors],
                "strength": [c.strength.clone() for c in self.compactors],
                "dead": [c.dead.clone() for c in self.compactors],
                "anchor": [c.anchor.clone() for c in self.compactors]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["widths"]) != list(self.widths) or len(state["compactors"]) != len(self.compactors):
            raise MethodError("the resrep state was made for another run (budget, --align or model differ): "
                              f"widths {state['widths']} vs {self.widths}")
        with torch.no_grad():
            for i, c in enumerate(self.compactors):
                c.param.copy_(state["compactors"][i])
                c.forgotten, c.strength = state["forgotten"][i].clone().bool(), state["strength"][i].clone().float()
                c.dead, c.anchor = state["dead"][i].clone().bool(), state["anchor"][i].clone()
        self.rounds_done, self.lasso = int(state["rounds_done"]), float(state["lasso"])
        self.round_widths = [list(w) for w in state["round_widths"]]
        self.history = list(state["history"])

    def report(self) -> dict[str, Any]:
        final = self._finalise()
        return {"config": self.config.to_json(), "lasso_max": self.lasso_max(),
                "compactors": {"full": sum(c.full for c in self.compactors),
                               "diagonal": sum(not c.full for c in self.compactors)},
                "round_widths": self.round_widths, "final_widths": [len(k) for k in final["kept"]],
                "forgotten_norm_max": final["forgotten_norm_max"], "merge_max_abs_diff": final["merge_max_abs_diff"],
                "merge_rel_diff": final["merge_rel_diff"], "per_epoch": self.history}


def _out_channels(module: nn.Module) -> int | None:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.num_features
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return module.out_channels
    if isinstance(module, nn.Linear):
        return module.out_features
    return None


def _probe(model: nn.Module, graph) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    shape = tuple(graph.input_shape)
    dtype = next(model.parameters()).dtype
    return torch.randn((2, *shape[1:]), generator=gen, dtype=dtype)


def _merge_full(conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm, q: torch.Tensor) -> None:
    """conv -> BN -> Q  becomes  conv' -> BN' with BN' an identity plus a shift."""
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    shift = bn.bias + s * (bias - bn.running_mean)
    w = conv.weight
    conv.weight.copy_((q @ (s[:, None] * w.reshape(w.shape[0], -1))).reshape(w.shape))
    if conv.bias is not None:
        conv.bias.zero_()
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0)
    bn.weight.fill_(float(torch.sqrt(torch.tensor(1.0 + bn.eps, dtype=torch.float64))))
    bn.bias.copy_(q @ shift)


def _merge_diagonal(module: nn.Module, d: torch.Tensor) -> None:
    """Fold a per-channel scale into a producer (BN affine, or a conv / linear's rows)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
        module.weight.mul_(d)
        module.bias.mul_(d)
        return
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        raise MethodError(f"resrep: BatchNorm without affine parameters cannot absorb a compactor: {module}")
    module.weight.mul_(d.view(-1, *([1] * (module.weight.dim() - 1))))
    if getattr(module, "bias", None) is not None:
        module.bias.mul_(d)
