"""Top-1 accuracy of a deployed model (ONNX file or OpenVINO IR) in its own runtime.

The input is normalised with the model's own ``edgeprune.preprocess`` metadata (mean/std per
channel on pixels in [0, 1]), so a file is evaluated the way it will be fed in deployment;
a file without that metadata falls back to the dataset's normalisation, and says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgeprune.errors import SpecError

RUNTIME_BY_SUFFIX = {".onnx": "ort", ".xml": "openvino"}


def read_preprocess(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``edgeprune.preprocess`` metadata of an ONNX file or IR, or None."""
    path = Path(path)
    if path.suffix == ".xml":
        from edgeprune.export.openvino import read_ir_metadata

        meta = read_ir_metadata(path)
    else:
        from edgeprune.files.onnx_metadata import read_metadata

        meta = read_metadata(path)
    text = meta.get("edgeprune.preprocess")
    return json.loads(text) if text else None


def runtime_for(path: str | os.PathLike, runtime: str | None = None) -> str:
    """``runtime``, or the one the file's suffix implies (.onnx -> ort, .xml -> openvino)."""
    path = Path(path)
    runtime = runtime or RUNTIME_BY_SUFFIX.get(path.suffix)
    if runtime is None:
        raise SpecError(f"{path}: cannot tell the runtime from the suffix; use .onnx or .xml, or pass --runtime")
    return runtime


def model_input_shape(path: str | os.PathLike, runtime: str | None = None) -> tuple[Any, ...]:
    """The file's NCHW input shape: from its ``edgeprune.preprocess`` metadata, else from the
    runtime's view of the graph (C, H, W must be fixed)."""
    pre = read_preprocess(path)
    if pre is not None and len(pre.get("input_shape", [])) == 4:
        return tuple(pre["input_shape"])
    from edgeprune.runtime import open_runner

    runner = open_runner(path, runtime_for(path, runtime), batch=1)
    try:
        shape = tuple(runner.inputs[0].shape)
    finally:
        runner.close()
    if len(shape) != 4 or not all(isinstance(d, int) and d > 0 for d in shape[1:]):
        raise SpecError(f"{path}: input {runner.inputs[0].name!r} must be NCHW with fixed C, H, W, got {list(shape)}")
    return shape


def evaluate_deployed(path: str | os.PathLike, data, batch_size: int = 100, runtime: str | None = None) -> dict[str, Any]:
    """Evaluate ``path`` on a test split (an ``edgeprune.data`` ImageSet or EvalSplit: uint8
    images (N, C, H, W), labels); returns accuracy, samples, runtime."""
    from edgeprune.runtime import open_runner

    path = Path(path)
    if not path.is_file():
        raise SpecError(f"model file {str(path)!r} does not exist")
    runtime = runtime_for(path, runtime)
    pre = read_preprocess(path)
    if pre is not None:
        mean, std = pre["mean"], pre["std"]
        fixed = pre.get("input_shape", ["batch"])[0]
        note = "normalised with the model's edgeprune.preprocess metadata"
    else:
        mean, std, fixed = list(data.norm.mean), list(data.norm.std), "batch"
        note = "no edgeprune.preprocess metadata: normalised with the dataset's mean/std"
    if len(mean) != data.images.shape[1]:
        raise SpecError(
            f"{path} expects {len(mean)} input channels (edgeprune.preprocess) but {data.name} images have "
            f"{data.images.shape[1]}"
        )
    batch = batch_size if fixed == "batch" else int(fixed)
    runner = open_runner(path, runtime, batch=batch)
    mean_a = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std_a = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    name = runner.inputs[0].name
    images, labels = np.asarray(data.images), np.asarray(data.labels)
    correct = 0
    try:
        for start in range(0, len(labels), batch):
            x = images[start:start + batch].astype(np.float32) / 255.0
            count = len(x)
            if count < batch:  # a fixed-batch model: pad the last batch, score only real rows
                x = np.concatenate([x, np.zeros((batch - count, *x.shape[1:]), np.float32)])
            logits = runner.run({name: (x - mean_a) / std_a})[0][:count]
            correct += int((logits.argmax(1) == labels[start:start + count]).sum())
        described = runner.describe()
    finally:
        runner.close()
    return {
        "accuracy": correct / len(labels), "samples": int(len(labels)), "runtime": described.get("runtime"),
        "precision": described.get("precision"), "preprocess": note,
    }
