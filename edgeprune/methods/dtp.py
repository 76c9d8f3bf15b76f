"""DTP: Differentiable Transportation Pruning (arXiv 2307.08483), on channel groups.

Per pruned group with n channels and keep count k (from the budget): learnable scores s (one
per root channel) and an entropy-regularised transport of the uniform mass a_i = 1/n onto two
bins, keep (mass k/n) and drop (1 - k/n), with cost C[i, keep] = -s_i, C[i, drop] = 0 (a
high score makes keeping cheap). In log form, with dual potentials f (rows) and g (columns),

    P = exp((f_i + g_j - C_ij) / eps)          (= diag(u) exp(-C/eps) diag(v))
    soft mask m_i = n * P[i, keep]

Every training step runs ONE Sinkhorn iteration, warm-started from the previous step's column
potentials g: the row update f_i = eps (log a_i - LSE_j (g_j - C_ij)/eps), then the column
update g_j = eps (log b_j - LSE_i (f_i - C_ij)/eps). Ending on the column update makes the
keep column sum to k/n exactly, so sum_i m_i = k at every step (to float rounding; tracked as
``max_sum_error``). Gradients flow through that one iteration into s (the previous g is a
constant, as in DARTS' first-order approximation). Algebraically m_i = k sigma_i / sum_j
sigma_j with sigma_i = sigmoid((s_i + g_keep - g_drop) / eps): a soft top-k whose threshold
the warm-started duals track.

Temperature (our choice; the paper anneals automatically rather than by a hand-tuned decay):
  * Each step, per group, bisection finds ``eps_bin``: the temperature at which the current
    scores would give a binary mask (mean binary entropy ``final_entropy`` nats per channel;
    a mask's entropy grows with eps). eps then moves geometrically towards eps_bin so as to
    reach it exactly at ``anneal_end`` of training: log eps += (log eps_bin - log eps) /
    steps left. No decay rate to tune, and it follows the scale the scores learn.
  * One iteration moves the threshold only about eps per step, so a cooling transport can fall
    behind (rows off their marginal: a channel stuck between keep and drop). While a group's
    duals lag by more than ``LAG_TOL`` channels of keep-mass, its eps rises by ``EPS_RATE`` per
    step instead, until the transport has caught up.
  * At ``anneal_end`` the mask is frozen to its hard top-k, which the annealed mask should
    already be close to (the gap then is recorded as ``gap_at_freeze``): the rest of training
    adapts the network to exactly the mask it will be slimmed with. This guards against
    near-tied scores, which a short run may not separate at any temperature.

Scores start as the group's l1 norms, standardised per group, so training starts from the
magnitude ranking. Keep counts come from `edgeprune.pruning.budget.allocate` with those l1 scores
(ratio=, flops=, params=, honouring --align). Groups left whole get no scores. The final hard
mask keeps exactly the top-k of P[:, keep] (ties to the lower index). In eval mode the model
runs with the hard mask, so per-epoch test accuracy is that of the slim model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from edgeprune.errors import MethodError
from edgeprune.methods.base import MethodBase, register
from edgeprune.methods.magnitude import group_magnitude
from edgeprune.pruning.budget import select_kept

_PAD = -1e30  # log-mass of padding rows (groups are stacked into one (G, N) tensor)
_EPS_RANGE = (1e-7, 1e4)
_BISECTION_STEPS = 30
LAG_TOL = 0.25  # channels of keep-mass the transport may be off before eps stops falling
EPS_RATE = 0.2  # per step, eps rises by this factor while the transport lags


@dataclass(frozen=True)
class DTPConfig:
    eps_init: float = 1.0  # start temperature, in units of the standardised initial scores
    anneal_end: float = 0.5  # fraction of training at which the mask is frozen to its top-k
    final_entropy: float = 1e-3  # mean nats per channel that count as binary
    score_lr_scale: float = 1.0  # scores' learning rate relative to the network's
    init_iterations: int = 200  # full Sinkhorn iterations that set the duals before training

    def __post_init__(self) -> None:
        if not self.eps_init > 0 or not 0 < self.anneal_end <= 1 or not self.final_entropy > 0:
            raise MethodError(f"DTP config out of range: {self}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DTPConfig":
        known = {f.name for f in fields(cls)}
        if set(data) - known:
            raise MethodError(f"unknown DTP options {sorted(set(data) - known)}; known: {sorted(known)}")
        return cls(**data)


def sinkhorn_step(
    scores: torch.Tensor, duals: torch.Tensor, eps: torch.Tensor, log_a: torch.Tensor, log_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Sinkhorn iteration (row update, then column update) in the log domain.

    Args:
        scores: (G, N) channel scores (padding entries anything finite).
        duals: (G, 2) column potentials g from the previous step (keep, drop), cost units.
        eps: (G,) temperatures.
        log_a: (G, N) log row masses (log 1/n, or _PAD for padding).
        log_b: (G, 2) log column masses (log k/n, log (1 - k/n)).
    Returns:
        log P (G, N, 2) whose columns sum exactly to b, and the new column potentials (G, 2).
    """
    cost = torch.stack([-scores, torch.zeros_like(scores)], dim=-1)  # (G, N, 2)
    e = eps[:, None, None]
    f = eps[:, None] * (log_a - torch.logsumexp((duals[:, None, :] - cost) / e, dim=2))  # (G, N)
    g = eps[:, None] * (log_b - torch.logsumexp((f[:, :, None] - cost) / e, dim=1))  # (G, 2)
    return (f[:, :, None] + g[:, None, :] - cost) / e, g


