"""In-memory image datasets: uint8 tensors plus the preprocessing that turns them into inputs.

Everything the trainer and evaluator need lives in one small object, so that a dataset from
the Debian Fashion-MNIST files and one from a user's image folders behave the same. This module
imports torch only where tensors are made, so the deployed-file path (`edgeprune eval
model.onnx`) reads data without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edgeprune.errors import EdgepruneError

if TYPE_CHECKING:
    import torch


class DataError(EdgepruneError):
    """A dataset that is missing, malformed, or does not fit the model."""


@dataclass(frozen=True)
class Normalization:
    """``(x / 255 - mean) / std`` per channel. Exporters embed these numbers."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str = field(default="", compare=False)  # where the values come from, for manifests

    def to_json(self) -> dict[str, Any]:
        return {"scale": 1.0 / 255.0, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Normalization":
        return cls(tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"]))

    def apply(self, x: "torch.Tensor") -> "torch.Tensor":
        """x: float in [0, 1], (N, C, H, W) -> normalised, in place where possible."""
        import torch

        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, -1, 1, 1)
        return x.sub_(mean).div_(std)


@dataclass(frozen=True)
class Augment:
    """Training augmentation, applied to whole batches: random crop after zero-padding by
    ``pad`` pixels on every side, and a horizontal flip with probability 1/2 if ``flip``."""

    pad: int = 2
    flip: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"pad": self.pad, "flip": self.flip}


@dataclass(frozen=True)
class ImageSet:
    """One split held in memory.

    Attributes:
        images: uint8, (N, C, H, W).
        labels: int64, (N,).
    """

    name: str
    split: str
    images: "torch.Tensor"
    labels: "torch.Tensor"
    classes: tuple[str, ...]
    norm: Normalization

    def __post_init__(self) -> None:
        import torch

        if self.images.dim() != 4 or self.images.dtype != torch.uint8:
            raise ValueError("images must be a uint8 tensor (N, C, H, W)")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("one label per image is required")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def first(self, n: int | None) -> "ImageSet":
        """The first ``n`` samples (all of them if ``n`` is None)."""
        if n is None:
            return self
        if n < 1:
            raise DataError(f"a subset must hold at least one sample, got {n}")
        if n > len(self):
            raise DataError(f"{self.name} {self.split} has {len(self)} samples; cannot take the first {n}")
        return ImageSet(self.name, self.split, self.images[:n], self.labels[:n], self.classes, self.norm)


@dataclass(frozen=True)
class DataSplits:
    """A training and a test split, plus how they were made (recorded in metrics and checkpoints)."""

    train: ImageSet
    test: ImageSet
    augment: Augment | None

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.train.name,
            "train_samples": len(self.train),
            "test_samples": len(self.test),
            "image_shape": list(self.train.shape),
            "classes": len(self.train.classes),
            "augment": self.augment.to_json() if self.augment else None,
            "normalization": self.train.norm.to_json(),
        }
