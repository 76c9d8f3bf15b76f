"""REPrune (Park et al., 2024, arXiv 2402.17862, "Channel Pruning via Kernel Representative
Selection"): cluster the kernels that act on each input channel, keep the filters that cover
the most clusters; inside progressive training-pruning.

``--method reprune --budget flops=F --epochs N``. Choices (ours, where the paper leaves room):

* Keep counts per prunable group are fixed once by the core allocator on BatchNorm scales
  (|gamma|, `edgeprune.methods.bn_scale`'s criterion; group L1 norms for a model without
  BatchNorm), so ``flops=`` lands in the exact-budget window with ``--align`` respected.
* **Clustering** (`cluster_labels`), per producing conv of the group (ordinary convs and
  linears; a depthwise conv has one kernel per channel and is skipped): for every input channel
  i, the group's filters' kernels ``W[f, i]`` (k x k, flattened) are clustered agglomeratively
  with Ward's linkage (``scipy.cluster.hierarchy.linkage(method="ward")``). One cut-off height
  h per conv (the paper's consistent per-layer cut): the height at which the conv has, on
  average over its input channels, as many clusters as the group keeps filters (Ward's merge
  heights only grow, so every channel's cut is consistent with the others').
* **Selection** (`max_coverage`): a filter covers, for each input channel of each producing
  conv, the cluster its kernel belongs to. Filters are chosen greedily, each time the one that
  covers the most clusters not yet covered (the (1 - 1/e)-approximation of the maximum
  coverage problem), ties broken at random (``--option seed=N``), until the keep count.
* **Progressive training-pruning** (SFP's soft masks, `edgeprune.methods.sfp`): pruned
  channels are zeroed in the weights at every selection and keep training, so they can be
  recovered; the evaluation and the slim model use the hard mask. Selections happen at the
  start (|gamma|) and at the end of every epoch up to the freeze epoch
  ``max(1, round(freeze x epochs))``: by |gamma| (the paper's BatchNorm-scale pruning, under
  which zeroed channels whose scale stays large come back), and every ``interval``-th epoch and
  at the freeze epoch by REPrune's kernel coverage. After it (the paper's T_prune) the mask is
  final and applied in training too, so the rest of training recovers the pruned network
  (soft masks to the very end leave a network that relies on channels the final mask removes:
  see SFP in the README's benchmark). The final selection is always REPrune's.
* Per epoch: ``reprune_regrown``, ``reprune_pruned``, ``reprune_selection`` (1: kernel
  coverage, 0: |gamma|, -1: none, frozen) and ``reprune_coverage`` (the fraction of clusters the kept filters
  cover, at coverage epochs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from edgeprune.errors import MethodError
from edgeprune.methods.base import register
from edgeprune.methods.magnitude import group_magnitude
from edgeprune.methods.sfp import SFP, zero_targets


@dataclass(frozen=True)
class REPruneConfig:
    """``interval``: epochs between kernel-coverage selections; ``freeze``: the fraction of the
    epochs after which the mask is final (the last selection, always by kernel coverage);
    ``seed``: the greedy's random tie-breaking."""

    interval: int = 2
    freeze: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        for key, low in (("interval", 1), ("seed", 0)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise MethodError(f"reprune: {key} must be an integer >= {low}, got {value!r}")
        f = self.freeze
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise MethodError(f"reprune: freeze must be a fraction of the epochs in (0, 1], got {f!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def cluster_labels(kernels: np.ndarray, clusters: int) -> tuple[np.ndarray, float]:
    """Ward clustering of one conv's kernels: ``kernels`` (F filters, I input channels, K
    values). Returns labels (I, F) (cluster ids per input channel, 0-based) and the cut height h:
    the (F - clusters) x I smallest merge height over all channels, so that the channels have
    ``clusters`` clusters on average."""
    try:
        from scipy.cluster.hierarchy import fcluster, linkage
    except ImportError:
        from edgeprune.errors import MissingDependencyError

        raise MissingDependencyError("method 'reprune' clusters kernels with scipy's Ward linkage; install it with: "
                                     "pip install scipy (it comes with edgeprune[torch])") from None

    f, i_count, _ = kernels.shape
    if f == 1 or clusters >= f:
        return np.tile(np.arange(f), (i_count, 1)), 0.0
    trees = [linkage(kernels[:, i, :].astype(np.float64), method="ward") for i in range(i_count)]
    heights = np.sort(np.concatenate([z[:, 2] for z in trees]))
    merges = (f - max(1, clusters)) * i_count
    h = float(heights[merges - 1]) if merges > 0 else -1.0
    labels = np.stack([fcluster(z, t=h, criterion="distance") - 1 if h >= 0 else np.arange(f) for z in trees])
    return labels.astype(np.int64), h


def max_coverage(labels: Sequence[np.ndarray], keep: int, rng: np.random.Generator) -> tuple[list[int], float]:
    """Greedy maximum coverage: ``labels`` one (I, F) array per conv (cluster of filter f's kernel
    on input channel i); choose ``keep`` filters, each time one covering the most uncovered
    (conv, channel, cluster) elements, ties at random. Returns (chosen, covered fraction)."""
    f = labels[0].shape[1]
    covered = [np.zeros((lab.shape[0], int(lab.max()) + 1), dtype=bool) for lab in labels]
    total = sum(int(np.unique(lab[i]).size) for lab in labels for i in range(lab.shape[0]))
    chosen: list[int] = []
    free = np.ones(f, dtype=bool)
    rows = [np.arange(lab.shape[0])[:, None] for lab in labels]
    for _ in range(min(keep, f)):
        gains = sum((~cov[r, lab]).sum(axis=0) for cov, r, lab in zip(covered, rows, labels))
        gains = np.where(free, gains, -1)
        best = np.flatnonzero(gains == gains.max())
        pick = int(best[rng.integers(len(best))]) if len(best) > 1 else int(best[0])
        chosen.append(pick)
        free[pick] = False
        for cov, lab in zip(covered, labels):
            cov[np.arange(lab.shape[0]), lab[:, pick]] = True
    done = sum(int(cov.sum()) for cov in covered)
    return sorted(chosen), (done / total if total else 1.0)


@register("reprune")
class REPrune(SFP):
    """Kernel-cluster coverage selection inside soft-mask training; see the module docstring."""

    config_class = REPruneConfig

    def __init__(self, config: REPruneConfig | None = None) -> None:
        super().__init__()
        self.config = config or REPruneConfig()
        self._coverage_now = False
        self._epochs = None
        self.selections: list[dict[str, Any]] = []

    def scores(self, model, graph) -> list[np.ndarray]:
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        return group_magnitude(graph, p=1, bn_only=has_bn)

    def attach(self, model, graph, widths, init_scores) -> None:
        super().attach(model, graph, widths, init_scores)
        self._producers = zero_targets(model, graph)

    def on_train_start(self, trainer) -> None:
        super().on_train_start(trainer)
        self._epochs = trainer.config.epochs

    @property
    def freeze_epoch(self) -> int:
        return max(1, round(self.config.freeze * self._epochs)) if self._epochs else 1

    @property
    def frozen(self) -> bool:
        """Whether the final mask is chosen (it then applies in training too)."""
        return self._epochs is not None and len(self.history) >= self.freeze_epoch

    def mask(self, i: int) -> torch.Tensor:
        return self.masks[i] if self.frozen or not self._model.training else self._ones[i]

    def coverage_epoch(self, epoch: int) -> bool:
        """Whether the selection at the end of 1-based ``epoch`` is by kernel coverage."""
        return epoch % self.config.interval == 0 or epoch == self.freeze_epoch

    def _select(self, scores=None) -> list[torch.Tensor]:
        if not self._coverage_now:
            return super()._select(scores)
        masks, coverages = [], []
        rng = np.random.default_rng(self.config.seed + len(self.selections))
        for g, (n, keep, targets) in enumerate(zip(self.sizes, self.widths, self._producers)):
            labels = []
            for module, positions, roots in targets:
                if not _clusterable(module):
                    continue
                w = module.weight.detach()
                by_root = np.full(n, -1, dtype=np.int64)
                for p, r in zip(positions.tolist(), roots.tolist()):
                    if by_root[r] < 0:
                        by_root[r] = p
                if (by_root < 0).any():
                    continue  # this conv does not produce every channel of the group
                kernels = w[torch.as_tensor(by_root)].reshape(n, w.shape[1], -1).double().numpy()
                labels.append(cluster_labels(kernels, keep)[0])
            m = torch.zeros(n)
            if labels:
                kept, coverage = max_coverage(labels, keep, rng)
                coverages.append(coverage)
            else:  # no ordinary conv produces the group (e.g. only depthwise): |gamma| decides
                kept = sorted(np.argsort(-np.asarray(self.scores(self._model, self._graph)[g]), kind="stable")[:keep])
            m[torch.as_tensor(kept, dtype=torch.long)] = 1.0
            masks.append(m)
        self.selections.append({"coverage": float(np.mean(coverages)) if coverages else None,
                                "groups_by_coverage": len(coverages)})
        return masks

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        if self.frozen:  # the mask is final: the pruned filters stay zero
            self.zero()
            self.history.append(0)
            return {"reprune_regrown": 0, "reprune_pruned": self.pruned_channels(), "reprune_selection": -1.0}
        self._coverage_now = self.coverage_epoch(epoch + 1)  # the trainer counts from 0
        try:
            regrown = self._reselect()
        finally:
            coverage_now, self._coverage_now = self._coverage_now, False
        self.zero()
        self.history.append(regrown)
        record = {"reprune_regrown": regrown, "reprune_pruned": self.pruned_channels(),
                  "reprune_selection": 1.0 if coverage_now else 0.0}
        if coverage_now and self.selections[-1]["coverage"] is not None:
            record["reprune_coverage"] = self.selections[-1]["coverage"]
        return record

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "selections": list(self.selections)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.selections = list(state["selections"])

    def report(self) -> dict[str, Any]:
        return {"config": self.config.to_json(), "allocation": "bn-scale (|gamma|)", "freeze_epoch": self.freeze_epoch,
                "selection": "Ward clusters of each input channel's kernels, greedy maximum coverage",
                "pruned_channels": self.pruned_channels(), "regrown_per_epoch": list(self.history),
                "coverage_selections": self.selections,
                "final_coverage": self.selections[-1]["coverage"] if self.selections else None}


def _clusterable(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and module.groups == 1
