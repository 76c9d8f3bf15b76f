"""Each layer's latency *in the model*, from the runtime's own profiler, and the per-layer
correction of its table curve that it gives.

A latency table times an operator alone: its weights and activations leave the cache between
runs, and it pays a launch and a layout change that the model amortises. How far that is from
the same operator in the model is not one number per model or per resolution. resnet18 on
OpenVINO, dense vs every group at half width (uniform), in ms:

    layer                 in the model        table x per-resolution alpha
    layer1.0.conv1        1.63 -> 0.37        1.57 -> 0.70
    layer2.0.downsample   0.14 -> 0.05        0.61 -> 0.37
    fc                    0.15 -> 0.09        0.78 -> 0.67

The totals agreed (that is what the model-level fit ensures), but the marginal costs the
allocator compares did not: a 3x3 conv's saving was underestimated by a third, a 1x1 conv's
and the classifier's overestimated 2-7x. So the calibration models are also run under the
runtime's profiler (`profile_layers`: ONNX Runtime's trace, OpenVINO's perf counters), each
ONNX Conv / Gemm node is mapped back to its torch layer (`onnx_layer_names`), and each layer
gets its own in-model curve fitted to its points (`fit_layer`, `LayerFit`). The model-level fit
(`edgeprune.latency.cost.fit_buckets`) then runs on the sums of these.

Why a curve of its own and not the table's stretched: the calibration points first moved each
layer's widths together (dense, all at half), and ``k x curve + o`` through them was exact
there; but a layer the allocator narrows on one side only (576 -> 32 channels of mobilenet_v2's
projection convs) then ran at 0.07 ms in the model and was predicted 0.13: its table curve is
overhead and traffic, the in-model time mostly multiply-accumulates. The calibration settings
therefore also halve each of two complementary sets of groups (`calibration_settings`), so that
most layers are seen at (A, B), (A/2, B), (A, B/2), (A/2, B/2): the bilinear form is then
determined per layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


def executed_layers(model, input_shape) -> list[str]:
    """Names of the model's Conv2d and Linear modules, in the order they run (one call each)."""
    import torch
    from torch import nn

    order: list[str] = []
    handles = [m.register_forward_hook(lambda _m, _i, _o, name=name: order.append(name))
               for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(tuple(input_shape)))
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return order


def onnx_layer_names(path: str | Path, layers: Sequence[str]) -> dict[str, str]:
    """ONNX Conv / Gemm (MatMul) node name -> torch layer name, for an export of a model whose
    Conv2d / Linear modules are ``layers`` (`executed_layers`). A torch export names a node after
    the module's scope, one part per level, a Sequential's child as ``<parent>.<index>``
    (``/layer2/layer2.0/downsample/downsample.0/Conv`` is ``layer2.0.downsample.0``): the
    module path is rebuilt from the parts (`scope_path`). Where that finds none of the layers
    (another exporter's names), nodes and layers are paired in order if each pair agrees (the
    module's name ends with the scope's last part); else {} and the profile is not used. A
    quantized (QDQ) graph reorders nodes, so order alone is not enough."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    nodes = [n.name for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]  # QDQ: a Linear is a MatMul
    wanted = set(layers)
    by_scope = {node: scope_path(node) for node in nodes}
    found = {node: layer for node, layer in by_scope.items() if layer in wanted}
    if found and len(set(found.values())) == len(found):
        return found
    if len(nodes) != len(layers):
        return {}
    out: dict[str, str] = {}
    for node, layer in zip(nodes, layers):
        scope = node.strip("/").split("/")
        last = scope[-2] if len(scope) >= 2 else ""
        if not last or not (layer == last or layer.endswith("." + last)):
            return {}
        out[node] = layer
    return out


def scope_path(node: str) -> str:
    """The dotted module path of a torch-exported node name (``/features/features.1/conv/conv.0/
    conv.0.0/Conv`` -> ``features.1.conv.0.0``): each part is a child of the one before, written
    whole, or as ``<previous part>.<child>``."""
    parts = node.strip("/").split("/")[:-1]
    path, previous = "", None
    for part in parts:
        if previous is not None and part.startswith(previous + "."):
            path += part[len(previous):]
        else:
            path = f"{path}.{part}" if path else part
        previous = part
    return path


def profile_layers(path: str | Path, target, names: dict[str, str], runs: int, warmup: int) -> dict[str, Any] | None:
    """``{"layers": {torch layer: ms}, "total_ms": every node's ms}`` of one run of the model at
    ``path`` under ``target``'s runtime profiler (its settings, ``runs`` after ``warmup``); None
    when the runtime has no per-layer profiler or none of the nodes maps to a layer."""
    from edgeprune.profile.layers import LayerNameMap, aggregate_layers
    from edgeprune.profile.timing import make_input_pool
    from edgeprune.runtime import LayerProfiler, open_runner

    runner = open_runner(path, target.runtime.name, settings=target.runtime.settings)
    try:
        if not isinstance(runner, LayerProfiler):
            return None
        pool = make_input_pool(runner.inputs, 4)
        rows = aggregate_layers(runner.profile_layers(pool, runs, warmup), LayerNameMap.from_onnx(path))
    finally:
        runner.close()
    layers: dict[str, float] = {}
    for r in rows:
        layer = names.get(r["layer"])
        if layer is not None:
            layers[layer] = layers.get(layer, 0.0) + float(r["time_ms"])
    if not layers:
        return None
    return {"layers": layers, "total_ms": float(sum(r["time_ms"] for r in rows))}


@dataclass(frozen=True)
class LayerFit:
    """A layer's time in the model as a function of its widths, fitted to its profiled points.

    ``kind`` "bilinear": ``c0 + c1 a + c2 b + c3 a b`` in the table's block-padded widths (the
    table's own form, with the model's coefficients), where the points vary both widths
    independently; "linear": ``c0 + c1 w`` in the one width that varies (a depthwise conv, a
    stem conv with its 3 image channels); "scale": ``k x curve + o`` (the table curve stretched
    to the points, ``coef = (k, o)``) where the widths only ever moved together; "fixed": the
    points' mean. Never below ``floor`` (a tenth of the smallest time observed)."""

    kind: str
    coef: tuple[float, ...]
    floor: float = 0.0

    def __call__(self, a: float, b: float, table_ms: float, pad) -> float:
        c = self.coef
        if self.kind == "bilinear":
            a, b = float(pad(a)), float(pad(b))
            value = c[0] + c[1] * a + c[2] * b + c[3] * a * b
        elif self.kind == "linear-a":
            value = c[0] + c[1] * float(pad(a))
        elif self.kind == "linear-b":
            value = c[0] + c[1] * float(pad(b))
        elif self.kind == "scale":
            value = c[0] * table_ms + c[1]
        else:
            value = c[0]
        return max(value, self.floor)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "coef": list(self.coef), "floor": self.floor}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LayerFit":
        return cls(str(data["kind"]), tuple(float(v) for v in data["coef"]), float(data.get("floor", 0.0)))


