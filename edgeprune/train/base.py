"""Training configuration and the learning-rate schedule. The protocol training-time pruning
methods implement lives with the methods (`edgeprune.methods.base.TrainingMethod`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from edgeprune.errors import EdgepruneError

SCHEDULES = ("cosine", "constant")


class TrainError(EdgepruneError):
    """A training run that cannot start or resume as asked."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``batch_size`` is per process (torchrun multiplies it by the world size).

    SGD with Nesterov off, momentum 0.9 and weight decay 5e-4 on the network weights (never on a
    method's own parameters, e.g. DTP's scores)."""

    epochs: int
    lr: float = 0.1
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    seed: int = 0
    eval_batch_size: int = 500

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise TrainError(f"epochs must be at least 1, got {self.epochs}")
        if not self.lr > 0:
            raise TrainError(f"learning rate must be positive, got {self.lr}")
        if self.batch_size < 2 or self.eval_batch_size < 1:
            raise TrainError(f"batch size must be at least 2 (BatchNorm), got {self.batch_size}")
        if self.schedule not in SCHEDULES:
            raise TrainError(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainError(f"unknown training config keys {unknown}; known: {sorted(known)}")
        return cls(**data)


def lr_at(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate for optimizer step ``step`` of ``total_steps`` (cosine: from lr down to 0,
    evaluated per step, so that the last step still learns a little)."""
    if config.schedule == "constant":
        return config.lr
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * step / max(1, total_steps)))
