"""Model-level calibration of a latency cost model: the model itself measured on the target.

A latency table times each operator alone; the model runs them back to back and adds what the
table has not (pooling, additions, reshapes, layout changes), and how far an operator alone is
from the same operator in the model depends on its resolution (cache reuse, reorders). `calibrate`
exports the model at several width settings (`calibration_settings`: dense; every group at about
half its width; and, for each input resolution, the groups of the layers at it halved), times
them interleaved on the target's runtime and settings, and fits ``model ms = sum_r alpha_r x
(table sum at r) + beta`` (`edgeprune.latency.cost.fit_buckets`; the two-point line through
dense and uniform is its prior). A first version fitted one alpha through dense and uniform only:
resnet18 on OpenVINO asked for 0.50 measured 0.61, mobilenet_v2 on ONNX Runtime 0.45."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeprune.pruning.budget import _nearest, allowed_widths

UNIFORM_FRACTION = 0.5


def uniform_widths(sizes: Sequence[int], align: int, fraction: float = UNIFORM_FRACTION) -> list[int]:
    """Every group at the allowed width nearest ``fraction`` of its channels."""
    return [_nearest(allowed_widths(n, align), fraction * n) for n in sizes]


def calibration_settings(cost, align: int) -> list[tuple[str, list[int]]]:
    """(name, widths) of the models `calibrate` measures: dense, uniform half, and each input
    resolution's groups at half width (duplicates dropped)."""
    sizes = list(cost.sizes)
    half = uniform_widths(sizes, align)
    settings = [("dense", sizes), ("uniform", half)]
    seen = {tuple(sizes), tuple(half)}
    for bucket in sorted({t.bucket for t in cost.latency_terms}):
        groups = {g for t in cost.latency_terms if t.bucket == bucket for g in t.groups}
        widths = [half[g] if g in groups else n for g, n in enumerate(sizes)]
        if tuple(widths) not in seen:
            settings.append((f"half at {bucket or 'gemm'}", widths))
            seen.add(tuple(widths))
    return settings


def slim_copy(model, graph, input_shape, widths: Sequence[int]):
    """The model slimmed to ``widths`` (each group's first channels); the model is unchanged."""
    from edgeprune.pruning.plan import make_plan
    from edgeprune.pruning.slim import slim

    kept = [list(range(w)) for w in widths]
    return slim(model, make_plan("calibration", input_shape, model, graph, kept))


def export_for_timing(model, input_shape, path: str | Path, precision: str = "fp32") -> Path:
    """ONNX (fixed batch, simplified as the exporter does) of ``model`` for timing; int8: its QDQ
    version (`edgeprune.latency.int8.in_precision`)."""
    import torch

    from edgeprune.export.onnx import export_onnx, simplify_onnx
    from edgeprune.export.options import DEFAULT_OPSET
    from edgeprune.latency.int8 import in_precision

    was = model.training
    model.eval()
    try:
        export_onnx(model, torch.zeros(tuple(input_shape)), path, opset=DEFAULT_OPSET, dynamic_batch=False)
    finally:
        model.train(was)
    simplify_onnx(path)
    return in_precision(path, precision)


def time_models(paths: Sequence[str | Path], target, runs: int, warmup: int, progress: bool = False) -> list[float]:
    """Median ms of each model file on ``target``'s runtime and settings, timed interleaved."""
    from edgeprune.profile.timing import make_input_pool, time_calls
    from edgeprune.runtime import open_runner

    runners = []
    try:
        for p in paths:
            runners.append(open_runner(p, target.runtime.name, settings=target.runtime.settings))
        pool = make_input_pool(runners[0].inputs, 4)
        calls = [lambda feeds, r=r: r.run(feeds) for r in runners]
        samples = time_calls(calls, pool, runs, warmup, progress=progress, desc="latency calibration")
    finally:
        for r in runners:
            r.close()
    return [float(np.median(s)) for s in samples]


