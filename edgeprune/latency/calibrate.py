"""Model-level calibration of a latency cost model: the model itself measured on the target.

A latency table times each operator alone; the model runs them back to back (warmer caches)
and adds what the table has not (pooling, additions, reshapes). `calibrate` exports the model
at two width settings, dense and every group at about half its width (``uniform_widths``),
times both interleaved on the target's runtime and settings, and fits ``model ms = alpha x
table sum + beta`` through the two points (`edgeprune.latency.cost.fit_calibration`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeprune.pruning.budget import allowed_widths

UNIFORM_FRACTION = 0.5


def uniform_widths(sizes: Sequence[int], align: int, fraction: float = UNIFORM_FRACTION) -> list[int]:
    """Every group at the allowed width nearest ``fraction`` of its channels."""
    out = []
    for n in sizes:
        steps = allowed_widths(n, align)
        out.append(min(steps, key=lambda w: (abs(w - fraction * n), -w)))
    return out


def slim_copy(model, graph, input_shape, widths: Sequence[int]):
    """The model slimmed to ``widths`` (each group's first channels); the model is unchanged."""
    from edgeprune.pruning.plan import make_plan
    from edgeprune.pruning.slim import slim

    kept = [list(range(w)) for w in widths]
    return slim(model, make_plan("calibration", input_shape, model, graph, kept))


def export_for_timing(model, input_shape, path: str | Path) -> Path:
    """ONNX (fixed batch, simplified as the exporter does) of ``model`` for timing."""
    import torch

    from edgeprune.export.onnx import export_onnx, simplify_onnx
    from edgeprune.export.options import DEFAULT_OPSET

    was = model.training
    model.eval()
    try:
        export_onnx(model, torch.zeros(tuple(input_shape)), path, opset=DEFAULT_OPSET, dynamic_batch=False)
    finally:
        model.train(was)
    simplify_onnx(path)
    return Path(path)


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
    from edgeprune.latency.cost import fit_calibration

    settings: list[tuple[str, list[int]]] = [("dense", list(cost.sizes)),
                                              ("uniform", uniform_widths(cost.sizes, align))]
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, widths in settings:
            m = model if name == "dense" else slim_copy(model, graph, input_shape, widths)
            path = export_for_timing(m, input_shape, Path(tmp) / f"{name}.onnx")
            if precision == "int8":
                from edgeprune.latency.int8 import to_qdq

                path = to_qdq(path, Path(tmp) / f"{name}.int8.onnx")
            paths.append(path)
        measured = time_models(paths, target, runs, warmup, progress)
    points: list[dict[str, Any]] = [
        {"widths": name, "table_ms": cost.table_sum(widths), "measured_ms": ms, "flops": cost.flops(widths)}
        for (name, widths), ms in zip(settings, measured)]
    calibration = fit_calibration(points)
    return cost.calibrated(calibration)
