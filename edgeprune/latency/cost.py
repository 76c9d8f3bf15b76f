"""The ``latency`` metric: a model's milliseconds on a target as a function of its group widths.

    cost = latency_cost(graph.cost, layers, table)           # table sums, uncalibrated
    cost = calibrate(model, graph, shape, cost, target, 1)    # fitted to the model on the target
    allocate(cost, scores, Budget.parse("latency=0.5"), align)

Every Conv / Gemm of the model the table has (`edgeprune.latency.layers.model_layers`) becomes a
term ``curve(a(w), b(w))``: its operator's fitted latency (`LatencyTable.curve`) at the input and
output widths the FLOPs term of the same layer gives (`edgeprune.pruning.cost`). The table's
operators run alone, not as in the model, and the model has operators the table has not
(pooling, additions, the layers it skips): each term is replaced by the layer's own curve fitted
to its times in the model (`Calibration.term`, `edgeprune.latency.inmodel.LayerFit`), and the
model's latency is ``alpha x (sum of the terms) + beta`` (or, without per-layer times, per input
resolution), all fitted to the model itself measured on the target
(`edgeprune.latency.calibrate`). Deltas (what the allocator compares) are alpha x the change of
the terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from edgeprune.errors import BudgetError
from edgeprune.pruning.cost import CostModel, Width


@dataclass(frozen=True)
class LatencyTerm:
    """One layer's table curve over its input width ``a`` and output width ``b`` (None:
    depthwise, one width)."""

    layer: str
    curve: Any  # edgeprune.latency.table.Curve
    a: Width
    b: Width | None = None
    bucket: str = ""  # the input resolution ("56x56"; "" for gemm): calibrated together

    def __call__(self, widths: Sequence[float]) -> float:
        a = self.a(widths)
        return self.curve(a, self.b(widths) if self.b is not None else a)

    @property
    def groups(self) -> tuple[int, ...]:
        return self.a.groups + (self.b.groups if self.b is not None else ())


@dataclass(frozen=True)
class Calibration:
    """``model ms = sum over resolutions r of alpha_r x (sum of the layer terms at r) + beta``
    (``alphas`` by resolution; a resolution not in it takes ``alpha``), and the measured points
    it was fitted to. A layer's term is its `LayerFit` in ``layers`` (its time in the model as
    the runtime's profiler measured it, `edgeprune.latency.inmodel`), else its table curve."""

    alpha: float = 1.0
    beta: float = 0.0
    points: tuple[dict[str, Any], ...] = ()
    alphas: tuple[tuple[str, float], ...] = ()
    layers: tuple[tuple[str, Any], ...] = ()  # (layer, edgeprune.latency.inmodel.LayerFit)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_layers", dict(self.layers))

    def scale(self, bucket: str) -> float:
        return dict(self.alphas).get(bucket, self.alpha)

    def term(self, term: "LatencyTerm", widths: Sequence[float]) -> float:
        """A layer's ms at ``widths``: its in-model fit, or its table curve."""
        ms = term(widths)
        fit = self._layers.get(term.layer)
        if fit is None:
            return ms
        b = term.b(widths) if term.b is not None else 1.0  # depthwise: one width, a
        return fit(term.a(widths), b, ms, term.curve.padded)

    def with_fit(self, fitted: "Calibration") -> "Calibration":
        """``fitted`` (alphas, beta, points) with these layer fits."""
        import dataclasses

        return dataclasses.replace(fitted, layers=self.layers)

    def to_json(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "alphas": dict(self.alphas),
                "layers": {name: fit.to_json() for name, fit in self.layers},
                "points": [dict(p) for p in self.points]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Calibration":
        from edgeprune.latency.inmodel import LayerFit

        return cls(float(data["alpha"]), float(data["beta"]), tuple(data.get("points", ())),
                   tuple(sorted((str(k), float(v)) for k, v in (data.get("alphas") or {}).items())),
                   tuple((str(n), LayerFit.from_json(f)) for n, f in (data.get("layers") or {}).items()))


@dataclass(frozen=True)
class LatencyCostModel(CostModel):
    """A `CostModel` with a third metric, ``latency`` (milliseconds on ``target``)."""

    latency_terms: tuple[LatencyTerm, ...] = ()
    calibration: Calibration = Calibration()
    target: str = ""
    precision: str = "fp32"  # of the table's operators (int8: the quantized model's latency)
    skipped: tuple[str, ...] = ()  # layers with FLOPs the table has no operator for (constant in beta)

    def __post_init__(self) -> None:
        super().__post_init__()
        index: dict[int, list[LatencyTerm]] = {g: [] for g in range(len(self.sizes))}
        for term in self.latency_terms:
            for g in set(term.groups):
                index[g].append(term)
        self._touching["latency"] = index

    def layer_ms(self, widths: Sequence[float]) -> dict[str, float]:
        """Each layer's table ms at ``widths`` (uncorrected)."""
        return {t.layer: t(widths) for t in self.latency_terms}

    def table_sum(self, widths: Sequence[float]) -> float:
        """The sum of the layer terms (`Calibration.term`: in-model fits, else table curves)."""
        c = self.calibration
        return sum(c.term(t, widths) for t in self.latency_terms)

    def bucket_sums(self, widths: Sequence[float]) -> dict[str, float]:
        """The sum of the layer terms at each input resolution."""
        c = self.calibration
        out: dict[str, float] = {}
        for t in self.latency_terms:
            out[t.bucket] = out.get(t.bucket, 0.0) + c.term(t, widths)
        return out

    def cost(self, metric: str, widths: Sequence[float]) -> float:
        if metric == "latency":
            c = self.calibration
            return sum(c.scale(t.bucket) * c.term(t, widths) for t in self.latency_terms) + c.beta
        return super().cost(metric, widths)

    def group_cost(self, metric: str, group: int, widths: Sequence[float]) -> float:
        if metric == "latency":
            c = self.calibration
            return sum(c.scale(t.bucket) * c.term(t, widths) for t in self._touching["latency"][group])
        return super().group_cost(metric, group, widths)

    def latency(self, widths: Sequence[float]) -> float:
        return self.cost("latency", widths)

    def calibrated(self, calibration: Calibration) -> "LatencyCostModel":
        import dataclasses

        return dataclasses.replace(self, calibration=calibration, _touching={})

    def staircase(self, group: int, widths: Sequence[int]) -> list[int]:
        """Of a group's allowed widths (ascending), those where the group's latency (every other
        group dense) steps down: from the full width down, a width is kept only if it is faster
        than the last one kept, so that each equal-latency step keeps its widest width."""
        sizes = list(self.sizes)
        kept: list[int] = []
        last = None
        for w in sorted(widths, reverse=True):
            sizes[group] = w
            t = sum(term(sizes) for term in self._touching["latency"][group])
            if last is None or t < last * (1.0 - 1e-3):
                kept.append(w)
                last = t
        return sorted(kept)


def latency_cost(base: CostModel, layers: Sequence[Any], table, target: str | None = None) -> LatencyCostModel:
    """``base`` plus the latency terms of ``layers`` (`Layer` s of the model) from ``table``."""
    by_layer = {t.layer: t for t in base.flops_terms}
    terms, skipped = [], []
    covered = set()
    for layer in layers:
        flops = by_layer.get(layer.name)
        if flops is None:
            continue
        curve = table.curve(layer.signature, (layer.cin, layer.cout))
        bucket = "x".join(str(v) for v in layer.signature.hw)
        terms.append(LatencyTerm(layer.name, curve, flops.a, flops.b, bucket))
        covered.add(layer.name)
    for t in base.flops_terms:
        if t.layer not in covered and t.groups:
            skipped.append(t.layer)
    if not terms:
        raise BudgetError("a latency budget needs the model's layers in the latency table; none of them is there")
    return LatencyCostModel(sizes=base.sizes, flops_terms=base.flops_terms, params_terms=base.params_terms,
                            params_const=base.params_const, latency_terms=tuple(terms),
                            target=target or table.target, precision=table.precision, skipped=tuple(skipped))


PRIOR = 0.1  # weight of the pull of each resolution's alpha towards the two-point alpha


def fit_buckets(points: Sequence[dict[str, Any]], per_resolution: bool = True) -> Calibration:
    """Per-resolution alphas and beta by least squares over measured points ``{"buckets": {r:
    table sum at r}, "measured_ms", "table_ms"}`` (the first two: dense and uniform, which give
    the two-point line `fit_calibration` as the prior). Each alpha_r is pulled towards the prior
    with weight ``PRIOR`` x its dense table sum (so a resolution the points cannot tell apart
    stays at the prior), and kept within [0.1, 10] x the prior. Not ``per_resolution``: one
    alpha for all layers, by the same least squares (the sums are of layer terms already
    corrected to their times in the model: one alpha scales in what no layer has, pooling and
    the like, and a resolution's alpha would only fit noise)."""
    import numpy as np

    if not per_resolution:
        whole = fit_buckets([{**p, "buckets": {"*": p["table_ms"]}} for p in points])
        return Calibration(whole.scale("*"), whole.beta, tuple(dict(p) for p in points))
    base = fit_calibration(points[:2])
    pts = tuple(dict(p) for p in points)
    buckets = sorted({b for p in pts for b in p.get("buckets", {})})
    if len(pts) < 3 or not buckets:
        return Calibration(base.alpha, base.beta, pts)
    dense = pts[0]["buckets"]
    rows, rhs = [], []
    for p in pts:
        rows.append([p["buckets"].get(b, 0.0) for b in buckets] + [1.0])
        rhs.append(p["measured_ms"])
    for i, b in enumerate(buckets):
        prior = [0.0] * (len(buckets) + 1)
        prior[i] = PRIOR * dense.get(b, 0.0)
        rows.append(prior)
        rhs.append(PRIOR * dense.get(b, 0.0) * base.alpha)
    sol, *_ = np.linalg.lstsq(np.asarray(rows), np.asarray(rhs), rcond=None)
    alphas = np.clip(sol[:-1], 0.1 * base.alpha, 10.0 * base.alpha)
    # beta: the dense point exactly (a budget is a fraction of the dense model as measured)
    beta = pts[0]["measured_ms"] - float(sum(a * dense.get(b, 0.0) for a, b in zip(alphas, buckets)))
    return Calibration(base.alpha, beta, pts, tuple((b, float(a)) for b, a in zip(buckets, alphas)))


def fit_calibration(points: Sequence[dict[str, Any]]) -> Calibration:
    """alpha, beta from measured points ``{"table_ms", "measured_ms", ...}``: the line through
    the first two (dense and narrowed). With one point, or a fit that is not increasing (the
    two measurements within noise of each other), the model ms is proportional to the sum."""
    pts = tuple(dict(p) for p in points)
    if not pts:
        raise BudgetError("calibrating a latency model needs at least one measured point")
    s0, m0 = pts[0]["table_ms"], pts[0]["measured_ms"]
    if len(pts) >= 2:
        s1, m1 = pts[1]["table_ms"], pts[1]["measured_ms"]
        if s0 != s1:
            alpha = (m0 - m1) / (s0 - s1)
            if alpha > 0:
                return Calibration(alpha, m0 - alpha * s0, pts)
    return Calibration(m0 / s0, 0.0, pts)
