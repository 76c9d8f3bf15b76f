"""Per-layer profiles: parse what the runtimes' profilers report and map their node names
back to the ONNX graph's node names (for torch exports, ``/layer1/layer1.0/conv1/Conv``).

Runtimes rename what they fuse or insert: ONNX Runtime's NCHWc transformer calls a fused
Conv+Relu ``<relu output>_nchwc``; OpenVINO calls a Conv ``<onnx name>/WithoutBiases`` and a
fused Gemm after its output tensor, and inserts ``Reorder`` nodes named
``<src>_<layout>_<layout>_<dst>``; ONNX Runtime's QDQ fusion names a QLinearConv
``<Conv name>_token_<n>``. `LayerNameMap` undoes what it can: exact node names,
known suffixes, output-tensor names, and, where the runtime's op type says the work is a
Conv/Gemm but the name points at a fused activation, the nearest matching producer.
Unmapped nodes keep their runtime name.
"""

from __future__ import annotations

import bisect
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from edgeprune.runtime.base import LayerSample

_SUFFIXES = ("/WithoutBiases", "_nchwc", "/fq_weights_0", "/fq_weights_1")
_TOKEN = re.compile(r"_token_\d+$")  # ONNX Runtime's QDQ fusion: <Conv name>_token_<n> for the QLinearConv
_LAYOUT = re.compile(r"[a-zA-Z]+\d*[a-z]?")

# Runtime op type -> ONNX op types it can stand for (used to find the real producer of fused work).
OP_EQUIVALENTS: dict[str, frozenset[str]] = {
    # ONNX Runtime
    "Conv": frozenset({"Conv"}),
    "FusedConv": frozenset({"Conv"}),
    "NhwcConv": frozenset({"Conv"}),
    "QLinearConv": frozenset({"Conv", "QLinearConv", "DequantizeLinear", "QuantizeLinear"}),
    "Gemm": frozenset({"Gemm"}),
    "FusedGemm": frozenset({"Gemm"}),
    "MatMul": frozenset({"MatMul", "Gemm"}),
    "FusedMatMul": frozenset({"MatMul", "Gemm"}),
    # OpenVINO
    "Convolution": frozenset({"Conv"}),
    "GroupConvolution": frozenset({"Conv"}),
    "FullyConnected": frozenset({"Gemm", "MatMul"}),
}


@dataclass
class LayerNameMap:
    """ONNX graph facts needed to map runtime node names back to ONNX node names."""

    op_type: dict[str, str] = field(default_factory=dict)  # node name -> op type
    producer: dict[str, str] = field(default_factory=dict)  # tensor name -> node name
    first_input: dict[str, str] = field(default_factory=dict)  # node name -> its first input tensor

    @classmethod
    def from_onnx(cls, path: str | os.PathLike) -> "LayerNameMap":
        """Read the graph with ``onnx`` when installed and the file is ONNX; else an empty map."""
        if not str(path).endswith(".onnx"):
            return cls()
        try:
            import onnx
        except ImportError:
            return cls()
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception:
            return cls()
        return cls.from_nodes((n.name, n.op_type, list(n.input), list(n.output)) for n in model.graph.node)

    @classmethod
    def from_nodes(cls, nodes: Iterable[tuple[str, str, Sequence[str], Sequence[str]]]) -> "LayerNameMap":
        """From (name, op_type, inputs, outputs) tuples."""
        m = cls()
        for name, op, inputs, outputs in nodes:
            m.op_type[name] = op
            if inputs:
                m.first_input[name] = inputs[0]
            for t in outputs:
                m.producer[t] = name
        return m

    def _lookup(self, name: str) -> str | None:
        if name in self.op_type:
            return name
        return self.producer.get(name)

    def _match_op(self, node: str, op: str) -> str:
        wanted = OP_EQUIVALENTS.get(op)
        if wanted is None or self.op_type.get(node) in wanted:
            return node
        current = node
        for _ in range(4):  # fused activations / bias adds sit a few nodes below the conv
            tensor = self.first_input.get(current)
            parent = self.producer.get(tensor) if tensor else None
            if parent is None:
                break
            if self.op_type.get(parent) in wanted:
                return parent
            current = parent
        return node

    def resolve(self, node: str, op: str = "") -> tuple[str, bool]:
        """(layer name, mapped?) for a runtime node name and the runtime's op type."""
        candidates = [node]
        stripped = node
        changed = True
        while changed:
            changed = False
            for suffix in _SUFFIXES:
                if stripped.endswith(suffix) and len(stripped) > len(suffix):
                    stripped = stripped[: -len(suffix)]
                    candidates.append(stripped)
                    changed = True
            token = _TOKEN.search(stripped)
            if token and token.start() > 0:
                stripped = stripped[: token.start()]
                candidates.append(stripped)
                changed = True
        for cand in candidates:
            hit = self._lookup(cand)
            if hit is not None:
                return self._match_op(hit, op), True
        if op == "Reorder":  # OpenVINO: <src>_<layout>_<layout>_<dst>; charge it to <dst>
            parts = node.split("_")
            for i in range(1, len(parts) - 2):
                if _LAYOUT.fullmatch(parts[i]) and _LAYOUT.fullmatch(parts[i + 1]):
                    dst = "_".join(parts[i + 2 :])
                    layer, mapped = self.resolve(dst)
                    if mapped or not self.op_type:
                        return layer, mapped
        return stripped, False


