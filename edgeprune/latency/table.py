"""Latency tables: operators timed on a target's runtime at the widths the allocator may choose.

    table = build_table(layers, load_target("x86-ort-1t"), step=16, points=8)
    table.save("resnet18.x86-ort-1t.latency.json")
    table.predict(layer.signature, 96, 128, full=(128, 256))      # ms, from the fitted curve

What is measured, per layer (signature + its full input / output channels ``(C_in, C_out)``):
two sweeps, ``(C_in, w)`` for the output widths ``w`` and ``(w, C_out)`` for the input widths,
on a bounded grid (`width_grid`: multiples of ``step`` from the allocator's floor, at most
``points`` of them, and the full width), and the corner ``(a0, b0)`` of the two smallest grid
widths; a depthwise conv has one width, swept once. The prediction (`Curve`) is the least-squares
fit, in relative error, of

    t(a, b) = c0 + c1 a + c2 b + c3 a b

(fixed overhead, memory traffic in each width, the multiply-accumulates) to all points of the
operator, after dropping the points the fit misses by far (one slow spell of a shared machine).
A first version interpolated the points themselves (linear along the sweeps, a corner term
between): one slow full-width point (6.4 ms where the conv runs 2.2 ms) then made every narrower
width look 4x cheaper, and a latency budget of 0.5 predicted measured 0.70. Each layer also times
``checks`` points off the sweeps (both widths reduced) and stores the relative error of the
prediction there: the table's stated error (`LatencyTable.errors`). All points of one
operator, checks included, are timed interleaved in one loop (`time_ops`): timed one after
another, the machine's drift between them was larger than the curve (the same conv measured
0.52 ms, then 0.75-0.84 ms, in two runs on a 2-vCPU VM). Absolute times in such a loop run
above the in-model ones (each operator's weights leave the cache between its runs): a table
gives each layer's latency curve; the model-level calibration is a separate, measured step.

Tables are JSON keyed by the operator signature (`OpSignature.key`), with the machine (CPU
model, ISA flags, usable cores), the runtime and its version and the target's settings; the
points of one signature are shared by every layer and model that has it, and `build_table`
with ``existing=`` measures only the points not yet in it. Nothing here imports torch.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from edgeprune.errors import EdgepruneError
from edgeprune.latency.ops import OpSignature, graph_bytes

SCHEMA = "edgeprune.latency_table/1"
MIN_KEEP = 0.2  # the allocator's default floor: narrower widths are never chosen


class LatencyTableError(EdgepruneError):
    """A table that cannot be read, belongs to another machine or runtime, or lacks a layer."""


@dataclass(frozen=True)
class Layer:
    """A layer to time: its name (for reports), signature, full channel counts, and which of
    them pruning can change (only those are swept: an image's 3 input channels are not)."""

    name: str
    signature: OpSignature
    cin: int
    cout: int
    sweep_in: bool = True
    sweep_out: bool = True


def width_grid(full: int, step: int, points: int, min_keep: float = MIN_KEEP) -> list[int]:
    """Widths to measure for a ``full``-wide dimension: multiples of ``step`` from the floor
    ``ceil(min_keep x full)`` up, thinned evenly to at most ``points`` (the smallest kept), and
    ``full`` itself."""
    floor = max(1, math.ceil(min_keep * full - 1e-9))
    widths = [w for w in range(step, full, step) if w >= floor] or [min(full, max(floor, 1))]
    if len(widths) >= points:
        idx = np.unique(np.round(np.linspace(0, len(widths) - 1, max(1, points - 1))).astype(int))
        widths = [widths[i] for i in idx]
    return sorted(set(widths) | {full})


OUTLIER = 0.25  # a point this far (relative) from the first fit, and 3x the median residual, is dropped


class Curve:
    """An operator's latency ``t(cin, cout) = c0 + c1 cin + c2 cout + c3 cin cout`` (depthwise:
    ``c0 + c1 w``) in the widths padded to the table's channel block (`probe_staircase`: a width
    inside a block runs as the block's widest): fixed overhead, memory traffic in each width and the multiply-accumulates,
    fitted by least squares in relative error to all of the operator's measured points, after
    dropping the points the first fit misses by more than ``OUTLIER`` and 3x its median miss (a
    slow spell of a shared machine during one point's runs). A smooth fit, not the points
    themselves: a single slow point at the full width would otherwise pass into every delta."""

    def __init__(self, sig: OpSignature, pts: dict[tuple[int, int], float], block: int = 1) -> None:
        self.sig, self.block = sig, max(1, int(block))
        items = [(a, b, ms) for (a, b), ms in pts.items() if ms > 0 and (not sig.depthwise or a == b)]
        if not items:
            raise LatencyTableError(f"the latency table has no measured points of {sig.key()!r}")
        a = self._up(np.array([p[0] for p in items], dtype=np.float64))
        b = self._up(np.array([p[1] for p in items], dtype=np.float64))
        t = np.array([p[2] for p in items], dtype=np.float64)
        keep = np.ones(len(t), dtype=bool)
        for _ in range(2):
            self.coef = self._fit(a[keep], b[keep], t[keep])
            miss = np.abs(self._eval(a, b) / t - 1.0)
            bad = (miss > OUTLIER) & (miss > 3.0 * np.median(miss[keep]))
            if not bad.any() or (~bad).sum() < 5 or np.array_equal(~bad, keep):
                break
            keep = ~bad
        self.dropped = [(int(x), int(y)) for x, y in zip(a[~keep], b[~keep])]  # the points the fit left out
        self.floor = 0.1 * float(t.min())
        self.coef = [float(v) for v in self.coef]

    def _design(self, a, b):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if self.sig.depthwise:
            return np.stack([np.ones_like(b), b], axis=-1)
        return np.stack([np.ones_like(a), a, b, a * b], axis=-1)

    def _fit(self, a, b, t):
        x = self._design(a, b) / t[:, None]
        coef, *_ = np.linalg.lstsq(x, np.ones_like(t), rcond=None)
        return coef

    def _eval(self, a, b):
        return self._design(a, b) @ self.coef

    def _up(self, w):
        """Widths as the kernels run them: padded to the next multiple of the block
        (`probe_staircase`); the fit is in these widths too."""
        return w if self.block == 1 else np.ceil(np.asarray(w, dtype=np.float64) / self.block - 1e-9) * self.block

    def padded(self, w: float) -> float:
        """A width as the kernels run it (the next multiple of the block)."""
        return float(w) if self.block == 1 else math.ceil(w / self.block - 1e-9) * float(self.block)

    def __call__(self, cin: float, cout: float) -> float:
        a, b = self.padded(cin), self.padded(cout)  # scalars: plain floats (the allocator calls this often)
        c = self.coef
        value = c[0] + c[1] * b if self.sig.depthwise else c[0] + c[1] * a + c[2] * b + c[3] * a * b
        return max(float(value), self.floor)


@dataclass
class LatencyTable:
    """Measured points ``entries[key] = {"signature": ..., "points": {"cin,cout": ms}}`` and
    where they were measured (``machine``, ``runtime``, ``target``)."""

    target: str
    machine: dict[str, Any]
    runtime: dict[str, Any]
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)  # the layers last built for, with check errors
    settings: dict[str, Any] = field(default_factory=dict)  # step, points, runs, warmup
    build_s: float = 0.0
    timed: int = 0  # operators timed by the last build (points + checks)
    staircase: dict[str, Any] = field(default_factory=dict)  # `probe_staircase`'s result
    _curves: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def precision(self) -> str:
        """What the table's operators run in: fp32, or int8 (QDQ); one precision per table."""
        return str(self.settings.get("precision", "fp32"))

    @property
    def block(self) -> int:
        """The measured channel block of the runtime's kernels (1: none measured)."""
        return int(self.staircase.get("block", 1))

    # ---- reading points ----------------------------------------------------------------------

    def _points(self, sig: OpSignature) -> dict[tuple[int, int], float]:
        entry = self.entries.get(sig.key())
        if entry is None:
            raise LatencyTableError(f"the latency table has no operator {sig.key()!r}; build it for this model "
                                    "(edgeprune latency-table MODEL --target T --table FILE adds what is missing)")
        return {tuple(int(v) for v in k.split(",")): float(ms) for k, ms in entry["points"].items()}

    def measured(self, sig: OpSignature, cin: int, cout: int) -> float | None:
        return self._points(sig).get((int(cin), int(cout)))

    def predict(self, sig: OpSignature, cin: float, cout: float, full: tuple[int, int]) -> float:
        """Milliseconds of ``sig`` at ``cin -> cout`` channels, for a layer whose full channels are
        ``full`` (which the table must have measured); see `Curve`."""
        return self.curve(sig, full)(cin, cout)

    def curve(self, sig: OpSignature, full: tuple[int, int] | None = None) -> Curve:
        """The operator's latency as a function of its widths (cached: the allocator calls it
        often). ``full`` (the layer's channels) is checked to be in the table's sweeps."""
        key = sig.key()
        cached = self._curves.get(key)
        if cached is None:
            cached = self._curves[key] = Curve(sig, self._points(sig), self.block)
        if full is not None and not sig.depthwise and not self._has_full(sig, full):
            raise LatencyTableError(f"the latency table has no sweep of {key!r} at {full[0]} -> {full[1]} channels")
        return cached

    def _has_full(self, sig: OpSignature, full: tuple[int, int]) -> bool:
        return f"{int(full[0])},{int(full[1])}" in self.entries[sig.key()]["points"]

    def errors(self) -> list[float]:
        """Relative prediction errors at the off-sweep check points of the last build."""
        return [c["rel_error"] for layer in self.layers for c in layer.get("checks", [])]

    # ---- files -------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "target": self.target, "machine": self.machine, "runtime": self.runtime,
                "settings": self.settings, "build_s": self.build_s, "staircase": self.staircase,
                "layers": self.layers, "entries": self.entries}

    def save(self, path: str | os.PathLike) -> Path:
        from edgeprune.files.atomic import write_json

        return write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatencyTable":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise LatencyTableError(f"{path}: cannot read the latency table: {err}") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise LatencyTableError(f"{path}: not a latency table (schema {SCHEMA!r} expected)")
        return cls(target=data["target"], machine=data["machine"], runtime=data["runtime"],
                   entries=data["entries"], layers=data.get("layers", []), settings=data.get("settings", {}),
                   build_s=float(data.get("build_s", 0.0)), staircase=data.get("staircase") or {})

    def check_same_place(self, machine: dict[str, Any], runtime: dict[str, Any], where: str) -> None:
        """LatencyTableError unless this table was measured on the same CPU, ISA, runtime and settings."""
        keys_m, keys_r = ("cpu", "isa", "usable_cores"), ("runtime", "runtime_version", "settings")
        mine = ({k: self.machine.get(k) for k in keys_m}, {k: self.runtime.get(k) for k in keys_r})
        theirs = ({k: machine.get(k) for k in keys_m}, {k: runtime.get(k) for k in keys_r})
        if mine != theirs:
            raise LatencyTableError(f"{where}: measured on {mine}, not on this machine and runtime {theirs}; "
                                    "latency tables do not travel: build one here")


