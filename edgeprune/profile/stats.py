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