def nonnegative_fit(design, y) -> tuple[float, ...]:
    """Least squares in relative error with every coefficient >= 0 (overhead, traffic and
    multiply-accumulates cost time; none saves it): the best of the fits on each subset of the
    columns whose coefficients all come out non-negative (4 columns: 15 subsets). An unconstrained
    fit through noisy points at 1/4 - 1 of the widths had negative overheads and predicted a
    layer at 0.2 of its widths 10x faster than it ran (mobilenet_v2 on OpenVINO)."""
    import itertools

    import numpy as np

    x = design / y[:, None]
    best, best_err = None, np.inf
    n = design.shape[1]
    for size in range(1, n + 1):
        for cols in itertools.combinations(range(n), size):
            c, *_ = np.linalg.lstsq(x[:, cols], np.ones_like(y), rcond=None)
            if (c < 0).any():
                continue
            err = float(np.sum((x[:, cols] @ c - 1.0) ** 2))
            if err < best_err - 1e-12:
                full = np.zeros(n)
                full[list(cols)] = c
                best, best_err = full, err
    return tuple(float(v) for v in best) if best is not None else tuple([float(y.mean())] + [0.0] * (n - 1))


def fit_layer(points: Sequence[tuple[float, float, float, float]], pad) -> LayerFit | None:
    """One layer's `LayerFit` from its ``(a, b, table ms, in-model ms)`` points (``pad``: the
    table curve's block padding of a width). The richest form the points determine, with
    non-negative coefficients (`nonnegative_fit`)."""
    import numpy as np

    if not points:
        return None
    a = np.array([float(pad(p[0])) for p in points])
    b = np.array([float(pad(p[1])) for p in points])
    x = np.array([p[2] for p in points], dtype=np.float64)
    y = np.array([p[3] for p in points], dtype=np.float64)
    floor = 0.1 * float(y.min())
    varies = lambda v: v.max() > 1.02 * v.min()  # noqa: E731
    if varies(a) and varies(b):
        design = np.stack([np.ones_like(a), a, b, a * b], axis=-1)
        if np.linalg.matrix_rank(design / design.max(axis=0), tol=1e-3) == 4:
            return LayerFit("bilinear", nonnegative_fit(design, y), floor)
    for kind, w in (("linear-a", a), ("linear-b", b)):
        if varies(w) and not (varies(a) and varies(b)):
            return LayerFit(kind, nonnegative_fit(np.stack([np.ones_like(w), w], axis=-1), y), floor)
    if x.min() > 0 and varies(x):
        return LayerFit("scale", nonnegative_fit(np.stack([x, np.ones_like(x)], axis=-1), y), floor)
    if x.min() > 0:
        return LayerFit("scale", (float(y.mean() / x.mean()), 0.0), floor)
    return LayerFit("fixed", (float(y.mean()),), floor)
