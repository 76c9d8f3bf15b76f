"""Model-level calibration of a latency cost model: the model itself measured on the target.

A latency table times each operator alone; the model runs them back to back and adds what the
table has not (pooling, additions, reshapes, layout changes), and how far an operator alone is
from the same operator in the model differs from layer to layer (cache reuse, reorders, fixed
overheads the model amortises). `calibrate` exports the model at several width settings
(`calibration_settings`: dense; every group at 1/2 and at 1/4; each of two complementary sets
of groups at 1/2; each input resolution's groups at 1/2), times them interleaved on the
target's runtime and settings, and runs each once more under the runtime's profiler for every
layer's time in the model (`edgeprune.latency.inmodel`). `fit_points` fits each layer its own
in-model curve (`inmodel.fit_layer`) and then ``model ms = alpha x (sum of the layer curves) +
beta`` to the measured totals; `refine` rescales it on the budget's own allocation, timed beside
a FLOPs-shaped allocation that the allocator may take for its measurement. Without a
profiler (a runtime that has none, or an export whose nodes do not map back to the layers) the
fit is per input resolution instead, ``sum_r alpha_r x (table sum at r) + beta``
(`edgeprune.latency.cost.fit_buckets`).

What each step fixed (l1, latency=0.5, measured / dense): one alpha through dense and uniform
only: resnet18 on OpenVINO 0.61, mobilenet_v2 on ONNX Runtime 0.45; per resolution and refined
on the budget's allocation (`refine`): all within the window, but the marginal costs the
allocator compares were wrong by up to 7x for single layers (1x1 convs, the classifier), and
the allocation kept less importance than a FLOPs allocation at the same measured latency."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeprune.pruning.budget import MEASURED_TOLERANCE, _nearest, allowed_widths

UNIFORM_FRACTION = 0.5
QUARTER_FRACTION = 0.25  # near the allocator's floor (0.2): the layer fits are interpolations down to it


def uniform_widths(sizes: Sequence[int], align: int, fraction: float = UNIFORM_FRACTION) -> list[int]:
    """Every group at the allowed width nearest ``fraction`` of its channels."""
    return [_nearest(allowed_widths(n, align), fraction * n) for n in sizes]


def calibration_settings(cost, align: int) -> list[tuple[str, list[int]]]:
    """(name, widths) of the models `calibrate` measures: dense, uniform half, uniform quarter, the groups of each
    of two complementary sets halved (`split_groups`: most layers then have one width halved and
    the other not), and each input resolution's groups at half width (duplicates dropped)."""
    sizes = list(cost.sizes)
    half = uniform_widths(sizes, align)
    side = split_groups(cost)
    candidates = [("dense", sizes), ("uniform", half), ("quarter", uniform_widths(sizes, align, QUARTER_FRACTION))]
    for s in (0, 1):
        candidates.append((f"half at set {'AB'[s]}", [half[g] if side[g] == s else n for g, n in enumerate(sizes)]))
    for bucket in sorted({t.bucket for t in cost.latency_terms}):
        groups = {g for t in cost.latency_terms if t.bucket == bucket for g in t.groups}
        candidates.append((f"half at {bucket or 'gemm'}", [half[g] if g in groups else n for g, n in enumerate(sizes)]))
    settings, seen = [], set()
    for name, widths in candidates:
        if tuple(widths) not in seen:
            settings.append((name, widths))
            seen.add(tuple(widths))
    return settings


def split_groups(cost) -> list[int]:
    """A side (0 or 1) per group such that as many layers as possible have their input and output
    widths on different sides (a greedy max-cut of the layers' (input group, output group) pairs:
    start alternating, flip any group whose flip separates more pairs, until none does)."""
    pairs = [(t.a.groups[0], t.b.groups[0]) for t in cost.latency_terms
             if t.b is not None and t.a.groups and t.b.groups and t.a.groups[0] != t.b.groups[0]]
    side = [g % 2 for g in range(len(cost.sizes))]
    for _ in range(20):
        changed = False
        for g in range(len(side)):
            mine = [(x if y == g else y) for x, y in pairs if g in (x, y)]
            gain = sum(1 if side[o] == side[g] else -1 for o in mine)
            if gain > 0:
                side[g] = 1 - side[g]
                changed = True
        if not changed:
            break
    return side


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


