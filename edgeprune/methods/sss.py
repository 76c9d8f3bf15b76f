"""Sparse Structure Selection (Huang & Wang, ECCV 2018): a scaling factor on every residual
block, trained sparse with an accelerated proximal gradient; whole blocks are then removed.

Choices (ours, where the paper leaves room):

* One scalar factor lambda_b per residual block whose shortcut is the identity
  (`edgeprune.pruning.depth.find_blocks`), initialised to 1, multiplying the block's residual
  branch (the output of its last BatchNorm) before the addition with the shortcut. It is
  applied by a forward hook on that BatchNorm, so the model's state_dict names do not change;
  the factors and their momentum live in the method's state (checkpointed, resumed).
  Blocks with a downsampling (conv) shortcut get no factor and always stay.
* The factors are trained by APG on ``CE + sparsity * sum |lambda|`` (``--option
  sparsity=GAMMA``, the paper's gamma, default 1e-2: at the usual learning rates this moves a
  factor by lr * 1e-2 per step, enough to zero unneeded blocks within tens of epochs without
  dominating the task gradient in short runs), in the paper's momentum reformulation with a
  fixed momentum (``--option momentum=MU``, default 0.9, as its implementation uses for the
  weights), step size = the network's learning rate at that step::

      z   = lambda - lr * grad                       (grad of the task loss; DDP: averaged)
      p   = sign(z) * max(|z| - lr * gamma, 0)        (soft threshold: the L1 proximal step)
      v   = p - lambda + mu * v
      lambda = p + mu * v

  A factor whose proximal point stays 0 for two steps is exactly 0. The network's weights
  train with the trainer's SGD as usual; the factors are not in its optimizer.
* At the end, under ``flops=F`` / ``params=P``: blocks whose factor is exactly 0 are always
  removed (they contribute nothing); then blocks are removed in order of increasing |lambda|
  (ties: module order) as long as the cost of what is left, at full width, stays at or above
  the window's lower side (0.99 F, `edgeprune.pruning.budget.WINDOW`); the first block that
  would go below stops the removal. The channel allocator then cuts channels of the rest
  (bn-scale |gamma| scores, taken after the factors are folded in, `--align`, `--min-keep`) to
  land in [0.99 F, F]. If the zero-factor blocks alone leave less than 0.99 F, the result is
  below the window and report["warnings"] says so. Under ``ratio=R`` only zero-factor blocks
  are removed and the channels are cut by the ratio.
* Before slimming, each kept block's factor is folded into its last BatchNorm (gamma and beta
  times lambda) and each removed block's factor is set to 0 (gamma = beta = 0), and the hooks
  are removed: the plain model then computes exactly what the trained scaled model computes
  with the removed blocks switched off, which is what the slim model (removed blocks replaced
  by their identity shortcut) is compared with.
* Per epoch the metrics ``sss_factor_l1`` (sum |lambda|) and ``sss_zero_factors``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from edgeprune.errors import BudgetError, MethodError
from edgeprune.methods.base import MethodBase, RunBudget, register
from edgeprune.methods.magnitude import group_magnitude


@dataclass(frozen=True)
class SSSConfig:
    """``sparsity``: gamma of the L1 penalty on the block factors; ``momentum``: APG's mu."""

    sparsity: float = 1e-2
    momentum: float = 0.9

    def __post_init__(self) -> None:
        for name in ("sparsity", "momentum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise MethodError(f"sss: {name} must be a number >= 0, got {value!r}")
        if not self.momentum < 1:
            raise MethodError(f"sss: momentum must be below 1, got {self.momentum!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def apg_step(factors: torch.Tensor, grad: torch.Tensor, velocity: torch.Tensor, lr: float, gamma: float,
             momentum: float) -> None:
    """One APG step on ``factors`` (in place, with its ``velocity``) for ``loss + gamma * |factors|_1``."""
    z = factors - lr * grad
    prox = torch.sign(z) * torch.clamp(z.abs() - lr * gamma, min=0.0)
    velocity.mul_(momentum).add_(prox - factors)
    factors.copy_(prox + momentum * velocity)


@register("sss")
class SparseStructureSelection(RunBudget, MethodBase):
    """Sparse scaling factors on residual blocks (APG); the smallest blocks are removed under the budget."""

    config_class = SSSConfig
    training_time = True
    latency_budgets = False  # removed blocks' latency is not in the table's model

    def __init__(self, config: SSSConfig | None = None) -> None:
        self.config = config or SSSConfig()
        self.history: list[float] = []
        self._train_config = None
        self._dist = None
        self._lr = 0.0
        self._handles: list = []
        self._final: dict[str, Any] | None = None

    # ---- criterion and attachment ------------------------------------------------------------

    def scores(self, model, graph) -> list[np.ndarray]:
        """Channel scores for the allocator: bn-scale (|gamma| over each group's BatchNorms)."""
        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise MethodError("method 'sss' needs BatchNorm layers; this model has none")
        return group_magnitude(graph, p=1, bn_only=True)

    def attach(self, model: nn.Module, graph, widths: Sequence[int], init_scores: Sequence[np.ndarray]) -> None:
        from edgeprune.pruning.depth import find_blocks

        blocks = [b for b in find_blocks(model) if b.identity]
        if not blocks:
            raise MethodError("method 'sss' removes residual blocks with an identity shortcut (ResNet BasicBlock / "
                              "Bottleneck); this model has none (try slimming)")
        modules = dict(model.named_modules())
        bns = [modules[b.last_bn] for b in blocks]
        if any(not bn.affine for bn in bns):
            raise MethodError("method 'sss' folds each block's factor into its last BatchNorm, which needs affine=True")
        self._model, self._graph = model, graph
        self.widths = [int(w) for w in widths]
        self.blocks = [b.name for b in blocks]
        self._bns = bns
        self.factors = torch.ones(len(blocks), requires_grad=True)
        self.velocity = torch.zeros(len(blocks))
        self._handles = [bn.register_forward_hook(self._hook(i)) for i, bn in enumerate(bns)]

    def _hook(self, i: int):
        def scale(_module, _inputs, output):
            return output * self.factors[i]

        return scale

    # ---- training ------------------------------------------------------------------------------

    def on_train_start(self, trainer) -> None:
        self.budget_from_run(trainer)
        self._train_config = trainer.config
        self._dist = trainer.dist

    def on_step_start(self, step: int, total_steps: int) -> None:
        from edgeprune.train.base import lr_at

        self._lr = lr_at(self._train_config, step, total_steps) if self._train_config is not None else 0.0

    def after_step(self) -> None:
        grad = self.factors.grad
        grad = torch.zeros_like(self.factors) if grad is None else grad.detach().clone()
        if self._dist is not None and self._dist.enabled:
            self._dist.all_reduce_sum(grad)
            grad /= self._dist.world
        apg_step(self.factors, grad, self.velocity, self._lr, self.config.sparsity, self.config.momentum)
        self.factors.grad = None

    def factor_l1(self) -> float:
        return float(self.factors.detach().abs().sum())

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        value = self.factor_l1()
        self.history.append(value)
        return {"sss_factor_l1": value, "sss_zero_factors": int((self.factors.detach() == 0).sum())}

    # ---- the end: blocks, then channels ------------------------------------------------------

    def _finalise(self) -> dict[str, Any]:
        """Choose the removed blocks and the channels (once); fold the factors and drop the hooks."""
        if self._final is not None:
            return self._final
        from edgeprune.pruning.budget import WINDOW, Budget, allocate, select_kept
        from edgeprune.pruning.depth import block_params, without_blocks

        budget = self._budget
        if budget is None:
            raise MethodError("sss: no budget to select under (the trainer's run names none; call set_budget)")
        factors = [float(v) for v in self.factors.detach()]
        cost = self._graph.cost
        sizes = list(cost.sizes)
        removed = [i for i, f in enumerate(factors) if f == 0.0]
        if budget.kind in ("flops", "params"):
            metric, dense = budget.kind, cost.dense(budget.kind)
            lower = WINDOW * budget.value * dense
            for i in sorted((i for i, f in enumerate(factors) if f != 0.0), key=lambda i: (abs(factors[i]), i)):
                trial = sorted(removed + [i])
                names = [self.blocks[j] for j in trial]
                left = without_blocks(cost, names, block_params(self._model, names)).cost(metric, sizes)
                if left < lower - 1e-9 * dense:
                    break
                removed = trial
        removed = sorted(removed)
        names = [self.blocks[i] for i in removed]
        rest = without_blocks(cost, names, block_params(self._model, names))
        with torch.no_grad():
            for i, bn in enumerate(self._bns):
                scale = 0.0 if i in removed else factors[i]
                bn.weight.mul_(scale)
                bn.bias.mul_(scale)
        self._remove_hooks()
        scores = group_magnitude(self._graph, p=1, bn_only=True)  # after folding: removed blocks count 0
        if budget.kind in ("flops", "params"):
            # the same absolute target, as a fraction of what is left at full width
            relative = Budget(budget.kind, budget.value * cost.dense(budget.kind) / rest.dense(budget.kind),
                              budget.min_keep)
            try:
                widths = allocate(rest, scores, relative, self._align)
            except BudgetError as err:
                raise BudgetError(f"sss: after removing {len(names)} residual blocks ({', '.join(names)}), "
                                  f"the channels cannot meet {budget}: {err}") from None
        else:
            widths = allocate(cost, scores, budget, self._align)
        self._final = {"removed": names, "factors": factors, "widths": [int(w) for w in widths],
                       "kept": select_kept(scores, widths)}
        return self._final

    def kept(self) -> list[list[int]]:
        """The kept channels per group. Finalises the method: the removed blocks are chosen,
        every factor is folded into its block's last BatchNorm (removed blocks: 0) and the hooks
        are removed, so the plain model is the masked model `slim_with_depth` compares with."""
        return self._finalise()["kept"]

    def removed_blocks(self) -> list[str]:
        """The residual blocks (module names) the slim model replaces by their identity shortcut."""
        return list(self._finalise()["removed"])

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def detach(self) -> None:
        self._finalise()

    # ---- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "blocks": list(self.blocks), "history": list(self.history),
                "factors": self.factors.detach().clone(), "velocity": self.velocity.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["widths"]) != list(self.widths) or list(state["blocks"]) != list(self.blocks):
            raise MethodError(
                "the sss state was made for another run (budget, --align or model differ): "
                f"widths {state['widths']} vs {self.widths}, blocks {state['blocks']} vs {self.blocks}"
            )
        with torch.no_grad():
            self.factors.copy_(state["factors"])
            self.velocity.copy_(state["velocity"])
        self.history = [float(v) for v in state["history"]]

    def report(self) -> dict[str, Any]:
        final = self._finalise()
        return {"config": self.config.to_json(), "optimizer": "APG (soft threshold, fixed momentum)",
                "criterion": "|lambda| per residual block, then bn-scale (|gamma|) channels",
                "factors": dict(zip(self.blocks, final["factors"])),
                "zero_factors": sum(f == 0.0 for f in final["factors"]),
                "removed_blocks": list(final["removed"]), "factor_l1_per_epoch": list(self.history),
                "initial_widths": list(self.widths), "final_widths": list(final["widths"])}
