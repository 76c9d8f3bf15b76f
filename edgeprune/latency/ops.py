"""Operator signatures and the tiny ONNX graphs that time them (torch-free: runs on a board).

An `OpSignature` is what decides a layer's latency on a runtime apart from its channel counts:
the operator (``conv`` or ``gemm``), kernel, stride, padding, dilation, depthwise or not, the
input's spatial size and the activation the runtime fuses into it. `graph_bytes` builds the
one-operator ONNX model (Conv [+ Relu] or Gemm) for given input / output channel counts; the
weights are random (latency does not depend on their values for fp32 kernels).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class OpSignature:
    """A layer's operator, all but its channel counts. ``depthwise``: groups == channels (then
    in = out channels, one width). ``hw``: the input's spatial size (() for gemm)."""

    op: str  # "conv" | "gemm"
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    depthwise: bool = False
    hw: tuple[int, ...] = ()
    relu: bool = True
    precision: str = "fp32"  # "int8": the QDQ graph (`edgeprune.latency.int8`)

    def key(self) -> str:
        """A stable text key (the table's JSON keys)."""
        tail = "" if self.precision == "fp32" else f" {self.precision}"
        if self.op == "gemm":
            return f"gemm relu={int(self.relu)}{tail}"
        dims = lambda t: "x".join(str(v) for v in t)  # noqa: E731
        return (f"conv k={dims(self.kernel)} s={dims(self.stride)} p={dims(self.padding)} d={dims(self.dilation)} "
                f"dw={int(self.depthwise)} hw={dims(self.hw)} relu={int(self.relu)}{tail}")

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "OpSignature":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def graph_bytes(sig: OpSignature, cin: int, cout: int, opset: int = 17) -> bytes:
    """The serialized ONNX model of one ``sig`` operator with ``cin`` -> ``cout`` channels, batch 1."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    if sig.op == "gemm":
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin])
        w = rng.standard_normal((cout, cin)).astype(np.float32) * 0.01
        inits += [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(cout, np.float32), "b")]
        nodes.append(helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1))
        shape_out = [1, cout]
    else:
        if sig.depthwise and cin != cout:
            raise ValueError(f"a depthwise conv has as many output as input channels, not {cin} -> {cout}")
        groups = cin if sig.depthwise else 1
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, *sig.hw])
        w = rng.standard_normal((cout, cin // groups, *sig.kernel)).astype(np.float32) * 0.01
        inits += [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(cout, np.float32), "b")]
        pads = list(sig.padding) * 2
        nodes.append(helper.make_node("Conv", ["x", "w", "b"], ["g"], kernel_shape=list(sig.kernel),
                                      strides=list(sig.stride), pads=pads, dilations=list(sig.dilation),
                                      group=groups))
        shape_out = [1, cout] + [None] * len(sig.hw)
    if sig.relu:
        nodes.append(helper.make_node("Relu", ["g"], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", ["g"], ["y"]))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape_out)
    graph = helper.make_graph(nodes, "op", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8)
    return model.SerializeToString()
