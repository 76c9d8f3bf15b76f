"""ThiNet (Luo et al., ICCV 2017): prune a group's channels by how little the *next* layers'
outputs change without them, then refit those layers by least squares.

On sampled inputs of the group's consumers (`edgeprune.methods.consumers`: ``images``
calibration images, ``positions`` output positions each), channel c contributes ``z_c`` to
the consumer's output; removing a set T changes the output by ``sum_{c in T} z_c``. ThiNet's
greedy removes channels one at a time, each time the one that least increases
``|sum_{c in T} z_c|^2`` (computed from the contributions' Gram matrix; a group read by several
layers, e.g. a residual stream, sums their relative errors). The greedy order does not depend on
how many channels go, so it becomes the scores: the channel removed at step i scores the
error increase of its step (made non-decreasing along the order), the global allocator
chooses the widths under the exact budget, and the kept channels are the ones the greedy
removes last. Then every conv/linear consumer that lost inputs is refit by least squares
over its kept inputs (the paper's final step is a per-channel scaling; full least squares,
as He et al. do, is the simple stronger reading). Fine-tune with ``--finetune-epochs``.

Options (``--option KEY=VALUE``): images (256), positions (10), ridge (1e-6), seed (0).
report["thinet"]: the reconstructed layers with their relative output error on the sampled
rows before and after, and the layers or groups skipped, with why.
"""

from __future__ import annotations

import numpy as np

from edgeprune.methods.base import register
from edgeprune.methods.consumers import ConsumerMethod, SampleConfig, order_scores


def greedy_removal(gram: np.ndarray) -> tuple[list[int], list[float]]:
    """ThiNet's greedy on the contribution Gram matrix G: the removal order of all channels and
    the error |sum_{c in T} z_c|^2 = 1_T^T G 1_T after each removal. Ties go to the lower index."""
    n = gram.shape[0]
    left = np.ones(n, dtype=bool)
    cross = np.zeros(n)  # cross[c] = sum_{t in T} G[t, c]
    order, errors, err = [], [], 0.0
    diag = np.diag(gram)
    for _ in range(n):
        cand = np.where(left, err + 2.0 * cross + diag, np.inf)
        c = int(np.argmin(cand))
        err = float(cand[c])
        order.append(c)
        errors.append(err)
        left[c] = False
        cross += gram[c]
    return order, errors


@register("thinet")
class ThiNet(ConsumerMethod):
    """Greedy channel selection on the consumers' sampled outputs, least-squares refit."""

    config_class = SampleConfig

    def group_scores(self, gram: np.ndarray) -> np.ndarray:
        order, errors = greedy_removal(gram)
        return order_scores(order, errors)
