"""CR-SFP: Consistent Representation for Soft Filter Pruning (arXiv 2312.11555), on channel groups.

Two networks share one backbone (the model's weights):

* R-NN: the full network (no mask) with an extra classifier head, a deep copy of the model's
  final ``nn.Linear`` made at attach time. The head is owned by the method (its
  ``parameters()``), so DDP all-reduces its gradients and checkpoints hold it. R-NN swaps it
  in with a forward hook on the final Linear that returns ``r_head(its input)``.
* P-NN: the same backbone with the SFP hard mask applied as output masks
  (`edgeprune.pruning.masks.apply_masks` hooks on the groups' producers) and the model's own final
  Linear.

Every step takes two augmented views x1, x2 of the batch (``views = 2``) and minimises

    CE(R(x1), y) + CE(P(x2), y) + lambda * (KL(p_R || p_P) + KL(p_P || p_R))

with ``lambda = consistency_lambda`` (default 1.0). Both networks run inside one call of the
trainer's network (`forward` gets the tuple of views), so DDP sees one forward per backward;
the cost is two forward and two backward passes.

Choices (ours):

* Keep counts and the per-epoch selection are SFP's (`edgeprune.methods.sfp`): counts fixed
  once by the core allocator from group L2 norms (exact flops=/params=, per-group ratio=), the
  kept channels re-chosen by group L2 norm at train start and at the end of every epoch.
* The weights are not zeroed: the mask lives on P-NN's activations. Masked filters keep
  training through R-NN, so they may regrow and be selected again (``crsfp_regrown``).
* BatchNorm running statistics follow P-NN only: during R-NN's forward every BatchNorm's
  momentum is 0, so its running mean and variance are left as they were. Eval mode is P-NN
  (masked, own head), so per-epoch test accuracy is the slim model's.
* The exported model is P-NN with its own head: the last selection is slimmed
  (`slim_with_parity`); the extra head is dropped (report: ``r_head_dropped``).
* Logged per epoch: ``crsfp_ce_r``, ``crsfp_ce_p``, ``crsfp_kl`` (the symmetric KL, before
  lambda), means over the epoch's steps and ranks.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.errors import MethodError
from edgeprune.methods.base import register
from edgeprune.methods.sfp import SoftMaskBase


@dataclass(frozen=True)
class CRSFPConfig:
    """``consistency_lambda``: weight of the symmetric KL between R-NN and P-NN (>= 0)."""

    consistency_lambda: float = 1.0

    def __post_init__(self) -> None:
        if not self.consistency_lambda >= 0:
            raise MethodError(f"CR-SFP's lambda must be >= 0, got {self.consistency_lambda}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """KL(p_a || p_b) + KL(p_b || p_a), averaged over the batch (softmax over dim 1)."""
    la, lb = F.log_softmax(logits_a, 1), F.log_softmax(logits_b, 1)
    pa, pb = la.exp(), lb.exp()
    return ((pa * (la - lb)).sum(1) + (pb * (lb - la)).sum(1)).mean()


def crsfp_loss(logits_r: torch.Tensor, logits_p: torch.Tensor, labels: torch.Tensor, lam: float):
    """The CR-SFP objective and its parts (ce_r, ce_p, kl; kl before lambda)."""
    ce_r = F.cross_entropy(logits_r, labels)
    ce_p = F.cross_entropy(logits_p, labels)
    kl = symmetric_kl(logits_r, logits_p)
    return ce_r + ce_p + lam * kl, {"ce_r": ce_r, "ce_p": ce_p, "kl": kl}


def final_linear(model: nn.Module, input_shape) -> tuple[str, nn.Linear]:
    """(name, module) of the nn.Linear whose output is the model's output.

    Found by running the model once: the model output must be the very tensor some Linear
    returned. Otherwise MethodError naming the module that produced the output."""
    names = {m: n for n, m in model.named_modules()}
    outputs: list[tuple[str, nn.Module, torch.Tensor]] = []

    def hook(module, _inp, out):
        outputs.append((names[module], module, out))

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *tuple(input_shape)[1:]))
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    producers = [(n, m) for n, m, o in outputs if o is out]
    for name, module in producers:
        if isinstance(module, nn.Linear):
            return name, module
    if producers:
        name, module = producers[-1]
        what = f"module {name!r} ({type(module).__name__})"
    elif outputs:
        name, module, _ = outputs[-1]
        what = f"an operation in {type(model).__name__}.forward after module {name!r} ({type(module).__name__})"
    else:
        what = f"{type(model).__name__}.forward itself"
    raise MethodError(f"CR-SFP needs a final nn.Linear classifier whose output is the model output; "
                      f"the output of this model is produced by {what}")


@register("crsfp")
class CRSFP(SoftMaskBase):
    """CR-SFP; see the module docstring."""

    config_class = CRSFPConfig
    views = 2

    def __init__(self, config: CRSFPConfig | None = None) -> None:
        self.config = config or CRSFPConfig()
        self._handles: list = []
        self._r_mode = False
        self.r_head: nn.Linear | None = None

    def attach(self, model, graph, widths, init_scores) -> None:
        from edgeprune.pruning.masks import apply_masks

        self.head_name, head = final_linear(model, graph.input_shape)
        super().attach(model, graph, widths, init_scores)
        self.r_head = copy.deepcopy(head)
        self.r_head.requires_grad_(True)
        self._ones = [torch.ones(n) for n in self.sizes]
        self._bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        self._sums = torch.zeros(4, dtype=torch.float64)  # ce_r, ce_p, kl, steps

        def swap_head(_m, inp, _out):
            if self._r_mode:
                return self.r_head(inp[0])
            return None

        self._handles = [apply_masks(model, graph, self.mask), head.register_forward_hook(swap_head)]

    def mask(self, i: int) -> torch.Tensor:
        return self._ones[i] if self._r_mode else self.masks[i]

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    @contextmanager
    def r_mode(self):
        """Run the model as R-NN: no masks, the extra head, BatchNorm running stats frozen."""
        momenta = [bn.momentum for bn in self._bns]
        self._r_mode = True
        for bn in self._bns:
            bn.momentum = 0.0
        try:
            yield
        finally:
            self._r_mode = False
            for bn, m in zip(self._bns, momenta):
                bn.momentum = m

    def forward(self, model, x):
        if isinstance(x, (tuple, list)):  # (x1, x2): R-NN on x1, P-NN on x2
            with self.r_mode():
                logits_r = model(x[0])
            return torch.stack([logits_r, model(x[1])])
        return model(x)  # P-NN

    def loss(self, net, batch):
        if len(batch.views) != 2:
            raise MethodError(f"CR-SFP needs two views per batch, got {len(batch.views)}")
        logits = net(tuple(batch.views))
        total, parts = crsfp_loss(logits[0], logits[1], batch.labels, self.config.consistency_lambda)
        with torch.no_grad():
            self._sums += torch.tensor([parts["ce_r"].item(), parts["ce_p"].item(), parts["kl"].item(), 1.0],
                                       dtype=torch.float64)
        return total, logits[1].detach()

    def parameters(self) -> list[nn.Parameter]:
        return list(self.r_head.parameters()) if self.r_head is not None else []

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        sums = self._sums.clone()
        if self._dist is not None:
            self._dist.all_reduce_sum(sums)
        self._sums.zero_()
        regrown = self._reselect()
        self.history.append(regrown)
        steps = max(1.0, float(sums[3]))
        return {"crsfp_ce_r": float(sums[0] / steps), "crsfp_ce_p": float(sums[1] / steps),
                "crsfp_kl": float(sums[2] / steps), "crsfp_regrown": regrown, "crsfp_pruned": self.pruned_channels()}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["r_head"] = {k: v.detach().clone() for k, v in self.r_head.state_dict().items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.r_head.load_state_dict(state["r_head"])

    def report(self) -> dict[str, Any]:
        return {**super().report(), "r_head": self.head_name, "r_head_dropped": True,
                "r_head_params": sum(p.numel() for p in self.r_head.parameters())}
