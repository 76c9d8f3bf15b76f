"""SFP: Soft Filter Pruning (He et al., IJCAI 2018), on channel groups.

Choices (ours, where the paper leaves room or works per layer):

* Keep counts per prunable group are fixed once, at the start, by the core allocator:
  ``allocate(graph.cost, group L2 scores, budget, align)``. So ``flops=`` / ``params=`` budgets
  are met exactly (honouring ``--align`` and the budget's ``min_keep``), and ``ratio=R`` prunes
  R of every group's channels, as the paper's per-layer rate does.
* *Which* channels are kept is recomputed from the group L2 norm
  (`edgeprune.methods.magnitude.group_magnitude`, p=2: every coupled parameter of the group,
  i.e. producing filters, BatchNorm scales and consumers' input slices) at the start of
  training and at the end of every epoch: the top-k by norm, ties to the lower index.
* Pruned channels are zeroed *in the weights* (the producing conv/linear output rows and
  their bias), as the original SFP zeroes filters, so that they keep training and may regrow.
  BatchNorm is left as it is (gamma, beta, running statistics). We first tried to make the
  zeroed channel exactly 0 in the network by also zeroing beta and running_mean (keeping
  gamma): the channel then enters the following ReLU at exactly 0, where ReLU's gradient is
  0, so the filter never receives a gradient and can never regrow. With beta kept, a zeroed
  filter's channel is the constant relu(beta) during training, and its filter receives
  gradient through BatchNorm's 1/sqrt(var + eps) whenever beta > 0 (a channel whose shift is
  <= 0 stays dead through a ReLU, as in the original method).
* Because the zeroed weights alone do not make the channel 0 (BatchNorm adds beta), eval
  mode applies the hard 0/1 mask to the groups' producer outputs
  (`edgeprune.pruning.masks.apply_masks`, active only when the model is not training): the evaluated
  network is exactly the pruned one, and the per-epoch evaluation, which runs right after the
  epoch-end re-selection and zeroing, is the slim model's accuracy.
* At the end the last selection is zeroed and slimmed (`slim_with_parity`: masked == slim).
* Per epoch, ``sfp_regrown`` counts channels pruned at the previous selection that the new
  selection keeps (filters that grew back above others).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from edgeprune.errors import MethodError
from edgeprune.methods.base import MethodBase, register
from edgeprune.methods.magnitude import group_magnitude
from edgeprune.pruning.budget import select_kept

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class SFPConfig:
    """SFP has no tunable options yet (the norm is L2, the schedule per epoch)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SoftMaskBase(MethodBase):
    """Shared by SFP and CR-SFP: fixed keep counts, per-epoch norm-based selection, state."""

    training_time = True

    def scores(self, model, graph) -> list[np.ndarray]:
        """Group L2 norms (squared; the same ranking): what the allocator and the selection use."""
        return group_magnitude(graph, p=2)

    def attach(self, model: nn.Module, graph, widths: Sequence[int], init_scores: Sequence[np.ndarray]) -> None:
        sizes = [g.size for g in graph.prunable]
        if len(widths) != len(sizes) or any(not 1 <= w <= n for w, n in zip(widths, sizes)):
            raise MethodError(f"{self.name.upper()} needs one keep count in [1, size] per prunable group")
        self._model, self._graph = model, graph
        self.sizes, self.widths = sizes, [int(w) for w in widths]
        self._dist = None
        self.history: list[int] = []  # regrown channels per epoch
        self.masks = self._select(init_scores)

    def _select(self, scores: Sequence[np.ndarray] | None = None) -> list[torch.Tensor]:
        scores = self.scores(self._model, self._graph) if scores is None else scores
        kept = select_kept([np.asarray(s, dtype=np.float64) for s in scores], self.widths)
        out = []
        for n, k in zip(self.sizes, kept):
            m = torch.zeros(n)
            m[torch.as_tensor(list(k), dtype=torch.long)] = 1.0
            out.append(m)
        return out

    def _reselect(self) -> int:
        """New masks from the current norms (identical on every rank); returns how many
        previously pruned channels are kept now."""
        new = self._select()
        if self._dist is not None and self._dist.enabled:
            flat = torch.cat(new)
            self._dist.broadcast_(flat)
            new = list(flat.split(self.sizes))
        regrown = int(sum(((old == 0) & (m == 1)).sum() for old, m in zip(self.masks, new)))
        self.masks = new
        return regrown

    def kept(self) -> list[list[int]]:
        return [sorted(int(j) for j in m.nonzero().flatten()) for m in self.masks]

    def pruned_channels(self) -> int:
        return int(sum((m == 0).sum() for m in self.masks))

    def on_train_start(self, trainer) -> None:
        self._dist = trainer.dist

    def state_dict(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "masks": [m.clone() for m in self.masks], "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["widths"]) != list(self.widths):
            raise MethodError(
                f"the {self.name.upper()} state was made for other keep counts (budget, --align or model differ): "
                f"widths {state['widths']} vs {self.widths}"
            )
        self.masks = [m.clone() for m in state["masks"]]
        self.history = list(state["history"])

    def report(self) -> dict[str, Any]:
        return {"config": self.config.to_json(), "norm": "group L2", "pruned_channels": self.pruned_channels(),
                "regrown_per_epoch": list(self.history)}


@register("sfp")
class SFP(SoftMaskBase):
    """Soft Filter Pruning; see the module docstring."""

    config_class = SFPConfig

    def __init__(self, config: SFPConfig | None = None) -> None:
        self.config = config or SFPConfig()
        self._handle = None

    def attach(self, model, graph, widths, init_scores) -> None:
        from edgeprune.pruning.masks import apply_masks

        super().attach(model, graph, widths, init_scores)
        self._targets = zero_targets(model, graph)
        self._ones = [torch.ones(n) for n in self.sizes]
        self.zero()
        self._handle = apply_masks(model, graph, self.mask)

    def mask(self, i: int) -> torch.Tensor:
        """Eval mode: the hard mask of prunable group i; training: no mask (ones)."""
        return self._ones[i] if self._model.training else self.masks[i]

    @torch.no_grad()
    def zero(self) -> None:
        """Zero the pruned channels' filters (conv/linear output rows and bias) in the weights."""
        for targets, m in zip(self._targets, self.masks):
            drop = (m == 0).nonzero().flatten()
            if len(drop) == 0:
                continue
            for module, positions, roots in targets:
                sel = positions[torch.isin(roots, drop)]
                if len(sel) == 0:
                    continue
                module.weight.index_fill_(0, sel, 0.0)
                if module.bias is not None:
                    module.bias.index_fill_(0, sel, 0.0)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        regrown = self._reselect()
        self.zero()
        self.history.append(regrown)
        return {"sfp_regrown": regrown, "sfp_pruned": self.pruned_channels()}


def zero_targets(model: nn.Module, graph) -> list[list[tuple[nn.Module, torch.Tensor, torch.Tensor]]]:
    """Per prunable group, the conv/linear modules producing its channels: (module, output
    positions, root channels they carry)."""
    out = []
    for group in graph.prunable:
        targets = []
        for item in graph.full_tp_group(group):
            module = item.dep.target.module
            if isinstance(module, _CONV) and graph.dg.is_out_channel_pruning_fn(item.dep.handler):
                targets.append((module, torch.as_tensor(item.idxs, dtype=torch.long),
                                torch.as_tensor(item.root_idxs, dtype=torch.long)))
        out.append(targets)
    return out
