"""Per-layer in-model calibration: ONNX nodes mapped back to torch layers, the per-layer
correction fit, the calibration that uses it (marginal costs, not only totals), and the real
runtime profiler on a small model."""

import math

import numpy as np
import pytest
from torch import nn

from edgeprune.latency.calibrate import calibration_settings, export_for_timing, fit_points, split_groups
from edgeprune.latency.cost import Calibration, latency_cost
from edgeprune.latency.inmodel import (LayerFit, executed_layers, fit_layer, onnx_layer_names, profile_layers,
                                      scope_path)
from edgeprune.latency.layers import model_layers
from edgeprune.latency.table import LatencyTable, layer_points
from edgeprune.models import build_model
from edgeprune.pruning.graph import ChannelGraph


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(), nn.Conv2d(24, 16, 1))
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.body(x)
        return self.head(x.mean((2, 3)))


def test_onnx_nodes_map_back_to_the_torch_layers_in_execution_order(tmp_path):
    model, shape = Residual().eval(), (1, 3, 16, 16)
    order = executed_layers(model, shape)
    assert order == ["stem.0", "body.0", "body.2", "head"]
    path = export_for_timing(model, shape, tmp_path / "m.onnx")
    names = onnx_layer_names(path, order)
    assert sorted(names.values()) == sorted(order) and all(layer.split(".")[-1] in node for node, layer in names.items())
    # by name, not by order (a QDQ graph reorders its nodes); layers the graph does not have: none mapped
    assert onnx_layer_names(path, ["stem.0", "body.2", "body.0", "head"]) == names
    assert onnx_layer_names(path, ["conv", "fc"]) == {}
    assert scope_path("/layer2/layer2.0/downsample/downsample.0/Conv") == "layer2.0.downsample.0"
    assert scope_path("/features/features.1/features.1.0/block/block.0/block.0.0/Conv") == "features.1.0.block.0.0"
    assert scope_path("/fc/Gemm") == "fc"


def test_a_quantized_export_maps_too_and_onnx_runtime_fused_names_resolve(tmp_path):
    from edgeprune.profile.layers import LayerNameMap

    model, shape = Residual().eval(), (1, 3, 16, 16)
    path = export_for_timing(model, shape, tmp_path / "m.onnx", "int8")
    names = onnx_layer_names(path, executed_layers(model, shape))
    assert sorted(names.values()) == ["body.0", "body.2", "head", "stem.0"]
    conv = next(node for node, layer in names.items() if layer == "body.0")
    # ONNX Runtime fuses the QDQ Conv into a QLinearConv named <Conv>_token_<n>
    assert LayerNameMap.from_onnx(path).resolve(f"{conv}_token_7", "QLinearConv") == (conv, True)


def test_a_layer_fit_is_the_richest_form_its_points_determine():
    def pts(fn, pairs):
        return [(a, b, 1.0 + 0.01 * a + 0.01 * b, fn(a, b)) for a, b in pairs]

    square = [(64, 96), (32, 96), (64, 48), (32, 48), (16, 24)]
    same = lambda w: w  # noqa: E731 - no block padding
    macs = lambda a, b: 0.02 + 1e-4 * a * b  # noqa: E731 - in the model: multiply-accumulates, no overhead
    fit = fit_layer(pts(macs, square), same)
    assert fit.kind == "bilinear" and fit(20, 90, 0.0, same) == pytest.approx(macs(20, 90), rel=1e-6)
    # a depthwise conv (one width) or a stem conv (3 image channels): a line in the width that varies
    dw = fit_layer(pts(lambda a, b: 0.01 + 2e-3 * b, [(3, 32), (3, 16), (3, 8)]), same)
    assert dw.kind == "linear-b" and dw(3, 24, 0.0, same) == pytest.approx(0.058)
    # widths that only moved together: the table curve, stretched through the points
    table_ms = lambda a, b: 1.0 + 0.01 * a + 0.01 * b  # noqa: E731
    diag = fit_layer([(a, b, table_ms(a, b), 0.3 * table_ms(a, b) + 0.05) for a, b in [(64, 96), (32, 48)]], same)
    assert diag.kind == "scale" and diag.coef == pytest.approx((0.3, 0.05))
    # noise that would make a time fall with a width: no coefficient is negative, the fit still rises
    noisy = fit_layer([(a, b, 1.0, 0.5 - 1e-4 * a * b if a < 64 else 0.9) for a, b in square], same)
    assert min(noisy.coef) >= 0 and noisy(64, 96, 1.0, same) >= noisy(32, 48, 1.0, same) >= noisy(16, 24, 1.0, same)
    # never below a tenth of the smallest time seen
    assert fit(1, 1, 0.0, same) >= 0.1 * min(macs(a, b) for a, b in square) - 1e-12
    # the block padding: inside a block a width runs as the block's widest
    pad8 = lambda w: math.ceil(w / 8) * 8  # noqa: E731
    blocky = fit_layer([(a, b, 1.0, macs(pad8(a), pad8(b))) for a, b in square], pad8)
    assert blocky(17, 90, 0.0, pad8) == pytest.approx(macs(24, 96), rel=1e-6)
    assert LayerFit.from_json(fit.to_json()) == fit
    c = Calibration(layers=(("conv", fit),))
    assert Calibration.from_json(c.to_json()) == c


