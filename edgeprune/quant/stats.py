"""Activation statistics over the calibration set, collected in one pass with ONNX Runtime.

Every float tensor the graph computes (and its input) is made a graph output; per tensor we
keep the exact min/max, a random subsample (for the ACIQ distribution fit) and, for the
inputs of Conv/Gemm/MatMul layers, the mean over samples of every position (C, H, W) -
what bias correction needs for E[W x] (a linear layer's expected output is the layer applied
to the expected input, zero padding included).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

SAMPLE_VALUES = 200_000  # subsample size per tensor across the whole calibration set


@dataclass
class TensorStats:
    lowest: float = np.inf
    highest: float = -np.inf
    count: int = 0
    samples: list[np.ndarray] = field(default_factory=list)
    mean_sum: np.ndarray | None = None  # sum over samples of x[n] (per position), if tracked
    mean_n: int = 0

    def sample(self) -> np.ndarray:
        return np.concatenate(self.samples) if self.samples else np.zeros(0, np.float32)

    @property
    def mean_map(self) -> np.ndarray | None:
        return None if self.mean_sum is None else self.mean_sum / max(self.mean_n, 1)


def float_tensors(model: Any) -> list[str]:
    """Names of float activation tensors: the graph inputs and every float node output."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in
             list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        for out in node.output:
            if out and types.get(out) == onnx.TensorProto.FLOAT and out not in names:
                names.append(out)
    return names


def collect(
    model_path: str | os.PathLike,
    batches: Iterable[dict[str, np.ndarray]],
    total_batches: int,
    mean_map_tensors: Sequence[str] = (),
    seed: int = 0,
    progress: bool = True,
) -> dict[str, TensorStats]:
    """Run the model on ``batches`` and return statistics of every float activation tensor."""
    import onnx
    from tqdm import tqdm

    from edgeprune.runtime.onnxruntime import ort_session

    model = onnx.load(str(model_path))
    names = float_tensors(model)
    existing = {o.name for o in model.graph.output}
    for name in names:
        if name not in existing:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort_session(model.SerializeToString())
    outputs = [o.name for o in session.get_outputs()]
    stats = {name: TensorStats() for name in names}
    track = set(mean_map_tensors)
    rng = np.random.default_rng(seed)
    per_batch = max(64, SAMPLE_VALUES // max(total_batches, 1))  # ~SAMPLE_VALUES per tensor in all
    bar = tqdm(batches, total=total_batches, desc="calibrate", unit="batch", disable=not progress, leave=False)
    for feeds in bar:
        values = dict(zip(outputs, session.run(outputs, feeds)))
        for name in names:
            x = values[name]
            s = stats[name]
            flat = x.ravel()
            if flat.size == 0:
                continue
            s.lowest = min(s.lowest, float(flat.min()))
            s.highest = max(s.highest, float(flat.max()))
            s.count += flat.size
            take = flat if flat.size <= per_batch else flat[rng.integers(0, flat.size, per_batch)]
            s.samples.append(take.astype(np.float32, copy=True))
            if name in track:
                total = x.astype(np.float64).sum(axis=0)
                s.mean_sum = total if s.mean_sum is None else s.mean_sum + total
                s.mean_n += x.shape[0]
    bar.close()
    return stats
