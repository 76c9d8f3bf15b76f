"""int8 (QDQ) versions of the graphs a latency table and its calibration time: what ships when
the model is quantized. ONNX Runtime's own quantizer inserts the QuantizeLinear /
DequantizeLinear pairs in the format edgeprune's quantizer writes (uint8 activations, int8
weights per output channel, QDQ), from ranges observed on a few random inputs: int8 kernels
run at the same speed whatever the ranges, so no calibration data is needed for timing."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

PRECISIONS = ("fp32", "int8")
SAMPLES = 4


def to_qdq(fp32_path: str | Path, qdq_path: str | Path, samples: int = SAMPLES, seed: int = 0) -> Path:
    """Quantize the ONNX model at ``fp32_path`` (static, QDQ) into ``qdq_path`` for timing."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(fp32_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    rng = np.random.default_rng(seed)
    feeds = []
    for _ in range(samples):
        feed = {}
        for i in inputs:
            shape = [d.dim_value if d.dim_value > 0 else 1 for d in i.type.tensor_type.shape.dim]
            feed[i.name] = rng.standard_normal(shape).astype(np.float32)
        feeds.append(feed)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT logs a "consider pre-processing" warning on every call
    try:
        quantize_static(str(fp32_path), str(qdq_path), calibration_data_reader=Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return Path(qdq_path)


def in_precision(path: str | Path, precision: str) -> Path:
    """``path`` itself for fp32; its QDQ version beside it (``*.int8.onnx``) for int8."""
    path = Path(path)
    return path if precision == "fp32" else to_qdq(path, path.with_suffix(".int8.onnx"))