def time_ratios(paths: Sequence[str | Path], target, runs: int, warmup: int, repeats: int) -> tuple[float, list[float]]:
    """The first model's median ms, and each model's ms over the first's: the median of
    ``repeats`` interleaved loops (`time_models`), each with the models compiled afresh, so that
    neither one compiled instance nor one stretch of the machine's drift decides (this VM moved
    the same two models' ratio from 0.515 to 0.531 within a minute on OpenVINO)."""
    loops = [time_models(paths, target, runs, warmup) for _ in range(max(1, repeats))]
    # a ratio per loop, within the loop: the machine's speed drifts between loops (dense 5.6 -> 7.4 ms)
    ratios = [float(np.median([ms[i] / ms[0] for ms in loops])) for i in range(len(paths))]
    return float(np.median([ms[0] for ms in loops])), ratios


PROFILE_RUNS = 20  # runs under the runtime's profiler per calibration model (after 5 warm-up runs)


def calibrate(model, graph, input_shape, cost, target, align: int, *, runs: int = 50, warmup: int = 10,
              progress: bool = False, precision: str = "fp32", profile_runs: int = PROFILE_RUNS):
    """``cost`` (a `LatencyCostModel`) calibrated on the model itself: the `calibration_settings`
    models (``precision`` int8: their QDQ versions, `edgeprune.latency.int8.to_qdq`) timed
    interleaved, and each run ``profile_runs`` times under the runtime's profiler for its
    layers' times in the model (`edgeprune.latency.inmodel`; 0: not profiled)."""
    from edgeprune.latency.inmodel import executed_layers, onnx_layer_names

    settings = calibration_settings(cost, align)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, widths in settings:
            m = model if name == "dense" else slim_copy(model, graph, input_shape, widths)
            paths.append(export_for_timing(m, input_shape, Path(tmp) / f"{name}.onnx", precision))
        measured = time_models(paths, target, runs, warmup, progress)
        # node names do not depend on the widths: mapped once, on the dense export
        names = onnx_layer_names(paths[0], executed_layers(model, input_shape)) if profile_runs > 0 else {}
        profiles = [layer_times(p, names, target, ms, profile_runs) for p, ms in zip(paths, measured)]
    points: list[dict[str, Any]] = [
        {"widths": name, "width_list": [int(w) for w in widths], "measured_ms": ms, "flops": cost.flops(widths),
         **({"layers_ms": prof} if prof else {})}
        for (name, widths), ms, prof in zip(settings, measured, profiles)]
    return fit_points(cost, points)


def layer_times(path, names: dict[str, str], target, measured_ms: float, runs: int) -> dict[str, float] | None:
    """The model's per-layer ms under the runtime's profiler (`inmodel.profile_layers`; ``names``:
    its ONNX node -> torch layer, `inmodel.onnx_layer_names`), scaled so that all its nodes sum to
    ``measured_ms`` (the profiler's own overhead and the machine's drift since the timing loop
    cancel); None without a profile."""
    from edgeprune.latency.inmodel import profile_layers

    if runs <= 0:
        return None
    try:
        prof = profile_layers(path, target, names, runs, 5) if names else None
    except Exception as err:  # noqa: BLE001 - a device whose profiler fails: the model-level fit instead
        import warnings

        warnings.warn(f"per-layer profile of {Path(path).name} on {target.name} failed ({err}); "
                      "the latency calibration falls back to whole-model timings", stacklevel=2)
        return None
    if prof is None or prof["total_ms"] <= 0:
        return None
    scale = measured_ms / prof["total_ms"]
    return {layer: ms * scale for layer, ms in prof["layers"].items()}


