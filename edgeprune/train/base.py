"""Training configuration, the learning-rate schedule, and the protocol training-time
pruning methods implement (DTP, and later SFP / CR-SFP)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from edgeprune.errors import EdgepruneError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgeprune.data.batches import Batch

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


@runtime_checkable
class TrainingMethod(Protocol):
    """What a training-time method plugs into the trainer. Call order per run:

        on_train_start(trainer)              once, after the optimizer exists (and before resume)
        per step: on_step_start(step, total)  ->  loss(net, batch)
                  [net(x) calls before_forward() (training mode), then forward(model, x)]
                  -> on_step(loss) -> backward -> optimizer step -> after_step()
        on_epoch_end(epoch) -> metrics        after every epoch, before evaluation and checkpoint

    ``parameters()`` are trained with the network (no weight decay, lr x ``lr_scale``);
    ``state_dict()`` must hold only tensors, numbers, strings, lists and dicts (it is
    checkpointed with torch.save and loaded with weights_only=True).
    """

    name: str
    training_time: bool
    lr_scale: float
    views: int

    def parameters(self) -> list["nn.Parameter"]: ...
    def on_train_start(self, trainer: Any) -> None: ...
    def on_step_start(self, step: int, total_steps: int) -> None: ...
    def before_forward(self) -> None: ...
    def forward(self, model: "nn.Module", x: Any) -> "torch.Tensor": ...
    def loss(self, net: "nn.Module", batch: "Batch") -> tuple["torch.Tensor", "torch.Tensor"]: ...
    def on_step(self, loss: "torch.Tensor") -> "torch.Tensor": ...
    def after_step(self) -> None: ...
    def on_epoch_end(self, epoch: int) -> dict[str, float]: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def report(self) -> dict[str, Any]: ...


class MethodBase:
    """No-op defaults for `TrainingMethod`; a method overrides what it needs."""

    name = "none"
    training_time = True
    lr_scale = 1.0
    views = 1  # two-view methods (CR-SFP) set 2 and override loss()

    def parameters(self) -> list:
        return []

    def on_train_start(self, trainer) -> None:
        pass

    def on_step_start(self, step: int, total_steps: int) -> None:
        pass

    def before_forward(self) -> None:
        pass

    def forward(self, model, x):
        """How the trainer's network runs ``x`` (two-view methods pass a tuple of views)."""
        return model(x)

    def loss(self, net, batch):
        import torch.nn.functional as F

        logits = net(batch.x)
        return F.cross_entropy(logits, batch.labels), logits

    def on_step(self, loss):
        return loss

    def after_step(self) -> None:
        pass

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def report(self) -> dict[str, Any]:
        """Method-specific fields for report.json (stored under the method's name)."""
        return {}