def _table(model, shape, graph):
    """A table whose operators alone cost a large fixed overhead plus their MACs."""
    table = LatencyTable(target="x86-ort-1t", machine={}, runtime={})
    layers = model_layers(model, shape, graph)
    for layer in layers:
        sig = layer.signature
        pixels = float(np.prod(sig.hw)) if sig.hw else 1.0
        entry = table.entries.setdefault(sig.key(), {"signature": sig.to_json(), "points": {}})
        for a, b in layer_points(layer, 8, 5):
            entry["points"][f"{a},{b}"] = 0.2 + 1e-7 * pixels * (b if sig.depthwise else a * b)
    return table, layers


def test_profiled_calibration_gets_each_layers_marginal_cost_right():
    """The model's layers run with another shape than the table's: no fixed overhead, mostly
    multiply-accumulates, and each layer its own speed. Fitted to the layers' profiled times at
    the calibration settings, the model predicts what narrowing one group saves (one side of
    its layers only, as an allocation does); the model-level fit alone matches only the totals."""
    model, shape = build_model("torchvision:mobilenet_v2(width_mult=0.5)", (1, 3, 64, 64))
    graph = ChannelGraph(model, shape)
    table, layers = _table(model, shape, graph)
    cost = latency_cost(graph.cost, layers, table)
    rng = np.random.default_rng(0)
    speed = {t.layer: float(rng.uniform(0.3, 3.0)) for t in cost.latency_terms}

    def in_model(widths):
        out = {}
        for t in cost.latency_terms:
            a = t.a(widths)
            b = t.b(widths) if t.b is not None else 1.0
            out[t.layer] = speed[t.layer] * (0.01 + 1e-6 * a * b + 1e-4 * (a + b))
        return out

    def point(name, widths, profiled=True):
        layers_ms = in_model(widths)
        p = {"widths": name, "width_list": list(widths), "measured_ms": sum(layers_ms.values()) + 0.4,
             "flops": cost.flops(widths)}
        return {**p, "layers_ms": layers_ms} if profiled else p

    settings = calibration_settings(cost, 1)
    assert [n for n, _ in settings][:5] == ["dense", "uniform", "quarter", "half at set A", "half at set B"]
    fitted = fit_points(cost, [point(n, w) for n, w in settings])
    unprofiled = fit_points(cost, [point(n, w, profiled=False) for n, w in settings])
    kinds = {f.kind for _, f in fitted.calibration.layers}
    assert {"bilinear", "linear-a"} <= kinds  # depthwise convs: a line in their one width
    truth = lambda widths: sum(in_model(widths).values()) + 0.4  # noqa: E731
    dense = list(cost.sizes)
    errors = {"profiled": [], "model-level only": []}
    for g, n in enumerate(dense):
        if n < 8:
            continue
        narrowed = list(dense)
        narrowed[g] = max(1, n // 4)
        saved = truth(dense) - truth(narrowed)
        for label, c in (("profiled", fitted), ("model-level only", unprofiled)):
            predicted = c.latency(dense) - c.latency(narrowed)
            errors[label].append(abs(predicted - saved) / saved)
    print({k: f"median {np.median(v):.3f}, max {np.max(v):.3f}" for k, v in errors.items()})
    assert np.max(errors["profiled"]) < 0.05
    assert np.median(errors["model-level only"]) > 0.2


def test_split_groups_separates_most_layers_input_and_output_groups():
    model, shape = build_model("torchvision:resnet18", (1, 3, 64, 64))
    graph = ChannelGraph(model, shape)
    table, layers = _table(model, shape, graph)
    cost = latency_cost(graph.cost, layers, table)
    side = split_groups(cost)
    pairs = [(t.a.groups[0], t.b.groups[0]) for t in cost.latency_terms
             if t.b is not None and t.a.groups and t.b.groups and t.a.groups[0] != t.b.groups[0]]
    cut = sum(side[x] != side[y] for x, y in pairs)
    print(f"\n{cut} of {len(pairs)} layers have their widths on different sides")
    assert cut >= 0.75 * len(pairs)


def test_the_runtime_profiler_times_every_layer_of_a_small_model(tmp_path):
    from edgeprune.targets import load_target

    model, shape = Residual().eval(), (1, 3, 32, 32)
    path = export_for_timing(model, shape, tmp_path / "m.onnx")
    names = onnx_layer_names(path, executed_layers(model, shape))
    prof = profile_layers(path, load_target("x86-ort-1t"), names, runs=5, warmup=1)
    assert prof is not None and set(prof["layers"]) == {"stem.0", "body.0", "body.2", "head"}
    assert all(ms > 0 for ms in prof["layers"].values()) and prof["total_ms"] >= sum(prof["layers"].values())


def test_a_failing_profiler_falls_back_to_whole_model_timings(tmp_path, monkeypatch):
    import edgeprune.latency.inmodel as inmodel
    from edgeprune.latency.calibrate import layer_times
    from edgeprune.targets import load_target

    model, shape = Residual().eval(), (1, 3, 16, 16)
    path = export_for_timing(model, shape, tmp_path / "m.onnx")

    def broken(*_a, **_k):
        raise RuntimeError("perf counters are not supported on this device")

    monkeypatch.setattr(inmodel, "profile_layers", broken)
    with pytest.warns(UserWarning, match="falls back to whole-model timings"):
        names = onnx_layer_names(path, executed_layers(model, shape))
        assert layer_times(path, names, load_target("x86-ort-1t"), 1.0, 5) is None
