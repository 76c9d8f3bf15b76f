"""Bias correction for quantized weights, both kinds, folded into the layer's float bias.

Both kinds start from the deployed weights W_d (integer codes times per-channel scales) and
add to each output channel's bias the expected difference between the layer the weights
should compute and the one they do compute, over the calibration data:

``data`` (data-driven, Nagel et al. / Finkelstein et al.)
    bias_c += E[W x]_c - E[W_d x]_c = ((W - W_d) applied to E[x])_c

``mean-var`` (Banner et al., METHODS.md)
    per channel mu_c = E[W_c] - E[Q(W_c)], xi_c = ||W_c - E[W_c]|| / ||Q(W_c) - E[Q(W_c)]||;
    the corrected weight xi_c * (Q(w) + mu_c) has an integer part xi_c * Q(w) - deployed by
    multiplying channel c's scale by xi_c - and a constant shift xi_c * mu_c that no integer
    kernel can hold; its expected effect xi_c * mu_c * E[sum of the inputs the channel sees]
    goes into the bias.

``both``: the mean-var scale xi_c, then the data-driven correction against W.

Convolutions and Gemm layers are linear, so E[layer(x)] = layer(E[x]) exactly, with E[x]
the per-position mean of the layer's input over the calibration set (zero padding and
borders included). The layer is evaluated on that mean map with ONNX Runtime (a one-node
model), so the same code serves every Conv variant (groups, strides, dilations, padding).
"""

from __future__ import annotations

from typing import Any

import numpy as np

KINDS = ("data", "mean-var", "both")


def mean_var_factors(weight: np.ndarray, deployed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu_c, xi_c) per output channel (axis 0) for float ``weight`` and its quantized ``deployed``."""
    w = weight.reshape(weight.shape[0], -1).astype(np.float64)
    q = deployed.reshape(deployed.shape[0], -1).astype(np.float64)
    mu = w.mean(axis=1) - q.mean(axis=1)
    num = np.linalg.norm(w - w.mean(axis=1, keepdims=True), axis=1)
    den = np.linalg.norm(q - q.mean(axis=1, keepdims=True), axis=1)
    xi = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    return mu, xi


def expected_output(node: Any, weight: np.ndarray, mean_input: np.ndarray) -> np.ndarray:
    """E over data of ``node`` (Conv or Gemm, bias left out) with ``weight``, per output channel.

    ``mean_input`` is the per-position mean of the layer input without the batch axis.
    """
    from onnx import TensorProto, helper, numpy_helper

    from edgeprune.runtime.onnxruntime import ort_session

    x = mean_input.astype(np.float32)[None]
    if node.op_type == "Gemm":
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0):
            raise ValueError(f"Gemm {node.name!r} with transA is not supported by bias correction")
        w = weight.astype(np.float64)
        vec = x.reshape(-1).astype(np.float64)
        out = w @ vec if attrs.get("transB", 0) else vec @ w
        return out * float(attrs.get("alpha", 1.0))
    if node.op_type != "Conv":
        raise ValueError(f"bias correction supports Conv and Gemm, not {node.op_type} ({node.name!r})")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    conv.attribute.extend(node.attribute)
    graph = helper.make_graph(
        [conv], "mean",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort_session(model.SerializeToString())
    y = session.run(None, {"x": x})[0][0]  # [C_out, H', W']
    return y.reshape(y.shape[0], -1).mean(axis=1).astype(np.float64)
