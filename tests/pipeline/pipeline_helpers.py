"""A tiny pipeline config for the pipeline tests (import as `from pipeline_helpers import ...`)."""

from __future__ import annotations

from pathlib import Path

from data_helpers import fake_fashion_mnist

TINY = """\
name = "tiny"
[model]
spec = "edgeprune:resnet20"
[data]
name = "fashion-mnist"
root = "fmnist"
train_subset = 128
test_subset = 64
eval_batch_size = 32
[train]
epochs = 2
batch_size = 32
seed = 0
[prune]
method = "{method}"
budget = "flops=0.5"
epochs = 2
batch_size = 32
{options}
[export]
formats = ["onnx"]
[quantize]
calib = "calib.toml"
[targets]
names = ["x86-ort-1t"]
runs = {runs}
warmup = 1
[budgets]
max_ratio = {max_ratio}
max_accuracy_drop = 1.0
"""

CALIB = """\
description = "the fake Fashion-MNIST of the pipeline tests"
[source]
kind = "fashion-mnist"
split = "train"
root = "fmnist"
[samples]
count = 32
start = 0
holdout = 32
batch_size = 32
"""


def write_tiny(folder: Path, *, method: str = "dtp", options: str = "", runs: int = 5, max_ratio: float = 5.0) -> Path:
    """Fake data + calibration manifest + config in ``folder``; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "fmnist").is_dir():
        fake_fashion_mnist(folder / "fmnist", n_train=160, n_test=64)
    (folder / "calib.toml").write_text(CALIB)
    path = folder / "tiny.toml"
    path.write_text(TINY.format(method=method, options=options, runs=runs, max_ratio=max_ratio))
    return path


def statuses(outcome) -> dict[str, str]:
    return {name: s["status"] for name, s in outcome.statuses.items()}


def small_cnn(num_classes: int = 2):
    """A user's own model, built by `module:function` (spec "pipeline_helpers:small_cnn")."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes),
    )


small_cnn.input_shape = (1, 3, 16, 16)


def image_folders(root: Path) -> Path:
    """train/<class>/*.png and test/<class>/*.png, two classes (dark, light)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for c, name in enumerate(("dark", "light")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                arr = (rng.integers(0, 40, (20, 20, 3)) + 180 * c).astype(np.uint8)
                Image.fromarray(arr).save(root / split / name / f"{i}.png")
    return root
