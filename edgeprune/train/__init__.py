"""Training: the loop (`Trainer`), its configuration, checkpoints, DDP, and the jobs the CLI runs."""

from edgeprune.train.base import MethodBase, TrainConfig, TrainError, TrainingMethod, lr_at

__all__ = ["MethodBase", "TrainConfig", "TrainError", "TrainingMethod", "lr_at"]