# ---- building -------------------------------------------------------------------------------


def layer_points(layer: Layer, step: int, points: int) -> list[tuple[int, int]]:
    """The (cin, cout) points to measure for one layer: its two sweeps (one for depthwise)."""
    if layer.signature.depthwise:
        return [(w, w) for w in width_grid(layer.cout, step, points)] if layer.sweep_out else [(layer.cin, layer.cout)]
    out = [(layer.cin, layer.cout)]
    out += [(layer.cin, w) for w in width_grid(layer.cout, step, points)] if layer.sweep_out else []
    out += [(w, layer.cout) for w in width_grid(layer.cin, step, points)] if layer.sweep_in else []
    if layer.sweep_in and layer.sweep_out:  # the corner that fits the a x b term
        out.append((width_grid(layer.cin, step, points)[0], width_grid(layer.cout, step, points)[0]))
    return sorted(set(out))


def check_points(layer: Layer, step: int, points: int, count: int) -> list[tuple[int, int]]:
    """Off-sweep points (both widths reduced) where the prediction is checked."""
    if layer.signature.depthwise or count <= 0 or not (layer.sweep_in and layer.sweep_out):
        return []
    gi, go = width_grid(layer.cin, step, points)[:-1], width_grid(layer.cout, step, points)[:-1]
    if not gi or not go:
        return []
    picks = np.linspace(0, 1, count + 2)[1:-1]
    return sorted({(gi[int(round(p * (len(gi) - 1)))], go[int(round(p * (len(go) - 1)))]) for p in picks})