def row_residual(log_p: torch.Tensor, log_a: torch.Tensor) -> torch.Tensor:
    """Per group, sum_i |P_i,keep + P_i,drop - a_i| after a column update (0 once converged)."""
    return (log_p.exp().sum(2) - log_a.exp()).abs().sum(1)


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-12, 1 - 1e-12)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def solve_eps(z: torch.Tensor, valid: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per row, the eps whose mask sigmoid(z / eps) has mean binary entropy ``target``.

    z: (G, N) score margins s_i + g_keep - g_drop; valid: (G, N) bool; target: (G,) nats.
    Bisection on log eps (entropy increases with eps), clamped to _EPS_RANGE."""
    lo = torch.full_like(target, float(np.log(_EPS_RANGE[0])))
    hi = torch.full_like(target, float(np.log(_EPS_RANGE[1])))
    count = valid.sum(1)
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        h = (binary_entropy(torch.sigmoid(z / mid.exp()[:, None])) * valid).sum(1) / count
        high = h > target
        hi = torch.where(high, mid, hi)
        lo = torch.where(high, lo, mid)
    return ((lo + hi) / 2).exp()


def next_eps(eps: torch.Tensor, eps_bin: torch.Tensor, steps_left: int, lag: torch.Tensor) -> torch.Tensor:
    """One geometric step from ``eps`` towards ``eps_bin``, due in ``steps_left`` steps; a group
    whose duals lag by more than LAG_TOL channels warms by EPS_RATE instead."""
    cooled = (eps.log() + (eps_bin.log() - eps.log()) / max(1, steps_left)).exp()
    return torch.where(lag > LAG_TOL, eps * (1 + EPS_RATE), cooled).clamp(*_EPS_RANGE)


def _top_k_mask(values: torch.Tensor, k: int) -> torch.Tensor:
    keep = select_kept([values.detach().double().numpy()], [k])[0]
    m = torch.zeros(len(values))
    m[keep] = 1.0
    return m


@register("dtp")
class DTP(MethodBase):
    """Differentiable Transportation Pruning; see the module docstring."""

    training_time = True
    config_class = DTPConfig  # get_method("dtp", **options) takes its fields

    def __init__(self, config: DTPConfig | None = None) -> None:
        self.config = config or DTPConfig()
        self.lr_scale = self.config.score_lr_scale
        self.groups: list[int] = []  # prunable-group indices that DTP prunes (keep < size)
        self.rows: list[int | None] = []  # per prunable group: its row in the stacked tensors
        self._handle = None

    # ---- set-up --------------------------------------------------------------------------

    def scores(self, model, graph) -> list[np.ndarray]:
        """Initial importance (group l1 norms): what the budget allocator ranks by."""
        return group_magnitude(graph, p=1)

    def attach(self, model: nn.Module, graph, widths: Sequence[int], init_scores: Sequence[np.ndarray]) -> None:
        """Create scores for every group that ``widths`` prunes and hook the masks into ``model``."""
        from edgeprune.pruning.masks import apply_masks

        sizes = [g.size for g in graph.prunable]
        if len(widths) != len(sizes) or any(not 1 <= w <= n for w, n in zip(widths, sizes)):
            raise MethodError("DTP needs one keep count in [1, size] per prunable group")
        self.sizes, self.widths = sizes, [int(w) for w in widths]
        self.groups = [i for i, (w, n) in enumerate(zip(widths, sizes)) if w < n]
        self.rows = [None] * len(sizes)
        for r, i in enumerate(self.groups):
            self.rows[i] = r
        G, N = len(self.groups), max((sizes[i] for i in self.groups), default=1)
        self.n = torch.tensor([float(sizes[i]) for i in self.groups], dtype=torch.float64)
        self.k = torch.tensor([float(widths[i]) for i in self.groups], dtype=torch.float64)
        self.valid = torch.zeros(G, N, dtype=torch.bool)
        init = torch.zeros(G, N)
        for r, i in enumerate(self.groups):
            self.valid[r, : sizes[i]] = True
            s = torch.as_tensor(np.asarray(init_scores[i], dtype=np.float64))
            std = s.std()
            init[r, : sizes[i]] = ((s - s.mean()) / std if std > 0 else torch.zeros_like(s)).float()
        self.score = nn.Parameter(init)
        pad = torch.full((G, N), _PAD, dtype=torch.float64)
        self.log_a = torch.where(self.valid, -self.n.log()[:, None], pad)
        self.log_b = torch.stack([(self.k / self.n).log(), (1 - self.k / self.n).log()], dim=1)
        self.duals = torch.zeros(G, 2, dtype=torch.float64)
        self.eps = torch.full((G,), self.config.eps_init, dtype=torch.float64)
        self.residual = torch.zeros(G, dtype=torch.float64)
        self.max_sum_error = torch.zeros((), dtype=torch.float64)
        self.frozen: torch.Tensor | None = None  # (G, N) hard masks once anneal_end is reached
        self.gap_at_freeze: float | None = None
        self._ones = [torch.ones(n) for n in sizes]
        self._model = model
        self._dist = None
        self._progress, self._total_steps = 0.0, 1
        self._initialise_duals()
        self._handle = apply_masks(model, graph, self.mask)

    def detach(self) -> None:
        """Remove the mask hooks: the model is the plain dense network again."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @torch.no_grad()
    def _initialise_duals(self) -> None:
        """Converge the transport at eps_init (not a training step)."""
        if not self.groups:
            self._publish()
            return
        s = self.score.detach().double()
        for _ in range(self.config.init_iterations):
            log_p, self.duals = sinkhorn_step(s, self.duals, self.eps, self.log_a, self.log_b)
        self.residual = row_residual(log_p, self.log_a)
        self._publish()

    def lag(self) -> torch.Tensor:
        """Per group, how many channels' worth of keep-mass the transport is off: the row
        marginal error of the last iteration (about 2 lag / n) times n / 2."""
        return self.residual * self.n / 2

    def _margins(self, s: torch.Tensor) -> torch.Tensor:
        return s + (self.duals[:, 0] - self.duals[:, 1])[:, None]

    @torch.no_grad()
    def entropy(self, eps: torch.Tensor | None = None) -> torch.Tensor:
        """Per group, mean binary entropy (nats) of sigmoid(margin / eps)."""
        eps = self.eps if eps is None else eps
        sigma = torch.sigmoid(self._margins(self.score.detach().double()) / eps[:, None])
        return (binary_entropy(sigma) * self.valid).sum(1) / self.valid.sum(1)

    # ---- the step ------------------------------------------------------------------------

    def _step(self) -> None:
        """A training step: set eps for the current progress, run one Sinkhorn iteration with
        gradient into the scores, keep its column potentials, publish the soft masks. From
        anneal_end on, publish the frozen hard masks instead."""
        if not self.groups:
            return
        if self._progress >= self.config.anneal_end and self.frozen is None:
            self._freeze()
        if self.frozen is not None:
            zero = (self.score * 0).sum()  # keeps the scores in the graph (DDP expects a gradient)
            self._set_masks(self.frozen + zero)
            return
        with torch.no_grad():
            final = torch.full_like(self.eps, self.config.final_entropy)
            eps_bin = solve_eps(self._margins(self.score.detach().double()), self.valid, final)
            steps_left = round((self.config.anneal_end - self._progress) * self._total_steps)
            self.eps = next_eps(self.eps, eps_bin, steps_left, self.lag())
        log_p, duals = sinkhorn_step(self.score.double(), self.duals, self.eps, self.log_a, self.log_b)
        self.duals = duals.detach()
        with torch.no_grad():
            self.residual = row_residual(log_p.detach(), self.log_a)
        self._set_masks((self.n[:, None] * log_p[:, :, 0].exp()).float())  # (G, N)

    @torch.no_grad()
    def _freeze(self) -> None:
        self._publish()
        self.gap_at_freeze = self.binary_gap()
        frozen = torch.zeros_like(self.score)
        for r, h in enumerate(self.hard_masks()):
            frozen[r, : len(h)] = h
        self.frozen = frozen

    @torch.no_grad()
    def _publish(self) -> None:
        """Masks of the current state (same iteration, no gradient, state left as it is): what
        eval mode and the final plan use, a pure function of what a checkpoint holds."""
        if not self.groups:
            self._soft, self._hard = [], []
            return
        if self.frozen is not None:
            self._set_masks(self.frozen.clone())
            return
        log_p, _ = sinkhorn_step(self.score.double(), self.duals, self.eps, self.log_a, self.log_b)
        self._set_masks((self.n[:, None] * log_p[:, :, 0].exp()).float())

    def _set_masks(self, masks: torch.Tensor) -> None:
        with torch.no_grad():
            sums = (masks.double() * self.valid).sum(1)
            self.max_sum_error = torch.maximum(self.max_sum_error, (sums - self.k).abs().max())
        self._soft = [masks[r, : self.sizes[i]] for r, i in enumerate(self.groups)]
        self._hard = None

    # ---- masks ---------------------------------------------------------------------------

    def mask(self, i: int) -> torch.Tensor:
        """The mask of prunable group i: soft while training, the hard top-k in eval mode."""
        r = self.rows[i]
        if r is None:
            return self._ones[i]
        if self._model.training:
            return self._soft[r]
        return self.hard_masks()[r]

    def hard_masks(self) -> list[torch.Tensor]:
        """Per pruned group, the 0/1 mask keeping the top-k of the current P[:, keep]."""
        if self._hard is None:
            if self.frozen is not None:
                self._hard = [self.frozen[r, : self.sizes[i]].clone() for r, i in enumerate(self.groups)]
            else:
                self._hard = [_top_k_mask(self._soft[r], self.widths[i]) for r, i in enumerate(self.groups)]
        return self._hard

    def soft_masks(self) -> list[torch.Tensor]:
        """Current masks of every prunable group (ones for groups left whole), detached."""
        return [self._ones[i] if r is None else self._soft[r].detach() for i, r in enumerate(self.rows)]

    def kept(self) -> list[list[int]]:
        """Per prunable group, the kept root channels (all of them for groups left whole)."""
        hard = self.hard_masks()
        return [
            list(range(self.sizes[i])) if r is None else sorted(int(j) for j in hard[r].nonzero().flatten())
            for i, r in enumerate(self.rows)
        ]

    def binary_gap(self) -> float:
        """max |mask - hard mask| over all channels: 0 once the mask is binary."""
        if not self.groups:
            return 0.0
        return max(float((s.detach() - h).abs().max()) for s, h in zip(self._soft, self.hard_masks()))

    def report(self) -> dict[str, Any]:
        """What report.json records under "dtp" (call before detach)."""
        return {"config": self.config.to_json(), "max_mask_sum_error": float(self.max_sum_error),
                "final_binary_gap": self.binary_gap(),
                "final_eps_median": float(self.eps.median()) if self.groups else None}

    # ---- trainer hooks -------------------------------------------------------------------

    def parameters(self) -> list[nn.Parameter]:
        return [self.score] if self.groups else []

    def on_train_start(self, trainer) -> None:
        self._dist = trainer.dist

    def on_step_start(self, step: int, total_steps: int) -> None:
        self._progress, self._total_steps = step / max(1, total_steps), max(1, total_steps)

    def before_forward(self) -> None:
        self._step()

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        if self._dist is not None and self._dist.enabled:  # deterministic anyway; make it certain
            with torch.no_grad():
                for t in (self.score.data, self.duals, self.eps, self.residual):
                    self._dist.broadcast_(t)
                if self.frozen is not None:
                    self._dist.broadcast_(self.frozen)
        self._publish()
        if not self.groups:
            return {}
        out = {
            "dtp_eps_median": float(self.eps.median()),
            "dtp_mask_entropy": float(self.entropy().mean()),
            "dtp_binary_gap": self.binary_gap(),
            "dtp_max_lag": float(self.lag().max()),
            "dtp_max_sum_error": float(self.max_sum_error),
        }
        if self.gap_at_freeze is not None:
            out["dtp_gap_at_freeze"] = self.gap_at_freeze
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_json(),
            "groups": list(self.groups),
            "widths": list(self.widths),
            "score": self.score.detach().clone(),
            "duals": self.duals.clone(),
            "eps": self.eps.clone(),
            "residual": self.residual.clone(),
            "max_sum_error": float(self.max_sum_error),
            "progress": self._progress,
            "frozen": self.frozen.clone() if self.frozen is not None else None,
            "gap_at_freeze": self.gap_at_freeze,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["groups"] != list(self.groups) or state["widths"] != list(self.widths):
            raise MethodError(
                "the DTP state was made for other keep counts (budget, --align or model differ): "
                f"widths {state['widths']} vs {self.widths}"
            )
        with torch.no_grad():
            self.score.copy_(state["score"])
        self.duals, self.eps = state["duals"].clone(), state["eps"].clone()
        self.residual = state["residual"].clone()
        self.max_sum_error = torch.tensor(float(state["max_sum_error"]), dtype=torch.float64)
        self._progress = float(state["progress"])
        self.frozen = state["frozen"].clone() if state["frozen"] is not None else None
        self.gap_at_freeze = state["gap_at_freeze"]
        self._publish()
