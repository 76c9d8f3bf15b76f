"""The ONNX side of quantization: which ops we handle, the weighted layers, and the QDQ model
emitted by onnxruntime's own quantizer from ranges we computed.

We do not insert QuantizeLinear/DequantizeLinear by hand. ``onnxruntime.quantization.
quantize_static`` (QDQ format) does, fed with

- activation ranges through its calibration cache (``calibration_cache_path``: a
  ``TensorsData`` JSON; for ACIQ the clipped [lo, hi] per tensor, for the baselines the
  output of ORT's own MinMax / Entropy / Percentile calibrators), and
- weights already clipped and on their grid, with our per-output-channel scales pinned
  through ``extra_options["TensorQuantOverrides"]`` (zero point 0), so ORT reproduces our
  integer codes exactly; ``QDQDisableWeightAdjustForInt32Bias`` keeps it from rescaling them.

Activations are uint8 (asymmetric) and weights int8 per output channel: the combination
ORT's x86 int8 kernels and OpenVINO's CPU plugin both run. 4-bit activations use ORT's
uint4 QDQ (opset 21); weights below 8 bits are int8 codes restricted to the M-bit range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprune.errors import EdgepruneError

# Ops that contain subgraphs (calibration exposes intermediate tensors of the main graph only)
CONTROL_FLOW = frozenset({"If", "Loop", "Scan", "SequenceMap"})
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "com.microsoft"})
WEIGHTED = ("Conv", "Gemm")


class QuantError(EdgepruneError):
    """A model or setting that cannot be quantized; nothing was written."""


@dataclass
class WeightedLayer:
    node: Any
    weight: str
    bias: str | None
    input: str
    axis: int  # output-channel axis of the weight tensor


def check_ops(model: Any, path: str) -> None:
    """QuantError naming the first node the quantizer cannot handle (control flow, custom domain)."""
    for node in model.graph.node:
        if node.op_type in CONTROL_FLOW or any(a.type in (5, 10) for a in node.attribute):  # GRAPH / GRAPHS
            raise QuantError(
                f"{path}: node {node.name or '(unnamed)'!r} (op {node.op_type}) contains a subgraph; the quantizer "
                "calibrates the main graph only and cannot quantize through control flow"
            )
        if node.domain not in STANDARD_DOMAINS:
            raise QuantError(
                f"{path}: node {node.name or '(unnamed)'!r} has op {node.domain}:{node.op_type}, a custom-domain op "
                "that ONNX Runtime cannot run for calibration; replace it or export it as standard ONNX ops"
            )


def weighted_layers(model: Any) -> list[WeightedLayer]:
    """Conv and Gemm nodes whose weight (and bias, if any) are initializers."""
    from onnx import helper

    inits = {i.name for i in model.graph.initializer}
    layers = []
    for node in model.graph.node:
        if node.op_type not in WEIGHTED or len(node.input) < 2 or node.input[1] not in inits:
            continue
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if bias is not None and bias not in inits:
            continue
        axis = 0
        if node.op_type == "Gemm":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("transA", 0):
                continue
            axis = 0 if attrs.get("transB", 0) else 1
        layers.append(WeightedLayer(node, node.input[1], bias, node.input[0], axis))
    return layers


def float_ops(model: Any) -> dict[str, int]:
    """Op types (count) of the QDQ model's float-valued nodes that run in float: op types
    onnxruntime's quantizer has no int8 handling for, and nodes that see no dequantized input.

    Shape arithmetic (int64 tensors, e.g. Shape -> Gather -> Concat for a reshape) is not counted.
    """
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in
             list(inferred.graph.value_info) + list(inferred.graph.output)}
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    quantizable = set(QDQRegistry) | set(QLinearOpsRegistry)  # op types ORT has int8 handling for
    produced_by_dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    left: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
            continue
        if not any(types.get(o) == onnx.TensorProto.FLOAT for o in node.output):
            continue
        if node.op_type not in quantizable or not any(i in produced_by_dq for i in node.input):
            left[node.op_type] = left.get(node.op_type, 0) + 1
    return dict(sorted(left.items()))


def graph_summary(model: Any) -> dict[str, Any]:
    """Counts of Q/DQ nodes and of the integer weight initializers feeding DequantizeLinear."""
    from onnx import TensorProto

    inits = {i.name: i for i in model.graph.initializer}
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    int_weights: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            dtype = TensorProto.DataType.Name(inits[node.input[0]].data_type).lower()
            if len(inits[node.input[0]].dims) > 1:
                int_weights[dtype] = int_weights.get(dtype, 0) + 1
    return {"ops": dict(sorted(ops.items())), "weight_initializers": int_weights}


def ort_quantize(
    prepared_path: str,
    out_path: str,
    cache_path: str,
    method_enum: Any,
    overrides: dict[str, list[dict[str, Any]]],
    act_bits: int,
) -> None:
    """Run ``quantize_static`` (QDQ) on the prepared float model with ranges from ``cache_path``."""
    import logging

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    act_type = QuantType.QUInt8 if act_bits == 8 else QuantType.QUInt4
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ORT logs a "consider pre-processing" warning on every call
    try:
        quantize_static(
            prepared_path,
            out_path,
            calibration_data_reader=None,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=act_type,
            weight_type=QuantType.QInt8,
            calibrate_method=method_enum,
            calibration_cache_path=cache_path,
            extra_options={
                "TensorQuantOverrides": overrides,
                "QDQDisableWeightAdjustForInt32Bias": True,
            },
        )
    finally:
        root.setLevel(level)


def weight_overrides(scales: np.ndarray, axis: int) -> list[dict[str, Any]]:
    """TensorQuantOverrides entry: one dict per output channel with our scale and zero point 0."""
    out = [{"scale": np.float32(s), "zero_point": np.int8(0)} for s in scales]
    out[0]["axis"] = axis
    return out
