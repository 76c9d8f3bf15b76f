"""Random channels: the baseline of Liu et al. 2019 "Rethinking the Value of Network Pruning".

Every channel gets an independent uniform score from a seeded generator, so the global
allocator spreads the exact budget by cost alone (per-group normalised random scores carry no
information) and which channels survive is a uniform random draw. Same seed, same plan. A
method that cannot beat this after fine-tuning has not shown its criterion matters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgeprune.errors import MethodError
from edgeprune.methods.base import register


@dataclass(frozen=True)
class RandomConfig:
    """``seed``: the generator's seed (``--option seed=N``, pipeline ``options = { seed = N }``)."""

    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise MethodError(f"random: seed must be a non-negative integer, got {self.seed!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@register("random")
class RandomChannels:
    """Uniform random scores per channel, independent of the weights."""

    config_class = RandomConfig

    def __init__(self, config: RandomConfig = RandomConfig()) -> None:
        self.config = config

    def scores(self, model, graph) -> list[np.ndarray]:
        rng = np.random.default_rng(self.config.seed)
        return [rng.random(group.size) for group in graph.prunable]
