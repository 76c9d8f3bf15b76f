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
