"""Calibration manifests (``calibration/*.toml``) and the one reader every calibrator uses.

A bare manifest NAME is looked up as ``NAME.toml`` in ``./calibration``, then each folder in
``$EDGEPRUNE_CALIBRATION`` (os.pathsep-separated), then the built-in manifests (the checkout's
``calibration/``, or the copy a wheel installs); a path is read as is.

A manifest names where calibration images come from, which of them, and a fallback
preprocessing::

    [source]
    kind = "fashion-mnist"        # fashion-mnist | folder | foolbox-imagenet
    split = "train"               # fashion-mnist: train | test
    root = "/usr/share/datasets/fashion-mnist"   # fashion-mnist: optional
    # path = "images/"            # folder: every image below it, sorted by path
    #                             # (relative paths are relative to the manifest)

    [samples]
    count = 512                   # calibration samples: items[start : start + count]
    start = 0
    holdout = 256                 # held-out samples right after them (SQNR check); 0 = none
    batch_size = 64

    [preprocess]                  # fallback only: see below
    mean = [0.2860]
    std = [0.3530]
    resize = "stretch"            # stretch | center-crop (folders / foolbox images)

Preprocessing comes from the model's ``edgeprune.preprocess`` metadata when the model has
it: calibration data must be normalised exactly as the model was trained. The manifest's
mean/std are used only for a model without that metadata. A manifest whose mean/std
disagree with the model's metadata is an error (a silent mismatch would calibrate the
ranges on wrongly scaled inputs); leave them out of manifests meant for exported models.

Unknown keys, wrong types and missing sources are errors naming the file and the field.
Reading is numpy + Pillow only (no torch).
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from edgeprune.errors import EdgepruneError, MissingDependencyError
from edgeprune.files.images import EXTENSIONS as IMAGE_EXTENSIONS
from edgeprune.files.images import RESIZES as RESIZE
from edgeprune.targets import builtin_dir, describe_search, find_in, names_in, search_dirs

KINDS = ("fashion-mnist", "folder", "foolbox-imagenet")
FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
ENV_VAR = "EDGEPRUNE_CALIBRATION"
BUILTIN_DIR = builtin_dir("calibration")  # the checkout's calibration/, or the wheel's installed copy

_KEYS = {
    "": ("source", "samples", "preprocess", "description"),
    "source": ("kind", "split", "root", "path"),
    "samples": ("count", "start", "holdout", "batch_size"),
    "preprocess": ("mean", "std", "resize"),
}


class CalibrationError(EdgepruneError):
    """A calibration manifest or calibration data that cannot be used; names file and field."""


@dataclass(frozen=True)
class Manifest:
    path: Path
    kind: str
    count: int
    start: int = 0
    holdout: int = 0
    batch_size: int = 64
    split: str = "train"
    root: Path | None = None
    folder: Path | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: str = "stretch"
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest": str(self.path), "kind": self.kind, "count": self.count, "start": self.start,
            "holdout": self.holdout, "split": self.split if self.kind == "fashion-mnist" else None,
            "root": str(self.root) if self.root else None, "path": str(self.folder) if self.folder else None,
            "resize": self.resize,
        }


def manifest_dirs() -> list[Path]:
    """Folders searched for a bare manifest name, in order: ``./calibration`` (the current
    folder), each folder in ``$EDGEPRUNE_CALIBRATION`` (os.pathsep-separated), the built-ins."""
    return [d.path for d in search_dirs("calibration", ENV_VAR)]


def list_manifests() -> list[str]:
    """Names of the manifests in all `manifest_dirs` (a name in several is listed once)."""
    return names_in(search_dirs("calibration", ENV_VAR))


def find_manifest(name: str | os.PathLike) -> Path:
    """An existing file as given; else a path (``.toml``, or with a folder) is an error; else a
    bare NAME is looked up as ``NAME.toml`` in `manifest_dirs`, first match wins."""
    p = Path(name)
    if p.is_file():
        return p
    if p.suffix == ".toml" or len(p.parts) != 1:
        raise CalibrationError(f"calibration manifest {str(name)!r} not found (a path is read as is; "
                               "give a bare NAME to look it up)")
    dirs = search_dirs("calibration", ENV_VAR)
    found = find_in(dirs, p.name)
    if found is not None:
        return found
    raise CalibrationError(
        f"calibration manifest {str(name)!r} not found; give a .toml path or one of: "
        f"{', '.join(names_in(dirs)) or 'none'} ({describe_search(dirs, ENV_VAR)})"
    )


def load_manifest(name: str | os.PathLike) -> Manifest:
    """Parse and check a manifest; CalibrationError naming ``file: field`` on any problem."""
    from edgeprune.files.toml import load_toml

    path = find_manifest(name)
    data, _ = load_toml(path, "calibration manifest", CalibrationError)
    where = str(path)
    for table, allowed in _KEYS.items():
        section = data if table == "" else data.get(table, {})
        if not isinstance(section, dict):
            raise CalibrationError(f"{where}: [{table}] must be a table")
        for key in section:
            if key not in allowed:
                field_name = f"{table}.{key}" if table else key
                raise CalibrationError(f"{where}: unknown key {field_name}; allowed: {', '.join(allowed)}")
    source, samples, pre = data.get("source"), data.get("samples", {}), data.get("preprocess", {})
    if not isinstance(source, dict) or "kind" not in source:
        raise CalibrationError(f"{where}: source.kind is required; one of {', '.join(KINDS)}")
    kind = source["kind"]
    if kind not in KINDS:
        raise CalibrationError(f"{where}: source.kind {kind!r} is not one of {', '.join(KINDS)}")

    def integer(key: str, default: int | None, minimum: int) -> int:
        value = samples.get(key, default)
        if value is None:
            raise CalibrationError(f"{where}: samples.{key} is required (an integer >= {minimum})")
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise CalibrationError(f"{where}: samples.{key} must be an integer >= {minimum}, got {value!r}")
        return value

    count = integer("count", None, 0)
    start = integer("start", 0, 0)
    holdout = integer("holdout", 0, 0)
    batch_size = integer("batch_size", 64, 1)
    split = source.get("split", "train")
    if split not in FASHION_MNIST_FILES:
        raise CalibrationError(f"{where}: source.split must be train or test, got {split!r}")
    if kind != "fashion-mnist" and ("split" in source or "root" in source):
        raise CalibrationError(f"{where}: source.split / source.root apply to kind fashion-mnist only")
    root = folder = None
    if "root" in source:
        root = _relative(path, source["root"], "source.root")
    if kind == "folder":
        if "path" not in source:
            raise CalibrationError(f"{where}: source.path is required for kind folder")
        folder = _relative(path, source["path"], "source.path")
    elif "path" in source:
        raise CalibrationError(f"{where}: source.path applies to kind folder only")
    mean = _floats(where, pre, "mean")
    std = _floats(where, pre, "std")
    if (mean is None) != (std is None) or (mean is not None and len(mean) != len(std or ())):
        raise CalibrationError(f"{where}: preprocess.mean and preprocess.std go together, one value per channel each")
    if std is not None and any(s <= 0 for s in std):
        raise CalibrationError(f"{where}: preprocess.std values must be positive, got {list(std)}")
    resize = pre.get("resize", "stretch")
    if resize not in RESIZE:
        raise CalibrationError(f"{where}: preprocess.resize must be one of {', '.join(RESIZE)}, got {resize!r}")
    description = data.get("description", "")
    return Manifest(path, kind, count, start, holdout, batch_size, split, root, folder, mean, std, resize,
                    str(description))


def _relative(manifest: Path, value: Any, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise CalibrationError(f"{manifest}: {key} must be a non-empty string")
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (manifest.parent / p)


def _floats(where: str, table: dict[str, Any], key: str) -> tuple[float, ...] | None:
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, list) or not value or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise CalibrationError(f"{where}: preprocess.{key} must be a list of numbers, got {value!r}")
    return tuple(float(v) for v in value)


# ---------------------------------------------------------------------------------------
# Model input and preprocessing


@dataclass(frozen=True)
class ModelInput:
    """The ONNX model's image input: name, NCHW shape (batch may be None) and its preprocessing."""

    name: str
    shape: tuple[int | None, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preprocess_source: str  # "edgeprune.preprocess metadata" or "manifest <path>"


def model_input(onnx_path: str | os.PathLike, manifest: Manifest) -> ModelInput:
    """Read the model's input and decide the preprocessing (metadata first, manifest fallback)."""
    import json

    import onnx

    from edgeprune.files.onnx_metadata import edgeprune_metadata

    model = onnx.load(str(onnx_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise CalibrationError(f"{onnx_path}: the quantizer handles models with one image input, found {len(inputs)}")
    inp = inputs[0]
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim)
    if len(dims) != 4 or any(d is None for d in dims[1:]):
        raise CalibrationError(
            f"{onnx_path}: input {inp.name!r} must be NCHW with fixed C, H, W, got {list(dims)}"
        )
    if manifest.kind == "fashion-mnist" and dims[1:] != (1, 28, 28):  # a shape mismatch, said as one
        raise CalibrationError(
            f"calibration data from {manifest.path} does not fit the model: input {inp.name!r} expects "
            f"[N, {dims[1]}, {dims[2]}, {dims[3]}] but the images are [N, 1, 28, 28] (Fashion-MNIST); "
            "calibrate on images like the model's (a folder source, or foolbox-imagenet for 224x224 RGB)"
        )
    text = edgeprune_metadata(onnx_path).get("edgeprune.preprocess")
    if text:
        pre = json.loads(text)
        mean, std = tuple(float(v) for v in pre["mean"]), tuple(float(v) for v in pre["std"])
        if manifest.mean is not None:
            if len(manifest.mean) != len(mean) or not (
                np.allclose(manifest.mean, mean, atol=1e-6) and np.allclose(manifest.std or (), std, atol=1e-6)
            ):
                raise CalibrationError(
                    f"{manifest.path}: preprocess mean {list(manifest.mean)} / std {list(manifest.std or ())} "
                    f"disagree with the model's edgeprune.preprocess metadata (mean {list(mean)}, std {list(std)}) "
                    f"in {onnx_path}; the model's values are the ones it was trained with: drop mean/std from "
                    "the manifest or fix them"
                )
        source = "edgeprune.preprocess metadata"
    elif manifest.mean is not None:
        mean, std = manifest.mean, manifest.std or ()
        source = f"manifest {manifest.path} (the model has no edgeprune.preprocess metadata)"
    else:
        raise CalibrationError(
            f"{onnx_path} has no edgeprune.preprocess metadata and {manifest.path} gives no preprocess.mean/std; "
            "add them to the manifest (per channel, for pixels in [0,1])"
        )
    if len(mean) != dims[1]:
        raise CalibrationError(
            f"{onnx_path}: input {inp.name!r} has {dims[1]} channels but the preprocessing ({source}) has "
            f"{len(mean)} mean/std values"
        )
    return ModelInput(inp.name, dims, mean, std, source)


# ---------------------------------------------------------------------------------------
# Images


@dataclass
class CalibrationSet:
    """uint8 images (N, C, H, W) ready for the model, with their normalisation.

    ``calibration`` and ``holdout`` are disjoint index ranges into ``images``.
    """

    manifest: Manifest
    model: ModelInput
    images: np.ndarray
    labels: np.ndarray | None
    n_calib: int
    n_holdout: int
    notes: list[str] = field(default_factory=list)

    def normalise(self, images: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.model.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.model.std, np.float32).reshape(1, -1, 1, 1)
        return ((images.astype(np.float32) / 255.0) - mean) / std

    def batches(self, part: str = "calibration", batch_size: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Feeds {input name: float32 NCHW} over the calibration (or holdout) samples."""
        lo, hi = (0, self.n_calib) if part == "calibration" else (self.n_calib, self.n_calib + self.n_holdout)
        step = batch_size or self.manifest.batch_size
        fixed = self.model.shape[0]
        if fixed is not None:
            step = fixed
        for s in range(lo, hi, step):
            x = self.images[s:min(s + step, hi)]
            if fixed is not None and len(x) < fixed:  # a fixed-batch model: pad by repeating
                x = np.concatenate([x, np.repeat(x[-1:], fixed - len(x), axis=0)])
            yield {self.model.name: self.normalise(x)}

    def num_batches(self, part: str = "calibration") -> int:
        n = self.n_calib if part == "calibration" else self.n_holdout
        step = self.model.shape[0] or self.manifest.batch_size
        return math.ceil(n / step)

    def describe(self) -> dict[str, Any]:
        return {
            **self.manifest.to_json(), "calibration_samples": self.n_calib, "holdout_samples": self.n_holdout,
            "preprocess": {"mean": list(self.model.mean), "std": list(self.model.std),
                           "from": self.model.preprocess_source},
            "notes": self.notes,
        }


def open_calibration(manifest: Manifest | str | os.PathLike, onnx_path: str | os.PathLike) -> CalibrationSet:
    """Load a manifest's calibration (+ holdout) images for the model at ``onnx_path``.

    Raises:
        CalibrationError: the set is empty (names the manifest), images that do not fit the
            model's input (names the input and both shapes), bad preprocessing.
    """
    from edgeprune.files.images import read_image

    m = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)
    mi = model_input(onnx_path, m)
    if m.count == 0:
        raise CalibrationError(f"{m.path}: the calibration set is empty (samples.count = 0)")
    channels, height, width = (int(d) for d in mi.shape[1:])  # type: ignore[arg-type]
    want = m.count + m.holdout
    if m.kind == "fashion-mnist":
        images, labels = _fashion_mnist(m, m.start, want)
    else:
        files = _folder_files(m) if m.kind == "folder" else _foolbox_files(m)
        chosen = files[m.start:m.start + want]
        if not chosen:
            raise CalibrationError(
                f"{m.path}: the calibration set is empty: {len(files)} images found, samples.start = {m.start}"
            )
        images = np.stack([read_image(p, channels, (height, width), m.resize, CalibrationError) for p in chosen])
        labels = _labels_from_names(chosen) if m.kind == "foolbox-imagenet" else None
    n = len(images)
    notes = []
    n_calib = min(m.count, n)
    if n_calib < m.count:
        notes.append(f"only {n_calib} of samples.count = {m.count} available")
    n_hold = max(0, min(m.holdout, n - n_calib))
    if n_hold < m.holdout:
        notes.append(f"only {n_hold} of samples.holdout = {m.holdout} available")
    if images.shape[1:] != (channels, height, width):
        raise CalibrationError(
            f"calibration data from {m.path} does not fit the model: input {mi.name!r} expects "
            f"[N, {channels}, {height}, {width}] but the images are "
            f"[N, {', '.join(str(d) for d in images.shape[1:])}]"
        )
    return CalibrationSet(m, mi, images, labels, n_calib, n_hold, notes)


def _fashion_mnist(m: Manifest, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    root = m.root or FASHION_MNIST_ROOT
    img_file, lab_file = FASHION_MNIST_FILES[m.split]
    paths = [root / img_file, root / lab_file]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise CalibrationError(
            f"{m.path}: Fashion-MNIST files missing ({', '.join(missing)}); install the Debian package "
            "dataset-fashion-mnist or set source.root"
        )
    images = _read_idx(paths[0])
    labels = _read_idx(paths[1])
    images, labels = images[start:start + count], labels[start:start + count]
    if len(images) == 0:
        raise CalibrationError(
            f"{m.path}: the calibration set is empty: Fashion-MNIST {m.split} has {len(_read_idx(paths[1]))} "
            f"samples, samples.start = {start}"
        )
    return images[:, None, :, :].copy(), labels.astype(np.int64)


def _read_idx(path: Path) -> np.ndarray:
    import gzip
    import struct

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _folder_files(m: Manifest) -> list[Path]:
    assert m.folder is not None
    if not m.folder.is_dir():
        raise CalibrationError(f"{m.path}: source.path {str(m.folder)!r} is not a folder")
    files = sorted(p for p in m.folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise CalibrationError(
            f"{m.path}: the calibration set is empty: no images ({', '.join(IMAGE_EXTENSIONS)}) under {m.folder}"
        )
    return files


def foolbox_data_dir() -> Path:
    """foolbox's bundled sample images (found without importing foolbox, whose deps are not needed)."""
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the foolbox-imagenet calibration source needs the sample images of the foolbox package; "
            "install it with: pip install --no-deps foolbox"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _foolbox_files(m: Manifest) -> list[Path]:
    files = sorted(foolbox_data_dir().glob("imagenet_*.*"))
    if not files:
        raise CalibrationError(f"{m.path}: the calibration set is empty: no imagenet_* images in {foolbox_data_dir()}")
    return files


def _labels_from_names(paths: Sequence[Path]) -> np.ndarray:
    """foolbox names its samples imagenet_<index>_<label>.jpg."""
    return np.array([int(p.stem.rsplit("_", 1)[1]) for p in paths], dtype=np.int64)

