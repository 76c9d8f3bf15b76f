"""What ThiNet and He et al. 2017 share: the second moments of every consumer's sampled input,
and least-squares reconstruction of consumer weights over the kept input channels.

A *consumer* of a prunable group is a conv/linear layer that reads the group's channels as
input (not a depthwise conv, which only passes channels through). For each sampled output
position of a consumer, its unfolded input row ``x`` (``C * kh * kw`` values for a Conv2d, the
``F`` inputs of a Linear) gives the output ``y = W x`` (bias aside). One pass over the
calibration images accumulates ``A = sum x x^T`` per consumer, in float64; everything else
follows from ``A`` and the weights:

* channel ``c``'s contribution to the output is ``z_c = W[:, c] x[c]``, and the Gram matrix of
  the contributions, ``G[c, c'] = sum <z_c, z_c'>``, is what ThiNet's greedy and He's LASSO
  work on (`group_gram`: per prunable group, in root channels, summed over the group's
  consumers, each divided by its output energy ``sum |y|^2``, so a group read by several
  layers weighs their relative errors equally);
* least squares over the kept inputs ``K``: ``W_K^T = (A_KK + r I)^-1 A_K: W^T`` reproduces the
  dense output from the kept inputs (`reconstruct_consumers`), with a small ridge ``r``
  (``ridge`` x the mean diagonal of ``A_KK``) against rank-deficient samples (a refit that
  does not lower the sampled error keeps the weights as they were); the pruned input columns
  are set to 0, so the masked dense model equals the slim one.

Choices (ours): features come from the dense model in eval mode, for all groups at once (no
layer-by-layer pass through the already-pruned network as the papers do); every output
channel of a consumer counts, including ones its own group prunes; the bias is kept.
Consumers that are not a zero-padded Conv2d or a Linear, or whose input is wider than
``MAX_FEATURES``, are not sampled: they are listed as skipped with the reason, and a group
with no sampled consumer is scored by L1 (selection only, reported).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeprune.errors import MethodError

MAX_FEATURES = 4096  # a consumer input row wider than this is not sampled (A would be too large)


@dataclass
class Consumer:
    """One consumer layer: which of its input positions carry which root channels of which
    prunable group, and (after sampling) the second moments of its input rows."""

    name: str
    parts: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (group, positions, roots)
    skip: str = ""  # why it is not sampled
    gram: torch.Tensor | None = None  # (D, D) float64, D = inputs x kernel positions
    rows: int = 0


def find_consumers(model: nn.Module, graph) -> dict[str, Consumer]:
    """Every conv/linear layer that reads a prunable group's channels (depthwise convs excluded)."""
    found: dict[str, Consumer] = {}
    names = {m: n for n, m in model.named_modules()}
    for i, group in enumerate(graph.prunable):
        for item in graph.full_tp_group(group):
            module = item.dep.target.module
            if module not in names or graph.dg.is_out_channel_pruning_fn(item.dep.handler):
                continue
            if not isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                continue
            if isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1:
                continue  # depthwise: passes the channels on to the real consumer
            c = found.setdefault(names[module], Consumer(names[module]))
            c.parts.append((i, torch.as_tensor(item.idxs, dtype=torch.long),
                            torch.as_tensor(item.root_idxs, dtype=torch.long)))
            c.skip = c.skip or _why_not(module)
    return found


def _why_not(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros":
            return f"Conv2d with padding_mode={module.padding_mode!r} (only zero padding is unfolded)"
        d = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
    elif isinstance(module, nn.Linear):
        d = module.in_features
    else:
        return f"{type(module).__name__} consumers are not sampled (only Conv2d and Linear)"
    return f"input rows of {d} values (more than {MAX_FEATURES})" if d > MAX_FEATURES else ""


def _weight(module: nn.Module) -> torch.Tensor:
    """(O, P, K): output, input position, kernel offset, as float64."""
    w = module.weight.detach().double()
    return w.reshape(w.shape[0], w.shape[1], -1)


def input_rows(module: nn.Module, x: torch.Tensor, positions: int, gen: torch.Generator) -> torch.Tensor:
    """``positions`` sampled input rows per image of ``module`` for its input ``x``: (N * p, D)."""
    if isinstance(module, nn.Conv2d):
        cols = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)  # (N, D, L)
        n, _, length = cols.shape
        pick = torch.randint(0, length, (n, min(positions, length)), generator=gen)
        return torch.gather(cols, 2, pick[:, None, :].expand(-1, cols.shape[1], -1)).transpose(1, 2).reshape(
            -1, cols.shape[1])
    rows = x.reshape(x.shape[0], -1, x.shape[-1])  # (N, T, F)
    if rows.shape[1] > positions:
        pick = torch.randint(0, rows.shape[1], (rows.shape[0], positions), generator=gen)
        rows = torch.gather(rows, 1, pick[:, :, None].expand(-1, -1, rows.shape[2]))
    return rows.reshape(-1, rows.shape[-1])


