"""Fashion-MNIST from the IDX files (gzip) that Debian's ``dataset-fashion-mnist`` installs.

No torchvision and no download: the files are read with numpy from ``root`` (default
``/usr/share/datasets/fashion-mnist``). This machine has no network, so a missing dataset is
an error that says which package and which path provide it.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from edgeprune.data.base import Augment, DataError, ImageSet, Normalization

NAME = "fashion-mnist"
DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
# Per-pixel statistics of the 60k training images (x / 255), measured once; exporters embed them.
MEAN = 0.2860
STD = 0.3530
NORMALIZATION = Normalization((MEAN,), (STD,))
AUGMENT = Augment(pad=2, flip=True)
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_DTYPES = {0x08: np.uint8}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into an array of its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot be read ({err})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(shape))
    if len(data) - header != count:
        raise DataError(f"{path}: header declares shape {shape} ({count} values) but holds {len(data) - header}")
    return np.frombuffer(data, dtype=_DTYPES[data[2]], offset=header).reshape(shape)


def missing_message(root: Path, missing: list[str]) -> str:
    where = "the default location" if root == DEFAULT_ROOT else "--data-root"
    return (
        f"Fashion-MNIST not found: {', '.join(missing)} missing in {root} ({where}). "
        f"Install the Debian package `{DEBIAN_PACKAGE}` (apt-get install {DEBIAN_PACKAGE}), which "
        f"puts the files in {DEFAULT_ROOT}, or pass --data-root to a folder holding "
        f"{', '.join(FILES['train'] + FILES['test'])}. (edgeprune never downloads: there may be no network.)"
    )


def read_arrays(root: str | Path = DEFAULT_ROOT, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """One split as numpy: uint8 images (N, 1, 28, 28) and int64 labels (no torch)."""
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}")
    root = Path(root)
    image_file, label_file = (root / name for name in FILES[split])
    missing = [p.name for p in (image_file, label_file) if not p.is_file()]
    if missing:
        raise DataError(missing_message(root, missing))
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DataError(f"{root}: {split} images {images.shape} and labels {labels.shape} do not match")
    if labels.size and int(labels.max()) >= len(CLASSES):
        raise DataError(f"{label_file}: label {int(labels.max())} outside 0..{len(CLASSES) - 1}")
    return images[:, None], labels.astype(np.int64)


def load_split(root: str | Path = DEFAULT_ROOT, split: str = "train") -> ImageSet:
    """One split of Fashion-MNIST as uint8 (N, 1, 28, 28) images and int64 labels."""
    import torch

    images, labels = read_arrays(root, split)
    return ImageSet(
        name=NAME,
        split=split,
        images=torch.from_numpy(images.copy()),  # (N, 1, 28, 28)
        labels=torch.from_numpy(labels),
        classes=CLASSES,
        norm=NORMALIZATION,
    )