def time_ops(sig: OpSignature, pairs: Sequence[tuple[int, int]], target, runs: int, warmup: int,
             folder: str) -> list[float]:
    """Median milliseconds of ``sig`` at each (cin, cout) of ``pairs`` on ``target``'s runtime and
    settings, timed interleaved (one round runs every pair once), so that a slow spell of the
    machine moves all of them alike instead of bending the curve between two points."""
    from edgeprune.latency.int8 import in_precision
    from edgeprune.profile.timing import make_input_pool, time_calls
    from edgeprune.runtime import open_runner

    runners, calls = [], []
    try:
        for i, (cin, cout) in enumerate(pairs):
            path = Path(folder) / f"op{i}.onnx"
            path.write_bytes(graph_bytes(sig, cin, cout))
            path = in_precision(path, sig.precision)
            runner = open_runner(path, target.runtime.name, settings=target.runtime.settings)
            runners.append(runner)
            feeds = make_input_pool(runner.inputs, 1)[0]
            calls.append(lambda _feeds, r=runner, f=feeds: r.run(f))
        samples = time_calls(calls, [None], runs, warmup)
    finally:
        for runner in runners:
            runner.close()
        for path in Path(folder).glob("op*.onnx"):
            path.unlink(missing_ok=True)
    return [float(np.median(s)) for s in samples]