@torch.no_grad()
def sample(model: nn.Module, consumers: dict[str, Consumer], batches: Iterable[torch.Tensor], *,
           images: int, positions: int, seed: int, keep_rows: bool = False) -> dict[str, torch.Tensor]:
    """Run ``images`` images of ``batches`` through ``model`` (eval mode) and accumulate every
    sampled consumer's ``gram``; with ``keep_rows`` also return the rows themselves (tests)."""
    active = {n: c for n, c in consumers.items() if not c.skip}
    kept: dict[str, list[torch.Tensor]] = {n: [] for n in active}
    gens = {n: torch.Generator().manual_seed(seed * 7919 + i) for i, n in enumerate(sorted(active))}
    handles = []
    for name, c in active.items():
        module = model.get_submodule(name)

        def hook(m, inputs, c=c, name=name):
            rows = input_rows(m, inputs[0].detach(), positions, gens[name]).double()
            c.gram = rows.T @ rows if c.gram is None else c.gram + rows.T @ rows
            c.rows += rows.shape[0]
            if keep_rows:
                kept[name].append(rows)

        handles.append(module.register_forward_pre_hook(hook))
    was_training, seen = model.training, 0
    model.eval()
    try:
        for x in batches:
            if seen >= images:
                break
            x = x[: images - seen]
            model(x)
            seen += x.shape[0]
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if seen == 0:
        raise MethodError("no calibration images: the method samples the training data (pass --data)")
    return {n: torch.cat(r) for n, r in kept.items()} if keep_rows else {}


def output_energy(module: nn.Module, gram: torch.Tensor) -> float:
    """sum |W x|^2 over the sampled rows: trace(W A W^T)."""
    w = _weight(module).reshape(module.weight.shape[0], -1)
    return float(((w @ gram) * w).sum())


def group_gram(model: nn.Module, consumers: dict[str, Consumer], group_index: int, size: int) -> np.ndarray | None:
    """G[r, r'] = sum over the group's sampled consumers of <z_r, z_r'> / sum |y|^2 (root channels);
    None if no consumer of the group was sampled."""
    total, any_ = torch.zeros(size, size, dtype=torch.float64), False
    for c in consumers.values():
        if c.skip or c.gram is None or all(g != group_index for g, _, _ in c.parts):
            continue
        module = model.get_submodule(c.name)
        w = _weight(module)  # (O, P, K)
        o, p, k = w.shape
        a = c.gram.reshape(p, k, p, k)
        energy = output_energy(module, c.gram)
        for g, pos, roots in c.parts:
            if g != group_index:
                continue
            wg = w[:, pos, :]  # (O, L, K)
            ag = a[pos][:, :, pos]  # (L, K, L, K)
            flat = wg.reshape(o, -1)  # sum_o W[o,l,k] W[o,m,j] as one matmul, then weighted by A:
            gc = ((flat.T @ flat).reshape(ag.shape) * ag).sum(dim=(1, 3))  # (L, L), = einsum olk,lkmj,omj->lm
            onehot = torch.zeros(len(pos), size, dtype=torch.float64)
            onehot[torch.arange(len(pos)), roots] = 1.0
            total += onehot.T @ gc @ onehot / max(energy, 1e-300)
            any_ = True
    return total.numpy() if any_ else None


def order_scores(removal_order: Sequence[int], errors: Sequence[float]) -> np.ndarray:
    """Scores for the allocator that follow a removal order: the channel removed at step i
    gets the error increase of that step, made non-decreasing along the order (running max)
    plus a tiny strictly increasing term, so `select_kept` keeps exactly the channels
    removed last, and the allocator's sum of dropped scores tracks the error."""
    steps = np.diff(np.concatenate([[0.0], np.asarray(errors, dtype=np.float64)]))
    rising = np.maximum.accumulate(np.maximum(steps, 0.0))
    tiny = max(float(rising.max()), 1e-30) * 1e-9
    out = np.empty(len(removal_order))
    out[np.asarray(removal_order, dtype=np.int64)] = rising + tiny * (1 + np.arange(len(removal_order)))
    return out