def calibrate(model, graph, input_shape, cost, target, align: int, *, runs: int = 50, warmup: int = 10,
              progress: bool = False, precision: str = "fp32"):
    """``cost`` (a `LatencyCostModel`) calibrated on the model measured at dense and uniform
    widths (``precision`` int8: their QDQ versions, `edgeprune.latency.int8.to_qdq`)."""
    from edgeprune.latency.cost import fit_buckets

    settings = calibration_settings(cost, align)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, widths in settings:
            m = model if name == "dense" else slim_copy(model, graph, input_shape, widths)
            paths.append(export_for_timing(m, input_shape, Path(tmp) / f"{name}.onnx", precision))
        measured = time_models(paths, target, runs, warmup, progress)
    points: list[dict[str, Any]] = [
        {"widths": name, "table_ms": cost.table_sum(widths), "measured_ms": ms, "flops": cost.flops(widths),
         "buckets": cost.bucket_sums(widths)}
        for (name, widths), ms in zip(settings, measured)]
    return with_fitted(cost.calibrated(fit_buckets(points)))


REFINE_STEPS = 3
REFINE_WEIGHT = 3.0  # a refinement point counts as this many calibration points
REFINE_TOLERANCE = 0.02  # a step whose measured ratio is within 2% of the budget's ends it


def refine(model, graph, input_shape, cost, target, scores, budget, align: int, *, steps: int = REFINE_STEPS,
           runs: int = 50, warmup: int = 10, precision: str = "fp32"):
    """Measure what a latency budget allocates, and refit the calibration until it holds.

    The calibration points are far from the widths a budget picks (the model at half width
    everywhere, or at one resolution). Up to ``steps`` times: allocate under ``budget``, export
    the model at those widths and time it interleaved with the dense model. Within
    ``REFINE_TOLERANCE`` of the budget's ratio: done, and the fit is left as it is, so that the
    job allocates exactly the widths just measured (the point is recorded with weight 0).
    Otherwise the point (scaled to the calibration's dense measurement, so that the machine's
    drift between the loops cancels) joins the fit with weight ``REFINE_WEIGHT``, and the next
    step allocates under the refitted model. Each step is in the calibration's points
    (``refine N``) with its measured and predicted ratio."""
    from edgeprune.latency.cost import fit_buckets
    from edgeprune.pruning.budget import allocate

    points = list(cost.calibration.points)
    dense_cal = points[0]["measured_ms"]
    wanted = budget.fraction(cost)

    with tempfile.TemporaryDirectory() as tmp:
        dense_path = export_for_timing(model, input_shape, Path(tmp) / "dense.onnx", precision)
        for k in range(steps):
            widths = allocate(cost, scores, budget, align)
            predicted = cost.latency(widths) / cost.dense("latency")
            path = export_for_timing(slim_copy(model, graph, input_shape, widths), input_shape, Path(tmp) / f"r{k}.onnx",
                                     precision)
            dense_ms, ms = time_models([dense_path, path], target, runs, warmup)
            ratio = ms / dense_ms
            held = abs(ratio - wanted) <= REFINE_TOLERANCE * wanted
            points.append({"widths": f"refine {k + 1}", "table_ms": cost.table_sum(widths), "measured_ms": ratio * dense_cal,
                           "flops": cost.flops(widths), "buckets": cost.bucket_sums(widths),
                           "weight": 0.0 if held else REFINE_WEIGHT, "measured_ratio": ratio, "predicted_ratio": predicted})
            if held:
                cost = cost.calibrated(dataclasses.replace(cost.calibration, points=tuple(points)))
                break
            cost = cost.calibrated(fit_buckets(points))
    return with_fitted(cost)


def with_fitted(cost):
    """``cost`` with each calibration point's ``fitted_ms``: how well the fit reproduces it."""
    c = cost.calibration
    points = tuple({**p, "fitted_ms": c.beta + sum(c.scale(b) * v for b, v in p["buckets"].items())}
                   for p in c.points)
    return cost.calibrated(dataclasses.replace(c, points=points))
