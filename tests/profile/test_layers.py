"""Per-layer profiles: trace parsing and name mapping (pure), then the real profilers."""

from __future__ import annotations

import pytest

from edgeprune.profile.layers import LayerNameMap, aggregate_layers, parse_ort_trace
from edgeprune.runtime import LayerSample, open_runner

GRAPH = LayerNameMap.from_nodes([
    ("/layer1/conv1/Conv", "Conv", ["input", "w"], ["/layer1/conv1/Conv_output_0"]),
    ("/layer1/relu/Relu", "Relu", ["/layer1/conv1/Conv_output_0"], ["/layer1/relu/Relu_output_0"]),
    ("/pool/GlobalAveragePool", "GlobalAveragePool", ["/layer1/relu/Relu_output_0"], ["pooled"]),
    ("/fc/Gemm", "Gemm", ["pooled", "fw"], ["logits"]),
])


@pytest.mark.parametrize(
    "node, op, layer, mapped",
    [
        ("/fc/Gemm", "Gemm", "/fc/Gemm", True),  # exact
        ("/layer1/conv1/Conv/WithoutBiases", "Convolution", "/layer1/conv1/Conv", True),  # OpenVINO suffix
        ("logits", "FullyConnected", "/fc/Gemm", True),  # named after its output tensor
        ("/layer1/relu/Relu_output_0_nchwc", "Conv", "/layer1/conv1/Conv", True),  # ORT fused Conv+Relu
        ("/layer1/relu/Relu", "Convolution", "/layer1/conv1/Conv", True),  # fused, named after the Relu
        ("/layer1/relu/Relu", "Relu", "/layer1/relu/Relu", True),  # a real Relu stays a Relu
        ("input_abcd_acdb_/layer1/conv1/Conv/WithoutBiases", "Reorder", "/layer1/conv1/Conv", True),
        ("ReorderOutput", "ReorderOutput", "ReorderOutput", False),  # inserted by the runtime
    ],
)
def test_resolve_runtime_names(node, op, layer, mapped):
    assert GRAPH.resolve(node, op) == (layer, mapped)


def test_resolve_without_graph_strips_suffixes():
    assert LayerNameMap().resolve("/a/Conv/WithoutBiases", "Convolution") == ("/a/Conv", False)


def _event(name, ts, dur, cat="Node", op="Conv"):
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, "ph": "X",
            "args": {"op_name": op, "provider": "CPUExecutionProvider"} if cat == "Node" else {}}


def test_parse_ort_trace_drops_warmup_runs():
    events = [
        _event("model_loading_uri", 0, 5, cat="Session"),
        # warm-up run: slow, must be ignored
        _event("a_kernel_time", 10, 100), _event("a_fence_before", 10, 1), _event("model_run", 9, 120, cat="Session"),
        # two measured runs
        _event("a_kernel_time", 200, 10), _event("b_kernel_time", 211, 4, op="Relu"),
        _event("model_run", 199, 20, cat="Session"),
        _event("a_kernel_time", 300, 12), _event("b_kernel_time", 313, 6, op="Relu"),
        _event("model_run", 299, 22, cat="Session"),
    ]
    samples = {s.node: s for s in parse_ort_trace(events, runs=2)}
    assert set(samples) == {"a", "b"}
    assert samples["a"].total_us == 22 and samples["a"].runs == 2 and samples["a"].op == "Conv"
    assert samples["b"].total_us == 10 and samples["b"].exec_type == "CPUExecutionProvider"


def test_aggregate_layers_groups_and_ranks():
    samples = [
        LayerSample("/layer1/conv1/Conv/WithoutBiases", "Convolution", 3000.0, 10, "brgconv"),
        LayerSample("input_abcd_acdb_/layer1/conv1/Conv/WithoutBiases", "Reorder", 1000.0, 10, "jit"),
        LayerSample("logits", "FullyConnected", 1000.0, 10, "gemm"),
    ]
    rows = aggregate_layers(samples, GRAPH)
    assert [r["layer"] for r in rows] == ["/layer1/conv1/Conv", "/fc/Gemm"]
    assert rows[0]["time_ms"] == pytest.approx(0.4) and rows[0]["op"] == "Conv"
    assert [n["op"] for n in rows[0]["runtime_nodes"]] == ["Convolution", "Reorder"]
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)


@pytest.mark.parametrize("runtime", ["ort", "openvino"])
def test_real_profilers_map_to_onnx_node_names(runtime, tiny_onnx):
    pytest.importorskip("onnxruntime" if runtime == "ort" else "openvino")
    from edgeprune.profile.timing import make_input_pool

    runner = open_runner(tiny_onnx, runtime, threads=1)
    pool = make_input_pool(runner.inputs, 2)
    raw = runner.profile_layers(pool, runs=3, warmup=1)
    assert raw and all(s.runs == 3 and s.total_us >= 0 for s in raw)
    rows = aggregate_layers(raw, LayerNameMap.from_onnx(tiny_onnx))
    layers = {r["layer"] for r in rows if r["mapped"]}
    assert "/layer1/conv1/Conv" in layers and "/fc/Gemm" in layers
