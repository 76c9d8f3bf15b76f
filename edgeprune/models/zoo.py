"""The built-in model zoo, addressed as ``edgeprune:NAME``.

Each entry is a factory taking ``in_channels`` and ``num_classes`` and its default input
shape. The defaults suit Fashion-MNIST (1x28x28, 10 classes), the built-in dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from edgeprune.models import cifar_resnet


@dataclass(frozen=True)
class ZooEntry:
    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    num_classes: int


ZOO: dict[str, ZooEntry] = {
    "resnet20": ZooEntry(cifar_resnet.resnet20, (1, 1, 28, 28), 10),
    "resnet56": ZooEntry(cifar_resnet.resnet56, (1, 1, 28, 28), 10),
}