STAIRCASE_SIGNATURE = OpSignature("conv", (3, 3), (1, 1), (1, 1), (1, 1), False, (28, 28), True)
STAIRCASE_BLOCKS = (1, 2, 4, 8, 16, 32)
STAIRCASE_WIDTHS = tuple(range(33, 97))  # output widths 33..96 of a 64-channel 3x3 conv at 28x28


def fit_block(widths: Sequence[int], ms: Sequence[float], blocks: Sequence[int] = STAIRCASE_BLOCKS) -> dict[str, Any]:
    """Which channel block explains the measured times best. For each block B, the least-squares
    fit of ``c0 + c1 ceil(w / B) B + c2 [w not a multiple of B]``: a kernel that pads to the block
    (widths inside a block cost the block's widest: ORT's fp32 NCHWc kernels) and one that takes
    a slower path off it (int8 kernels on a width that is not a multiple of 4); B = 1 is a plain
    line in w. Each fit is redone without the 10% of points it misses most (slow spells of a
    shared machine). The block with the smallest residual wins, the smallest B among those within
    5% of it (a finer block is the safer claim)."""
    w = np.asarray(widths, dtype=np.float64)
    t = np.asarray(ms, dtype=np.float64)
    keep_n = max(3, int(round(0.9 * len(t))))
    residuals = {}
    for b in blocks:
        columns = [np.ones_like(w), np.ceil(w / b - 1e-9) * b]
        if b > 1:
            columns.append((np.mod(w, b) != 0).astype(np.float64))
        x = np.stack(columns, axis=-1)
        coef, *_ = np.linalg.lstsq(x, t, rcond=None)
        best_points = np.argsort(np.abs(x @ coef - t))[:keep_n]
        coef, *_ = np.linalg.lstsq(x[best_points], t[best_points], rcond=None)
        residuals[int(b)] = float(np.sum((x[best_points] @ coef - t[best_points]) ** 2))
    best = min(residuals.values())
    block = min(b for b, r in residuals.items() if r <= 1.05 * best + 1e-18)
    return {"block": block, "residuals": {str(b): r for b, r in residuals.items()}}


def probe_staircase(target, runs: int, warmup: int, folder: str, precision: str = "fp32") -> dict[str, Any]:
    """Time one conv (64 -> w channels, 3x3, 28x28) at every output width ``STAIRCASE_WIDTHS``,
    interleaved, and fit the runtime's channel block (`fit_block`): widths inside one block
    cost the same (the kernel pads to the block), so a latency budget keeps each block's widest."""
    import dataclasses

    pairs = [(64, w) for w in STAIRCASE_WIDTHS]
    sig = dataclasses.replace(STAIRCASE_SIGNATURE, precision=precision)
    ms = time_ops(sig, pairs, target, runs, warmup, folder)
    return {**fit_block(STAIRCASE_WIDTHS, ms), "signature": sig.to_json(), "cin": 64,
            "widths": list(STAIRCASE_WIDTHS), "ms": ms}


