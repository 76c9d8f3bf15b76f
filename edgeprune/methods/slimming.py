"""Network Slimming (Liu et al., ICCV 2017): sparsity training on BatchNorm scales, then prune
the channels with the smallest |gamma|.

Choices (ours, where the paper leaves room or works per layer):

* During the prune epochs the loss gains ``sparsity * sum |gamma|`` over the BatchNorms of the
  prunable groups (``--option sparsity=L``, the paper's lambda, default 1e-4); autograd's
  gradient of |gamma| is the L1 subgradient ``sign(gamma)`` (0 at 0). Being part of the loss,
  it is averaged over DDP ranks like the task gradient (every rank adds the same term), so
  the gammas stay identical on every rank. Nothing is masked while training.
* At the end, channels are chosen by the bn-scale criterion (`edgeprune.methods.bn_scale`:
  |gamma| averaged over the group's BatchNorms) through the core allocator under the exact
  budget and ``--align`` (the paper's single global threshold becomes the allocator's global
  greedy over per-group normalised scores, so ``flops=`` lands in the budget window), and the
  job slims the masked model (masked == slim) as for the other training-time methods. The
  budget and alignment are read from the trainer's run record (``run["budget"]``,
  ``run["align"]``), which `edgeprune.train.jobs.prune_while_training` writes; the widths
  allocated from the initial gammas at attach time identify the run (resume), the final
  ones come from the trained gammas.
* Per epoch the metric ``slimming_gamma_l1`` is sum |gamma| (what the penalty drives down).
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


@dataclass(frozen=True)
class SlimmingConfig:
    """``sparsity``: lambda of the L1 penalty on BatchNorm scales (``--option sparsity=1e-4``)."""

    sparsity: float = 1e-4

    def __post_init__(self) -> None:
        value = self.sparsity
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise MethodError(f"slimming: sparsity must be a number >= 0, got {value!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@register("slimming")
class Slimming(RunBudget, MethodBase):
    """L1 sparsity on BatchNorm scales while training; |gamma| selection under the budget at the end."""

    config_class = SlimmingConfig
    training_time = True

    def __init__(self, config: SlimmingConfig | None = None) -> None:
        self.config = config or SlimmingConfig()
        self.history: list[float] = []

    def scores(self, model, graph) -> list[np.ndarray]:
        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise MethodError("method 'slimming' needs BatchNorm layers; this model has none (try l1)")
        return group_magnitude(graph, p=1, bn_only=True)

    def attach(self, model: nn.Module, graph, widths: Sequence[int], init_scores: Sequence[np.ndarray]) -> None:
        sizes = [g.size for g in graph.prunable]
        if len(widths) != len(sizes) or any(not 1 <= w <= n for w, n in zip(widths, sizes)):
            raise MethodError("slimming needs one keep count in [1, size] per prunable group")
        self._model, self._graph = model, graph
        self.widths = [int(w) for w in widths]
        names = {m.module for g in graph.prunable for m in g.members if m.dim == "out"}
        self._gammas = [m.weight for n, m in model.named_modules()
                        if n in names and isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]
        if not self._gammas:
            raise MethodError("method 'slimming' found no BatchNorm scale in the prunable groups (try l1)")

    def on_train_start(self, trainer) -> None:
        self.budget_from_run(trainer)

    def gamma_l1(self) -> float:
        with torch.no_grad():
            return float(sum(g.abs().sum() for g in self._gammas))

    def on_step(self, loss: torch.Tensor) -> torch.Tensor:
        if not self.config.sparsity:
            return loss
        return loss + self.config.sparsity * sum(g.abs().sum() for g in self._gammas)

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        value = self.gamma_l1()
        self.history.append(value)
        return {"slimming_gamma_l1": value}

    def final_widths(self) -> tuple[list[np.ndarray], list[int]]:
        from edgeprune.pruning.budget import allocate

        if self._budget is None:
            raise MethodError("slimming: no budget to select under (the trainer's run names none; call set_budget)")
        scores = self.scores(self._model, self._graph)
        return scores, allocate(self._graph.cost, scores, self._budget, self._align)

    def kept(self) -> list[list[int]]:
        from edgeprune.pruning.budget import select_kept

        scores, widths = self.final_widths()
        return select_kept(scores, widths)

    def detach(self) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["widths"]) != list(self.widths):
            raise MethodError(
                "the slimming state was made for other keep counts (budget, --align or model differ): "
                f"widths {state['widths']} vs {self.widths}"
            )
        self.history = [float(v) for v in state["history"]]

    def report(self) -> dict[str, Any]:
        _, widths = self.final_widths()
        return {"config": self.config.to_json(), "criterion": "bn-scale (|gamma|)", "bn_layers": len(self._gammas),
                "gamma_l1_per_epoch": list(self.history), "gamma_l1": self.gamma_l1(),
                "initial_widths": list(self.widths), "final_widths": list(widths)}
