"""Latency statistics as pure functions of a list of samples (milliseconds in, numbers out)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class MedianCI:
    """A distribution-free confidence interval for the median, and the coverage it achieves."""

    low: float
    high: float
    coverage: float  # >= the requested confidence, except for very small n (then the range)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latency samples (ms)."""

    n: int
    median: float
    p90: float
    p99: float
    min: float
    max: float
    mean: float
    std: float
    median_ci95: tuple[float, float]
    median_ci_coverage: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["median_ci95"] = list(self.median_ci95)
        return d


def _binomial_half_cdf(n: int) -> list[float]:
    """cdf[k] = P(Binomial(n, 1/2) <= k) for k = 0..n, computed in log space (stable for big n)."""
    log_half_n = -n * math.log(2.0)
    cdf, total = [], 0.0
    for k in range(n + 1):
        log_pmf = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half_n
        total += math.exp(log_pmf)
        cdf.append(min(total, 1.0))
    return cdf


def median_ci(samples: Sequence[float], confidence: float = 0.95) -> MedianCI:
    """Order-statistic confidence interval for the median (no distribution assumed).

    With sorted samples x(1) <= ... <= x(n), the interval [x(j), x(n-j+1)] covers the true
    median with probability 1 - 2 P(B <= j-1), B ~ Binomial(n, 1/2). We take the largest j
    whose coverage is still >= ``confidence``. For n < 6 no j reaches 95%; then the interval
    is [min, max] and ``coverage`` says how much it really covers.
    """
    if len(samples) == 0:
        raise ValueError("median_ci needs at least one sample")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = np.sort(np.asarray(samples, dtype=float))
    n = len(x)
    cdf = _binomial_half_cdf(n)
    alpha = 1.0 - confidence
    j = 1  # 1-based rank of the lower bound
    for cand in range(1, n // 2 + 1):
        if cdf[cand - 1] <= alpha / 2:
            j = cand
        else:
            break
    coverage = 1.0 - 2.0 * cdf[j - 1] if n > 1 else 0.0
    return MedianCI(float(x[j - 1]), float(x[n - j]), max(coverage, 0.0))


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between order statistics."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("percentile needs at least one sample")
    return float(np.percentile(x, q))


def summarize(samples_ms: Sequence[float]) -> LatencyStats:
    """Median, p90, p99, min, max, mean, sample std and the median's 95% CI."""
    x = np.asarray(samples_ms, dtype=float)
    if x.size == 0:
        raise ValueError("summarize needs at least one sample")
    ci = median_ci(x.tolist())
    return LatencyStats(
        n=len(x),
        median=float(np.median(x)),
        p90=percentile(x, 90),
        p99=percentile(x, 99),
        min=float(x.min()),
        max=float(x.max()),
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if len(x) > 1 else 0.0,
        median_ci95=(ci.low, ci.high),
        median_ci_coverage=ci.coverage,
    )


def throughput_fps(median_ms: float, batch: int) -> float:
    """Images per second at the median latency, one inference at a time."""
    if median_ms <= 0:
        raise ValueError(f"median latency must be positive, got {median_ms}")
    return batch * 1000.0 / median_ms


BOOTSTRAP_RESAMPLES = 2000
_BOOTSTRAP_CELLS = 2**21  # resamples x samples held in memory at once


def bootstrap_median_ratio_ci(
    num: Sequence[float],
    den: Sequence[float],
    *,
    paired: bool = True,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``median(num) / median(den)``.

    ``paired``: ``num[i]`` and ``den[i]`` were timed in the same round of one interleaved
    loop, so rounds are resampled jointly; the drift both models saw in a round then cancels
    instead of widening the interval. Unpaired, each side is resampled on its own. Seeded,
    so the same samples always give the same interval.
    """
    a = np.asarray(num, dtype=float)
    b = np.asarray(den, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("bootstrap_median_ratio_ci needs samples on both sides")
    if paired and a.size != b.size:
        raise ValueError(f"paired samples must have equal length, got {a.size} and {b.size}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CELLS // max(a.size, b.size))
    ratios = []
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        ia = rng.integers(0, a.size, size=(k, a.size))
        ib = ia if paired else rng.integers(0, b.size, size=(k, b.size))
        ratios.append(np.median(a[ia], axis=1) / np.median(b[ib], axis=1))
    r = np.concatenate(ratios)
    alpha = 1.0 - confidence
    return float(np.quantile(r, alpha / 2)), float(np.quantile(r, 1 - alpha / 2))


def ratio_ci_from_cis(
    num_median: float, num_ci: Sequence[float], den_median: float, den_ci: Sequence[float]
) -> tuple[float, float]:
    """Approximate CI of ``num_median / den_median`` from each median's own CI.

    On the log scale, the lower (upper) distances of the two intervals are added in
    quadrature: right for two independent measurements, and blind to drift between them
    (that is what interleaving and `bootstrap_median_ratio_ci` are for).
    """
    values = (num_median, *num_ci, den_median, *den_ci)
    if any(not v > 0 for v in values):
        raise ValueError(f"medians and CI bounds must be positive, got {values}")
    ln = math.log
    lo_n, hi_n = ln(num_median) - ln(num_ci[0]), ln(num_ci[1]) - ln(num_median)
    lo_d, hi_d = ln(den_median) - ln(den_ci[0]), ln(den_ci[1]) - ln(den_median)
    center = ln(num_median) - ln(den_median)
    return math.exp(center - math.hypot(lo_n, hi_d)), math.exp(center + math.hypot(hi_n, lo_d))
