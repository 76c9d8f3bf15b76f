"""Tiny ONNX models built with onnx.helper (no torch), named the way torch.onnx names nodes.

Not a test module: tests import it as `onnx_models` (tests/ is on sys.path) or use the
`tiny_onnx`, `tiny_weights` and `onnx_models` fixtures of tests/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_cnn(
    path: str | Path,
    *,
    batch: int | str = "batch",
    channels: int = 8,
    size: int = 16,
    classes: int = 4,
    flops: float | None = None,
    seed: int = 0,
) -> Path:
    """Conv(3->channels, 3x3, pad 1) -> Relu -> GlobalAveragePool -> Flatten -> Gemm.

    Input ``input`` [batch, 3, size, size] (batch symbolic unless an int), output
    ``logits`` [batch, classes]. ``flops`` is stored as ``edgeprune.flops`` metadata.
    Returns the path; the weights are also stored in ``tiny_cnn.weights`` for parity tests.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {
        "conv1.weight": rng.standard_normal((channels, 3, 3, 3)).astype(np.float32) * 0.3,
        "conv1.bias": rng.standard_normal(channels).astype(np.float32) * 0.1,
        "fc.weight": rng.standard_normal((classes, channels)).astype(np.float32) * 0.3,
        "fc.bias": rng.standard_normal(classes).astype(np.float32) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["/layer1/conv1/Conv_output_0"],
                         name="/layer1/conv1/Conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["/layer1/conv1/Conv_output_0"], ["/layer1/relu/Relu_output_0"],
                         name="/layer1/relu/Relu"),
        helper.make_node("GlobalAveragePool", ["/layer1/relu/Relu_output_0"], ["/pool/GlobalAveragePool_output_0"],
                         name="/pool/GlobalAveragePool"),
        helper.make_node("Flatten", ["/pool/GlobalAveragePool_output_0"], ["/Flatten_output_0"], name="/Flatten"),
        helper.make_node("Gemm", ["/Flatten_output_0", "fc.weight", "fc.bias"], ["logits"], name="/fc/Gemm", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if flops is not None:
        helper.set_model_props(model, {"edgeprune.flops": str(flops)})
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    tiny_cnn.weights = weights  # type: ignore[attr-defined]
    return path


def reference_forward(x: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """The tiny CNN in numpy (float64), for checking runtimes against an independent answer."""
    w, b = weights["conv1.weight"].astype(np.float64), weights["conv1.bias"].astype(np.float64)
    n, c, h, wd = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", xp[:, :, i : i + h, j : j + wd], w[:, :, i, j])
    out = np.maximum(out + b[None, :, None, None], 0.0)
    pooled = out.mean(axis=(2, 3))
    return pooled @ weights["fc.weight"].T.astype(np.float64) + weights["fc.bias"]
