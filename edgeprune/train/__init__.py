"""Training: the loop (`Trainer`), its configuration, checkpoints, DDP, and the jobs the CLI runs."""

from edgeprune.train.base import TrainConfig, TrainError, lr_at

__all__ = ["TrainConfig", "TrainError", "lr_at"]
