"""Users' own images in ImageFolder layout, loaded once into memory:

    DIR/train/<class>/*.png|jpg|...     training images, one folder per class
    DIR/test/<class>/...                test images (``val/`` is accepted too)

Class folders are sorted by name (label i = i-th folder, as torchvision's ImageFolder) and the
test split must have the same class folders. Images are converted to the model's channel
count (L or RGB) and resized to its input height x width. Normalisation statistics are
measured on the training split (used only when the model's own preprocessing is not known).
Augmentation by default crops only: a flip would harm data that is not mirror-symmetric.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeprune.data.base import Augment, DataError, ImageSet, Normalization
from edgeprune.files.images import EXTENSIONS, read_image

TEST_DIRS = ("test", "val")


def _classes(split_dir: Path) -> tuple[str, ...]:
    classes = tuple(sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not classes:
        raise DataError(f"{split_dir}: no class folders (expected {split_dir}/<class>/<image files>)")
    return classes


def _load(split_dir: Path, classes: tuple[str, ...], channels: int, size: tuple[int, int]):
    if channels not in (1, 3):
        raise DataError(f"image folders need a model with 1 or 3 input channels, not {channels}")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (split_dir / name).iterdir() if p.suffix.lower() in EXTENSIONS)
        for path in files:
            images.append(read_image(path, channels, size, "stretch", DataError))  # (C, H, W)
            labels.append(label)
    if not images:
        raise DataError(f"{split_dir}: no images with extensions {', '.join(EXTENSIONS)}")
    return np.stack(images), np.asarray(labels, dtype=np.int64)  # (N, C, H, W) uint8, (N,)


def folder_dirs(root: str | Path) -> tuple[Path, Path, tuple[str, ...]]:
    """(train dir, test dir, class names) of an ImageFolder-style directory, checked."""
    root = Path(root)
    train_dir = root / "train"
    test_dir = next((root / d for d in TEST_DIRS if (root / d).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise DataError(
            f"--data {root}: expected an image-folder dataset with {root}/train/<class>/ and "
            f"{root}/test/<class>/ (or val/); found "
            + ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir()) or ["nothing"])
        )
    classes = _classes(train_dir)
    test_classes = _classes(test_dir)
    if test_classes != classes:
        raise DataError(f"{test_dir}: class folders {list(test_classes)} differ from {train_dir}'s {list(classes)}")
    return train_dir, test_dir, classes


def read_test_split(root: str | Path, channels: int, size: tuple[int, int]):
    """(images uint8 (N, C, H, W), labels, class names) of the test split, as numpy (no torch)."""
    _, test_dir, classes = folder_dirs(root)
    x, y = _load(test_dir, classes, channels, size)
    return x, y, classes


def load_folder(root: str | Path, input_shape: tuple[int, ...]) -> tuple[ImageSet, ImageSet, Augment]:
    """(train, test, augmentation) from an ImageFolder-style directory, sized for ``input_shape``."""
    import torch

    root = Path(root)
    train_dir, test_dir, classes = folder_dirs(root)
    channels, size = int(input_shape[1]), (int(input_shape[-2]), int(input_shape[-1]))
    x_train, y_train = (torch.from_numpy(a) for a in _load(train_dir, classes, channels, size))
    x_test, y_test = (torch.from_numpy(a) for a in _load(test_dir, classes, channels, size))
    pixels = x_train.double().div(255).transpose(0, 1).reshape(channels, -1)
    std = pixels.std(dim=1).clamp_min(1e-3)
    norm = Normalization(
        tuple(round(float(v), 4) for v in pixels.mean(dim=1)), tuple(round(float(v), 4) for v in std),
        f"statistics of folder:{root}",
    )
    name = f"folder:{root}"
    train = ImageSet(name, "train", x_train, y_train, classes, norm)
    test = ImageSet(name, "test", x_test, y_test, classes, norm)
    return train, test, Augment(pad=max(1, size[0] // 8), flip=False)  # flips would harm digits, text
