"""Datasets for training and evaluation, held in memory as uint8 tensors.

``open_data("fashion-mnist", ...)`` reads Debian's Fashion-MNIST IDX files;
``open_data(DIR, ...)`` reads an ImageFolder-style directory. Batches come from
`edgeprune.data.batches` (seeded, vectorised augmentation, two-view mode, rank sharding).
The Fashion-MNIST normalisation is exposed as ``FASHION_MNIST_NORMALIZATION``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgeprune.data import fashion_mnist
from edgeprune.data.base import Augment, DataError, DataSplits, ImageSet, Normalization

FASHION_MNIST_NORMALIZATION = fashion_mnist.NORMALIZATION
FASHION_MNIST_MEAN = fashion_mnist.MEAN
FASHION_MNIST_STD = fashion_mnist.STD
BUILTIN = (fashion_mnist.NAME,)


AUGMENTS = ("auto", "none", "crop", "flip", "crop+flip")


def resolve_augment(setting: bool | str | None, default: Augment) -> Augment | None:
    """``auto`` (or True/None): the dataset's default; ``none`` (or False); ``crop`` (random crop
    after zero padding), ``flip`` (horizontal flips), ``crop+flip``."""
    if setting in (None, True, "auto"):
        return default
    if setting in (False, "none"):
        return None
    if setting not in AUGMENTS:
        raise DataError(f"augment must be one of {', '.join(AUGMENTS)}, got {setting!r}")
    pad = default.pad or 2
    return Augment(pad=pad if "crop" in setting else 0, flip="flip" in setting)


def open_data(
    data: str,
    *,
    root: str | Path | None = None,
    input_shape: tuple[int, ...] | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    augment: bool | str | None = "auto",
    normalization: Normalization | None = None,
) -> DataSplits:
    """Load a dataset by name (``fashion-mnist``) or from an image-folder directory.

    Args:
        data: ``fashion-mnist`` or a directory with train/<class>/ and test/<class>/.
        root: where the Fashion-MNIST files are (default: Debian's location).
        input_shape: the model's input shape; image folders are resized to it, and
            Fashion-MNIST is checked against it.
        train_subset, test_subset: keep only the first N samples of a split.
        augment: training augmentation (see `resolve_augment`). ``auto``: Fashion-MNIST crops
            and flips; image folders only crop (a flip would harm data that is not
            mirror-symmetric, digits or text).
        normalization: what the model is fed (its own mean/std); None: the dataset's
            (Fashion-MNIST's fixed statistics, an image folder's measured ones).
    """
    if data.lower() == fashion_mnist.NAME:
        train = fashion_mnist.load_split(root or fashion_mnist.DEFAULT_ROOT, "train")
        test = fashion_mnist.load_split(root or fashion_mnist.DEFAULT_ROOT, "test")
        aug = fashion_mnist.AUGMENT
    elif Path(data).is_dir():
        if input_shape is None:
            raise DataError("an image-folder dataset needs the model's input shape to resize images")
        from edgeprune.data.folder import load_folder

        train, test, aug = load_folder(data, input_shape)
    else:
        raise DataError(
            f"--data {data!r} is neither a built-in dataset ({', '.join(BUILTIN)}) nor a directory "
            "with train/<class>/ and test/<class>/ image folders"
        )
    if input_shape is not None and tuple(train.shape) != tuple(input_shape[1:]):
        raise DataError(
            f"{train.name} images are {'x'.join(map(str, train.shape))} but the model takes "
            f"{'x'.join(map(str, input_shape[1:]))}; pass --input-shape 1x{'x'.join(map(str, train.shape))}"
        )
    if normalization is not None:
        if len(normalization.mean) != train.shape[0]:
            raise DataError(f"mean/std have {len(normalization.mean)} values but {train.name} images have "
                            f"{train.shape[0]} channels")
        train, test = (dataclasses.replace(s, norm=normalization) for s in (train, test))
    return DataSplits(train.first(train_subset), test.first(test_subset), resolve_augment(augment, aug))


@dataclasses.dataclass(frozen=True)
class EvalSplit:
    """A test split as numpy (uint8 images (N, C, H, W), int64 labels): what deployed files are
    evaluated on, read without torch."""

    name: str
    images: Any
    labels: Any
    classes: tuple[str, ...]
    norm: Normalization


def open_test_arrays(
    data: str,
    channels: int,
    size: tuple[int, int],
    *,
    root: str | Path | None = None,
    test_subset: int | None = None,
) -> EvalSplit:
    """The test split of ``data`` sized for a model that takes ``channels`` x ``size`` (H, W):
    Fashion-MNIST (checked against it) or an image folder (converted and resized to it)."""
    if data.lower() == fashion_mnist.NAME:
        images, labels = fashion_mnist.read_arrays(root or fashion_mnist.DEFAULT_ROOT, "test")
        classes, norm, name = fashion_mnist.CLASSES, fashion_mnist.NORMALIZATION, fashion_mnist.NAME
        if images.shape[1:] != (channels, *size):
            raise DataError(f"fashion-mnist images are 1x28x28 but the model takes {channels}x{size[0]}x{size[1]}")
    elif Path(data).is_dir():
        from edgeprune.data.folder import read_test_split

        images, labels, classes = read_test_split(data, channels, size)
        norm, name = Normalization((0.0,) * channels, (1.0,) * channels, "none"), f"folder:{data}"
    else:
        raise DataError(
            f"--data {data!r} is neither a built-in dataset ({', '.join(BUILTIN)}) nor a directory "
            "with train/<class>/ and test/<class>/ image folders"
        )
    if test_subset is not None:
        if not 1 <= test_subset <= len(labels):
            raise DataError(f"{name} test has {len(labels)} samples; cannot take the first {test_subset}")
        images, labels = images[:test_subset], labels[:test_subset]
    return EvalSplit(name, images, labels, tuple(classes), norm)


__all__ = [
    "AUGMENTS",
    "Augment",
    "DataError",
    "DataSplits",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_NORMALIZATION",
    "FASHION_MNIST_STD",
    "ImageSet",
    "Normalization",
    "EvalSplit",
    "open_data",
    "open_test_arrays",
]