def parse_ort_trace(events: Sequence[dict[str, Any]], runs: int) -> list[LayerSample]:
    """Sum ONNX Runtime kernel times per node over the last ``runs`` ``model_run`` events.

    The trace is Chrome-trace JSON: ``{"cat": "Node", "name": "<node>_kernel_time",
    "ts": us, "dur": us, "args": {"op_name": ..., "provider": ...}}`` per kernel, and
    ``{"cat": "Session", "name": "model_run"}`` per ``run()``. Earlier runs (warm-up) are
    dropped by time window.
    """
    run_windows = sorted(
        (e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    measured = run_windows[-runs:] if runs > 0 else []
    starts = [w[0] for w in measured]
    totals: dict[str, list[Any]] = {}
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        if measured:
            i = bisect.bisect_right(starts, e["ts"]) - 1
            if i < 0 or e["ts"] > measured[i][1]:
                continue
        args = e.get("args", {})
        node = e["name"][: -len("_kernel_time")]
        entry = totals.setdefault(node, [args.get("op_name", ""), args.get("provider", ""), 0.0])
        entry[2] += float(e["dur"])
    n = len(measured) or runs
    return [LayerSample(node, op, total, n, provider) for node, (op, provider, total) in totals.items()]


def aggregate_layers(samples: Sequence[LayerSample], names: LayerNameMap) -> list[dict[str, Any]]:
    """Group runtime nodes into ONNX layers; per-run mean ms, share of the total, slowest first."""
    layers: dict[str, dict[str, Any]] = {}
    for s in samples:
        layer, mapped = names.resolve(s.node, s.op)
        per_run_ms = s.total_us / max(s.runs, 1) / 1000.0
        row = layers.setdefault(
            layer,
            {"layer": layer, "op": names.op_type.get(layer, s.op), "mapped": mapped, "time_ms": 0.0,
             "share": 0.0, "runtime_nodes": []},
        )
        row["time_ms"] += per_run_ms
        row["runtime_nodes"].append(
            {"node": s.node, "op": s.op, "exec_type": s.exec_type, "time_ms": per_run_ms}
        )
    total = sum(r["time_ms"] for r in layers.values())
    rows = sorted(layers.values(), key=lambda r: r["time_ms"], reverse=True)
    for r in rows:
        r["share"] = r["time_ms"] / total if total > 0 else 0.0
        r["runtime_nodes"].sort(key=lambda n: n["time_ms"], reverse=True)
    return rows
