"""Unstructured magnitude pruning (Han et al., NeurIPS 2015, "Learning both Weights and
Connections"): zero the individual weights of smallest magnitude, retrain, repeat.

``--method han --budget sparsity=S`` (only this budget: no channel is removed). Choices (ours,
where the paper leaves room):

* Weights: the ``weight`` of every conv and linear layer (`edgeprune.pruning.sparsity`), first
  conv and classifier included; biases and BatchNorm stay dense.
* Schedule: ``steps`` (``--option steps=K``, default 3) pruning events spread evenly over the
  training steps: event j (j = 0..K-1) happens before step floor(j x total / K) and raises the
  sparsity to S x (j + 1) / K, so the last 1/K of training retrains at the target. Fewer
  events than K when there are fewer training steps.
* Threshold: ``scope = "global"`` (default) zeros the round(S x N) smallest |w| over all N
  counted weights (one magnitude threshold for the network); ``"layer"`` zeros round(S x n_l)
  in every layer (the same sparsity everywhere). A weight once pruned stays pruned (masks only
  grow); ties break by index (stable sort), so the masks are deterministic.
* Masks are applied right after each event and re-applied after every optimizer step
  (momentum and weight decay would otherwise revive pruned weights); they are checkpointed.
* The result is the dense architecture with zeros (the plan keeps every channel): the report
  gives the achieved sparsity, storage sizes, and a ``latency_note``: a dense runtime gains no
  latency from it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from edgeprune.errors import MethodError
from edgeprune.methods.base import MethodBase, register

SCOPES = ("global", "layer")


@dataclass(frozen=True)
class HanConfig:
    """``steps``: pruning events over training (``--option steps=3``); ``scope``: ``global``
    (one magnitude threshold) or ``layer`` (the same sparsity in every layer)."""

    steps: int = 3
    scope: str = "global"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise MethodError(f"han: steps must be a positive integer, got {self.steps!r}")
        if self.scope not in SCOPES:
            raise MethodError(f"han: scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def schedule(target: float, steps: int, total_steps: int) -> list[tuple[int, float]]:
    """(training step, sparsity) of every pruning event (pure numbers)."""
    k = max(1, min(steps, total_steps))
    return [(j * total_steps // k, target * (j + 1) / k) for j in range(k)]


@register("han")
class Han(MethodBase):
    """Iterative magnitude pruning of single weights to a sparsity target, with retraining."""

    config_class = HanConfig
    training_time = True
    unstructured = True  # budget sparsity=, no channel removed (the job keeps every channel)

    def __init__(self, config: HanConfig | None = None) -> None:
        self.config = config or HanConfig()
        self.level = 0.0  # the sparsity the masks are at
        self.history: list[float] = []
        self.events: list[tuple[int, float]] = []

    def scores(self, model, graph):  # noqa: D401 - not a channel criterion
        raise MethodError("method 'han' zeroes single weights, it does not score channels: use it with "
                          "--budget sparsity=S and --epochs")

    def attach(self, model: nn.Module, target: float) -> None:
        from edgeprune.pruning.sparsity import prunable_weights

        if not 0.0 <= target < 1.0:
            raise MethodError(f"han: the sparsity target must be in [0, 1), got {target}")
        self.target = float(target)
        self._named = prunable_weights(model)
        if not self._named:
            raise MethodError("method 'han' found no conv or linear weight to prune")
        self.masks = [torch.ones_like(w, dtype=torch.bool) for _, w in self._named]

    def on_train_start(self, trainer) -> None:
        self.events = schedule(self.target, self.config.steps, trainer.total_steps)

    def on_step_start(self, step: int, total_steps: int) -> None:
        due = [s for at, s in self.events if at <= step]
        if due and due[-1] > self.level + 1e-12:
            self.prune_to(due[-1])

    @torch.no_grad()
    def prune_to(self, sparsity: float) -> None:
        """Grow the masks to ``sparsity`` by magnitude (pruned weights stay pruned) and apply them."""
        weights = [w for _, w in self._named]
        if self.config.scope == "global":
            flat = torch.cat([self._priority(w, m) for w, m in zip(weights, self.masks)])
            keep = self._keep(flat, round(sparsity * flat.numel()))
            at = 0
            for i, w in enumerate(weights):
                self.masks[i] = keep[at:at + w.numel()].view_as(w)
                at += w.numel()
        else:
            for i, w in enumerate(weights):
                flat = self._priority(w, self.masks[i])
                self.masks[i] = self._keep(flat, round(sparsity * flat.numel())).view_as(w)
        self.level = float(sparsity)
        self.after_step()

    @staticmethod
    def _priority(w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """|w| flattened, pruned weights first (-1)."""
        return torch.where(mask, w.detach().abs(), torch.full_like(w, -1.0)).flatten()

    @staticmethod
    def _keep(flat: torch.Tensor, pruned: int) -> torch.Tensor:
        order = torch.argsort(flat, stable=True)
        keep = torch.ones_like(flat, dtype=torch.bool)
        keep[order[:pruned]] = False
        return keep

    @torch.no_grad()
    def after_step(self) -> None:
        for (_, w), m in zip(self._named, self.masks):
            w.mul_(m)

    def sparsity(self) -> float:
        """The fraction of counted weights that are zero now."""
        with torch.no_grad():
            zeros = sum(int(w.numel() - torch.count_nonzero(w)) for _, w in self._named)
            return zeros / sum(w.numel() for _, w in self._named)

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        value = self.sparsity()
        self.history.append(value)
        return {"han_sparsity": value}

    def state_dict(self) -> dict[str, Any]:
        return {"level": self.level, "history": list(self.history), "masks": [m.clone() for m in self.masks]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        masks = list(state["masks"])
        if [tuple(m.shape) for m in masks] != [tuple(m.shape) for m in self.masks]:
            raise MethodError("the han state was made for another model (its masks have other shapes)")
        self.masks = [m.to(torch.bool) for m in masks]
        self.level = float(state["level"])
        self.history = [float(v) for v in state["history"]]

    def report(self) -> dict[str, Any]:
        return {"config": self.config.to_json(), "target_sparsity": self.target,
                "schedule": [{"step": at, "sparsity": s} for at, s in self.events],
                "sparsity_per_epoch": list(self.history), "mask_sparsity": self.level,
                "counted_layers": len(self._named)}