def place(target) -> tuple[dict[str, Any], dict[str, Any]]:
    """(machine, runtime) fingerprints: where a table's numbers hold."""
    from edgeprune.profile.machine import machine_info
    from edgeprune.runtime import open_runner

    machine = {k: v for k, v in machine_info().items() if k in ("cpu", "isa", "usable_cores", "arch", "os")}
    sig = OpSignature("gemm", relu=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.onnx"
        path.write_bytes(graph_bytes(sig, 8, 8))
        runner = open_runner(path, target.runtime.name, settings=target.runtime.settings)
        try:
            d = runner.describe()
        finally:
            runner.close()
    runtime = {k: d.get(k) for k in ("runtime", "runtime_version", "device", "threads", "settings")}
    return machine, runtime


def build_table(
    layers: Sequence[Layer],
    target,
    *,
    step: int = 16,
    points: int = 8,
    checks: int = 2,
    runs: int = 30,
    warmup: int = 5,
    existing: LatencyTable | None = None,
    progress: bool = False,
) -> LatencyTable:
    """Measure what ``layers`` need on ``target`` (points already in ``existing`` are kept,
    after checking it was measured here), then time the check points."""
    start = time.perf_counter()
    machine, runtime = place(target)
    precisions = {layer.signature.precision for layer in layers}
    if len(precisions) > 1:
        raise LatencyTableError(f"one table holds one precision; the layers are in {sorted(precisions)}")
    precision = precisions.pop() if precisions else "fp32"
    if existing is not None:
        existing.check_same_place(machine, runtime, "--table")
        if existing.precision != precision:
            raise LatencyTableError(f"the table holds {existing.precision} operators, not {precision}: one table holds "
                                    "one precision; write the other to another file")
        table = existing
    else:
        table = LatencyTable(target=target.name, machine=machine, runtime=runtime)
    table.settings = {"step": step, "points": points, "checks": checks, "runs": runs, "warmup": warmup,
                      "precision": precision}
    todo: dict[str, list[tuple[int, int]]] = {}  # signature key -> points to measure
    signatures: dict[str, OpSignature] = {}
    for layer in layers:
        key = layer.signature.key()
        signatures[key] = layer.signature
        entry = table.entries.setdefault(key, {"signature": layer.signature.to_json(), "points": {}})
        for a, b in layer_points(layer, step, points):
            if f"{a},{b}" not in entry["points"] and (a, b) not in todo.setdefault(key, []):
                todo[key].append((a, b))
    checks_of: dict[str, list[tuple[Layer, tuple[int, int]]]] = {}
    for layer in layers:
        for pt in check_points(layer, step, points, checks):
            checks_of.setdefault(layer.signature.key(), []).append((layer, pt))
    from edgeprune.profile.timing import progress_bar

    count = sum(len(v) for v in todo.values()) + sum(len(v) for v in checks_of.values())
    bar = progress_bar(len(signatures), "latency table (operators)", progress)
    checked: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not table.staircase:
            table.staircase = probe_staircase(target, runs, warmup, tmp, precision)
            table._curves.clear()
        for key, sig in signatures.items():  # one interleaved loop per operator: its points and checks
            pairs = todo.get(key, []) + [pt for _, pt in checks_of.get(key, [])]
            if not pairs:
                bar.update(1)
                continue
            measured = time_ops(sig, pairs, target, runs, warmup, tmp)
            new = todo.get(key, [])
            for (a, b), ms in zip(new, measured):
                table.entries[key]["points"][f"{a},{b}"] = ms
            table._curves.pop(key, None)  # refit with the new points
            for (layer, (a, b)), ms in zip(checks_of.get(key, []), measured[len(new):]):
                predicted = table.predict(sig, a, b, (layer.cin, layer.cout))
                checked.setdefault(layer.name, []).append(
                    {"cin": a, "cout": b, "measured_ms": ms, "predicted_ms": predicted,
                     "rel_error": abs(predicted - ms) / ms})
            bar.update(1)
    bar.close()
    table.layers = [{"name": layer.name, "signature": layer.signature.to_json(), "cin": layer.cin,
                     "cout": layer.cout, "sweep_in": layer.sweep_in, "sweep_out": layer.sweep_out,
                     "dense_ms": table.predict(layer.signature, layer.cin, layer.cout, (layer.cin, layer.cout)),
                     "checks": checked.get(layer.name, [])} for layer in layers]
    table.build_s = round(time.perf_counter() - start, 3)
    table.timed = count
    return table


def summary(table: LatencyTable) -> dict[str, Any]:
    """Numbers for the console and reports: sizes, the dense layers' sum, the check errors."""
    errors = table.errors()
    return {"target": table.target, "operators": len(table.entries),
            "points": sum(len(e["points"]) for e in table.entries.values()), "layers": len(table.layers),
            "layers_dense_ms": sum(layer["dense_ms"] for layer in table.layers),
            "check_points": len(errors), "check_error_median": float(np.median(errors)) if errors else None,
            "check_error_max": max(errors) if errors else None, "build_s": table.build_s}


def iter_layers(data: Iterable[dict[str, Any]]) -> list[Layer]:
    """Layers from their JSON form (``{"name", "signature", "cin", "cout"}``)."""
    return [Layer(d["name"], OpSignature.from_json(d["signature"]), int(d["cin"]), int(d["cout"]),
                  bool(d.get("sweep_in", True)), bool(d.get("sweep_out", True))) for d in data]