def fit_points(cost, points: Sequence[dict[str, Any]]):
    """``cost`` calibrated on measured ``points`` (each: ``width_list``, ``measured_ms``,
    optionally ``layers_ms``): each layer's in-model fit from every point's
    profile (`inmodel.fit_layer`; a layer no profile has: its table curve at the profiled layers'
    overall ratio), then each point's sums, then alpha (one, or one per resolution without
    profiles) and beta (`cost.fit_buckets`)."""
    from edgeprune.latency.cost import Calibration, fit_buckets
    from edgeprune.latency.inmodel import LayerFit, fit_layer

    observations: dict[str, list[tuple[float, float, float, float]]] = {}
    for p in points:
        if "layers_ms" not in p:
            continue
        widths = p["width_list"]
        for t in cost.latency_terms:
            if t.layer in p["layers_ms"]:
                a = t.a(widths)
                b = t.b(widths) if t.b is not None else 1.0  # depthwise: one width (a)
                observations.setdefault(t.layer, []).append((a, b, t(widths), p["layers_ms"][t.layer]))
    fits = {t.layer: fit_layer(observations[t.layer], t.curve.padded) for t in cost.latency_terms
            if t.layer in observations}
    if fits:  # a layer no profile has: its table curve at the profiled layers' overall ratio
        dense = cost.layer_ms(cost.sizes)
        seen = [n for n in fits if n in points[0].get("layers_ms", {})]
        overall = (sum(points[0]["layers_ms"][n] for n in seen) / sum(dense[n] for n in seen)) if seen else 1.0
        for t in cost.latency_terms:
            fits.setdefault(t.layer, LayerFit("scale", (overall, 0.0)))
    layers = Calibration(layers=tuple(sorted(fits.items())))
    corrected = cost.calibrated(layers)
    pts = [{**p, "table_ms": corrected.table_sum(p["width_list"]), "buckets": corrected.bucket_sums(p["width_list"])}
           for p in points]
    return with_fitted(cost.calibrated(layers.with_fit(fit_buckets(pts, per_resolution=not fits))))


REFINE_STEPS = 4
REFINE_REPEATS = 3  # timing loops per step, each model compiled afresh (`time_ratios`)
REFINE_TOLERANCE = MEASURED_TOLERANCE  # a step whose measured ratio is within 2% of the budget's ends it