@torch.no_grad()
def reconstruct_consumers(model: nn.Module, consumers: dict[str, Consumer], kept: Sequence[Sequence[int]],
                          ridge: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Least-squares weights over the kept inputs of every consumer that loses inputs, in
    ``model`` (a dense copy, modified in place; its pruned input columns become 0).

    Returns (reconstructed, skipped): per layer its relative output error on the sampled rows
    before (pruned inputs dropped, weights as they were) and after; skipped layers with why."""
    done, skipped = [], []
    keep_sets = [set(int(j) for j in k) for k in kept]
    for c in sorted(consumers.values(), key=lambda c: c.name):
        module = model.get_submodule(c.name)
        p = module.weight.shape[1]
        dropped = torch.zeros(p, dtype=torch.bool)
        for g, pos, roots in c.parts:
            dropped[pos] |= torch.tensor([int(r) not in keep_sets[g] for r in roots], dtype=torch.bool)
        if not dropped.any():
            continue
        if c.skip or c.gram is None:
            skipped.append({"layer": c.name, "reason": c.skip or "never ran on the calibration data"})
            continue
        w = _weight(module)  # (O, P, K)
        o, _, k = w.shape
        feat = (~dropped).repeat_interleave(k)  # kept features, (P * K,)
        a = c.gram
        wd = w.reshape(o, -1)  # (O, D)
        akk = a[feat][:, feat]
        reg = ridge * float(akk.diagonal().mean().clamp_min(1e-300))
        rhs = a[feat] @ wd.T  # (|K|, O)
        wk = torch.linalg.solve(akk + reg * torch.eye(akk.shape[0], dtype=akk.dtype), rhs).T  # (O, |K|)
        new = torch.zeros_like(wd)
        new[:, feat] = wk
        before = wd.clone()
        before[:, ~feat] = 0.0
        energy = max(output_energy(module, a), 1e-300)
        err_before, err_after = _error(wd, before, a) / energy, _error(wd, new, a) / energy
        if not err_after < err_before:  # the ridge can cost more than it gains on a near-exact layer
            new, err_after = before, err_before
        done.append({"layer": c.name, "inputs": p, "kept_inputs": int((~dropped).sum()),
                     "error_before": err_before, "error_after": err_after, "refit": bool(err_after < err_before)})
        module.weight.copy_(new.reshape(module.weight.shape).to(module.weight.dtype))
    return done, skipped


def _error(w: torch.Tensor, v: torch.Tensor, a: torch.Tensor) -> float:
    d = w - v
    return float(torch.einsum("od,de,oe->", d, a, d))


@dataclass(frozen=True)
class SampleConfig:
    """How consumer inputs are sampled and weights reconstructed (``--option KEY=VALUE``):
    ``images`` calibration images from the training split, ``positions`` sampled output
    positions per image and consumer, ``ridge`` the relative ridge of the least squares,
    ``seed`` of the position sampling."""

    images: int = 256
    positions: int = 10
    ridge: float = 1e-6
    seed: int = 0

    def __post_init__(self) -> None:
        for key in ("images", "positions", "seed"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
                raise MethodError(f"{key} must be a {'non-negative' if key == 'seed' else 'positive'} integer, "
                                  f"got {value!r}")
        if isinstance(self.ridge, bool) or not isinstance(self.ridge, (int, float)) or not self.ridge >= 0:
            raise MethodError(f"ridge must be a number >= 0, got {self.ridge!r}")

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


class ConsumerMethod:
    """A one-shot method that needs data: ``calibrate`` samples the consumers, ``scores`` ranks
    channels from the group Gram matrices (``group_scores``), ``select`` picks the channels at
    the allocator's widths, ``reconstruct`` refits the consumers of a dense copy."""

    needs_data = True
    config_class = SampleConfig

    def __init__(self, config: SampleConfig | None = None) -> None:
        self.config = config or self.config_class()
        self._consumers: dict[str, Consumer] | None = None
        self._grams: list[np.ndarray | None] = []
        self._fallback: list[dict[str, Any]] = []
        self._done: list[dict[str, Any]] = []
        self._skipped: list[dict[str, Any]] = []

    def calibrate(self, model: nn.Module, graph, batches: Iterable[torch.Tensor]) -> None:
        self._consumers = find_consumers(model, graph)
        sample(model, self._consumers, batches, images=self.config.images, positions=self.config.positions,
               seed=self.config.seed)
        self._grams = [group_gram(model, self._consumers, i, g.size) for i, g in enumerate(graph.prunable)]
        self._fallback = [{"group": g.root, "reason": "no consumer of the group could be sampled; scored by L1"}
                          for g, gram in zip(graph.prunable, self._grams) if gram is None]

    def _need(self) -> None:
        if self._consumers is None:
            raise MethodError(f"method {self.name!r} samples the training data: call calibrate() first (pass --data)")

    def scores(self, model, graph) -> list[np.ndarray]:
        self._need()
        l1 = None
        out = []
        for i, gram in enumerate(self._grams):
            if gram is None:
                if l1 is None:
                    from edgeprune.methods.magnitude import group_magnitude

                    l1 = group_magnitude(graph, p=1)
                out.append(l1[i])
            else:
                out.append(self.group_scores(gram))
        return out

    def group_scores(self, gram: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def select(self, scores: Sequence[np.ndarray], widths: Sequence[int]) -> list[list[int]]:
        from edgeprune.pruning.budget import select_kept

        return select_kept(scores, widths)

    def reconstruct(self, model: nn.Module, graph, kept: Sequence[Sequence[int]]) -> None:
        """Refit the consumers of ``model`` (a dense copy of the calibrated model) over ``kept``."""
        self._need()
        self._done, self._skipped = reconstruct_consumers(model, self._consumers, kept, self.config.ridge)

    def report(self) -> dict[str, Any]:
        unsampled = [{"layer": c.name, "reason": c.skip} for c in (self._consumers or {}).values() if c.skip]
        return {
            "config": self.config.to_json(),
            "sampled_rows": {c.name: c.rows for c in (self._consumers or {}).values() if c.rows},
            "reconstructed": self._done,
            "skipped": self._skipped + [s for s in unsampled if s["layer"] not in {x["layer"] for x in self._skipped}]
            + self._fallback,
        }
