"""Fake datasets for data/train tests (import as `from data_helpers import ...`)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as a gzip IDX file (the format of the Fashion-MNIST files)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return path


def fake_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 images: class c is a bright 8x8 patch at a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        y, x = 2 + 6 * (c // 4), 2 + 6 * (c % 4)
        images[i, y : y + 8, x : x + 8] = 220
    return images, labels


def fake_fashion_mnist(root: Path, n_train: int = 256, n_test: int = 64) -> Path:
    """A folder that looks like Debian's /usr/share/datasets/fashion-mnist, with tiny splits."""
    root.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = fake_images(n, seed)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return root
