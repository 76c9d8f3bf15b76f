"""Channel pruning by LASSO regression (He, Zhang & Sun, ICCV 2017), then least-squares
reconstruction of the consumers' weights.

On sampled inputs of a group's consumers (`edgeprune.methods.consumers`), channel c
contributes ``z_c`` to the outputs ``y = sum_c z_c``. He et al. select channels with

    min_beta |y - sum_c beta_c z_c|^2 + lambda |beta|_1

(here written on the contributions' Gram matrix G: ``(1 - beta)^T G (1 - beta) + lambda |beta|_1``,
solved by accelerated proximal gradient, FISTA), raising lambda until only k coefficients are
non-zero; then the consumer's weights are refit by least squares on the kept channels.

Choices (ours): widths come from the global allocator under the exact budget, from scores
that follow the LASSO path: channels leave the active set in order as lambda grows, and the
channel that leaves at step i scores the increase of the least-squares error (beta refit on
the channels still active) at that step. At the allocated width k the selection is the
paper's: bisection on lambda for the smallest lambda with at most k non-zero coefficients,
topped up to exactly k by |beta| at the next smaller lambda. A group read by several layers
(a residual stream) shares one beta over all of them (their relative errors summed); each
conv/linear consumer is then refit on its own. Fine-tune with ``--finetune-epochs``.

Options (``--option KEY=VALUE``): images (256), positions (10), ridge (1e-6), seed (0).
report["he2017"]: the reconstructed layers with their relative output error on the sampled
rows before and after, and the layers or groups skipped, with why.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeprune.methods.base import register
from edgeprune.methods.consumers import ConsumerMethod, SampleConfig, order_scores

PATH_STEPS = 25  # lambda values on the path, from lambda_max down to 1e-4 of it
BISECTIONS = 30
ACTIVE = 1e-10  # |beta| above this (relative to 1) counts as non-zero


def lasso(gram: np.ndarray, lam: float, start: np.ndarray | None = None, iterations: int = 300,
          lipschitz: float | None = None) -> np.ndarray:
    """argmin_beta (1 - beta)^T G (1 - beta) + lam |beta|_1 by FISTA (warm-started at ``start``;
    ``lipschitz``: 2 x the largest eigenvalue of G, computed when not given)."""
    n = gram.shape[0]
    b = gram.sum(axis=1)  # G 1
    if lipschitz is None:
        lipschitz = _lipschitz(gram)
    beta = np.ones(n) if start is None else start.copy()
    z, t = beta.copy(), 1.0
    tol = 1e-10 * max(1.0, float(np.abs(beta).max()))
    for _ in range(iterations):
        step = z - (2.0 / lipschitz) * (gram @ z - b)
        new = np.sign(step) * np.maximum(np.abs(step) - lam / lipschitz, 0.0)
        t_new = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        z = new + ((t - 1.0) / t_new) * (new - beta)
        done = np.max(np.abs(new - beta)) < tol
        beta, t = new, t_new
        if done:
            break
    return beta


def _lipschitz(gram: np.ndarray) -> float:
    return 2.0 * max(float(np.linalg.eigvalsh(gram)[-1]), 1e-300)


def _lambda_max(gram: np.ndarray) -> float:
    return 2.0 * max(float(np.abs(gram.sum(axis=1)).max()), 1e-300)  # above it, beta = 0


def removal_order(gram: np.ndarray) -> list[int]:
    """Channels in the order they leave the LASSO solution as lambda grows (last to enter
    first); ties by |beta| at the smallest lambda, then by index."""
    n = gram.shape[0]
    top, lip = _lambda_max(gram), _lipschitz(gram)
    entry = np.full(n, PATH_STEPS, dtype=np.int64)
    beta = np.zeros(n)
    for j, lam in enumerate(top * np.logspace(0, -4, PATH_STEPS)):
        beta = lasso(gram, lam, beta, lipschitz=lip)
        entry = np.where((np.abs(beta) > ACTIVE) & (entry == PATH_STEPS), j, entry)
    return [int(c) for c in np.lexsort((np.arange(n), np.abs(beta), -entry))]


def refit_errors(gram: np.ndarray, order: Sequence[int]) -> list[float]:
    """|y - sum_{c in S} beta_c z_c|^2 with beta least-squares on S, S = the channels left after
    each removal of ``order``."""
    n = gram.shape[0]
    b = gram.sum(axis=1)
    total = float(b.sum())
    ridge = 1e-9 * max(float(np.trace(gram)) / n, 1e-300)
    sizes = range(1, n + 1) if n <= 256 else np.unique(np.linspace(1, n, 64).astype(int))
    known = {}
    for i in sizes:
        keep = np.asarray(order[i:], dtype=np.int64)
        if len(keep) == 0:
            known[i] = total
            continue
        g = gram[np.ix_(keep, keep)] + ridge * np.eye(len(keep))
        known[i] = total - float(b[keep] @ np.linalg.solve(g, b[keep]))
    xs = sorted(known)
    return list(np.interp(np.arange(1, n + 1), xs, [known[x] for x in xs]))


def lasso_select(gram: np.ndarray, k: int) -> list[int]:
    """The k channels LASSO keeps: the smallest lambda with at most k non-zero coefficients
    (bisection on log lambda), topped up by |beta| at the next smaller lambda."""
    n = gram.shape[0]
    if k >= n:
        return list(range(n))
    lip = _lipschitz(gram)
    hi, lo = np.log(_lambda_max(gram)), np.log(_lambda_max(gram) * 1e-8)
    b_hi, b_lo = np.zeros(n), lasso(gram, float(np.exp(lo)), lipschitz=lip)
    for _ in range(BISECTIONS):
        mid = (hi + lo) / 2.0
        beta = lasso(gram, float(np.exp(mid)), b_lo, lipschitz=lip)
        active = int((np.abs(beta) > ACTIVE).sum())
        if active <= k:
            hi, b_hi = mid, beta
            if active == k:
                break
        else:
            lo, b_lo = mid, beta
    ranked = np.lexsort((np.arange(n), -np.abs(b_lo), -np.abs(b_hi)))
    return sorted(int(c) for c in ranked[:k])


@register("he2017")
class He2017(ConsumerMethod):
    """LASSO channel selection on the consumers' sampled outputs, least-squares refit."""

    config_class = SampleConfig

    def group_scores(self, gram: np.ndarray) -> np.ndarray:
        order = removal_order(gram)
        return order_scores(order, refit_errors(gram, order))

    def select(self, scores, widths) -> list[list[int]]:
        from edgeprune.pruning.budget import select_kept

        out = []
        for i, (s, k) in enumerate(zip(scores, widths)):
            gram = self._grams[i]
            out.append(select_kept([s], [k])[0] if gram is None else lasso_select(gram, int(k)))
        return out