def refine(model, graph, input_shape, cost, target, scores, budget, align: int, *, steps: int = REFINE_STEPS,
           runs: int = 50, warmup: int = 10, precision: str = "fp32", repeats: int = REFINE_REPEATS):
    """Measure what a latency budget allocates, and rescale the calibration until it holds.

    The calibration points are far from the widths a budget picks. Up to ``steps`` times:
    allocate under ``budget``, export the model at those widths and time it interleaved with the
    dense model (``repeats`` loops of ``runs / repeats`` runs, the median ratio: `time_ratios`).
    Within ``REFINE_TOLERANCE`` of the budget's ratio: done, the model left as it is, so that the
    job allocates exactly the widths just measured. Otherwise the saving the model predicted
    (1 - predicted ratio) is scaled to the one measured (1 - measured ratio): every alpha times
    ``(1 - measured) / (1 - predicted)``, beta so that the dense model keeps its measured ms
    (`rescaled`), and the next step allocates under that. The layers' fits are left
    as the calibration measured them: a first version refitted everything with each step's point
    (and profile) and moved the allocation elsewhere at every step (mobilenet_v2 on ONNX Runtime
    measured 0.459, 0.523, 0.522 for 0.5 predicted each time); one scale is a monotone search.

    Timed with it, each step, until one meets the budget: the FLOPs-shaped allocation
    (`budget.flops_shaper`) at a FLOPs fraction searched on the measurements (the largest the
    model predicts within the budget, then secant steps on the measured ratio). The allocator
    picks where the model is most optimistic; a measured allocation within the budget is a
    candidate of the allocator (`budget.measured_within`), so that the job never keeps less
    importance than this FLOPs allocation at the same measured latency. Each step is in the
    calibration's points (``refine N``, ``flops-shaped N``) with its measured and predicted ratio."""
    from edgeprune.pruning.budget import allocate

    points = list(cost.calibration.points)
    dense_cal = points[0]["measured_ms"]
    wanted = budget.fraction(cost)
    measured: dict[tuple[int, ...], float] = {}
    shape = FlopsSearch(cost, scores, budget, align, wanted)

    def held(ratio: float) -> bool:
        return abs(ratio - wanted) <= REFINE_TOLERANCE * wanted

    with tempfile.TemporaryDirectory() as tmp:
        dense_path = export_for_timing(model, input_shape, Path(tmp) / "dense.onnx", precision)
        for k in range(steps):
            widths = allocate(cost, scores, budget, align)
            todo = [] if tuple(widths) in measured else [("refine", widths)]
            for _ in range(3):  # a FLOPs shape measured already (as the model's allocation): its ratio
                flops_widths = shape.widths()
                if flops_widths is None or tuple(flops_widths) not in measured:
                    break
                shape.measured(measured[tuple(flops_widths)], held(measured[tuple(flops_widths)]))
            if flops_widths is not None and tuple(flops_widths) not in measured and flops_widths != widths:
                todo.append(("flops-shaped", flops_widths))
            if not todo:
                break
            paths = [dense_path] + [export_for_timing(slim_copy(model, graph, input_shape, w), input_shape,
                                                      Path(tmp) / f"r{k}-{i}.onnx", precision)
                                    for i, (_, w) in enumerate(todo)]
            _, (_, *ratios) = time_ratios(paths, target, max(10, -(-runs // repeats)), warmup, repeats)
            c = cost.calibration
            for (kind, w), ratio in zip(todo, ratios):
                measured[tuple(w)] = ratio
                predicted = cost.latency(w) / cost.dense("latency")
                points.append({"widths": f"{kind} {k + 1}", "width_list": [int(v) for v in w], "measured_ms": ratio * dense_cal,
                               "flops": cost.flops(w), "measured_ratio": ratio, "predicted_ratio": predicted,
                               "table_ms": cost.table_sum(w), "buckets": cost.bucket_sums(w),
                               **({"flops_fraction": shape.fraction} if kind == "flops-shaped" else {})})
                if kind == "refine" and not held(ratio):
                    c = rescaled(c, (1.0 - ratio) / (1.0 - predicted), dense_cal)
                if kind == "flops-shaped":
                    shape.measured(ratio, held(ratio))
            cost = cost.calibrated(dataclasses.replace(c, points=tuple(points)))
    return with_fitted(cost)


class FlopsSearch:
    """The FLOPs fraction whose FLOPs-shaped allocation (`budget.flops_shaper`) measures the
    budget's ratio: first the largest the latency model predicts within it (a grid of 1/50),
    then secant steps on the measured ratios (the model's slope until two are measured)."""

    GRID = 50
    MAX_STEP = 0.1  # of the FLOPs fraction per step

    def __init__(self, cost, scores, budget, align: int, wanted: float):
        from edgeprune.pruning.budget import flops_shaper

        self._shape = flops_shaper(cost, scores, budget, align)
        self._predicted = lambda f: cost.latency(self._shape(f)) / cost.dense("latency")
        self._wanted = wanted
        within = [i / self.GRID for i in range(1, self.GRID + 1) if self._predicted(i / self.GRID) <= wanted]
        self._f: float | None = within[-1] if within else None
        self._tried: list[tuple[float, float]] = []

    @property
    def fraction(self) -> float | None:
        """The FLOPs fraction `widths` allocates at."""
        return self._f

    def widths(self) -> list[int] | None:
        """The allocation to measure next (None once one met the budget, or none is left)."""
        return None if self._f is None else self._shape(self._f)

    def measured(self, ratio: float, held: bool) -> None:
        """Record the measured ratio of `widths`; the next fraction, unless it ``held``."""
        f = self._f
        self._tried.append((f, ratio))
        if held:
            self._f = None
            return
        step = 1.0 / self.GRID
        model = (self._predicted(f) - self._predicted(f - step)) / step if f > step else 0.0
        slope = model
        if len(self._tried) >= 2:
            (f0, r0), (f1, r1) = self._tried[-2:]
            secant = (r1 - r0) / (f1 - f0) if f1 != f0 else 0.0
            # two measurements within noise of each other give a slope of noise (a secant step
            # measured 0.342 for 0.5 on OpenVINO): the model's slope unless the secant is near it
            if model <= 0 or 0.5 * model <= secant <= 2.0 * model:
                slope = secant
        nxt = f + (self._wanted - ratio) / slope if slope > 0 else None
        if nxt is not None:
            nxt = min(max(nxt, f - self.MAX_STEP), f + self.MAX_STEP)
        self._f = None if nxt is None or not 0.0 < nxt <= 1.0 or abs(nxt - f) < 1e-4 else nxt


def rescaled(c, factor: float, dense_ms: float):
    """The calibration with every alpha times ``factor`` (clipped to [0.5, 2]: one noisy step must
    not swing the model) and beta such that the dense model still predicts ``dense_ms``."""
    factor = min(max(factor, 0.5), 2.0)
    return dataclasses.replace(c, alpha=c.alpha * factor, alphas=tuple((b, a * factor) for b, a in c.alphas),
                               beta=dense_ms - factor * (dense_ms - c.beta))


def with_fitted(cost):
    """``cost`` with each calibration point's ``fitted_ms``: how well the fit reproduces it."""
    c = cost.calibration
    points = tuple({**p, "fitted_ms": cost.latency(p["width_list"])} for p in c.points)
    return cost.calibrated(dataclasses.replace(c, points=points))
