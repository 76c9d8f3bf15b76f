"""Timing statistics: pure functions, no runtime."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeprune.profile.stats import median_ci, percentile, summarize, throughput_fps


def test_median_ci_order_statistics_n10():
    # n=10: P(B<=1) = 11/1024 <= 0.025 < P(B<=2) = 56/1024, so the CI is [x(2), x(9)].
    ci = median_ci(list(range(10, 0, -1)))
    assert (ci.low, ci.high) == (2.0, 9.0)
    assert ci.coverage == pytest.approx(1 - 2 * 11 / 1024)


def test_median_ci_small_n_is_the_range_with_its_true_coverage():
    ci = median_ci([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (ci.low, ci.high) == (1.0, 5.0)
    assert ci.coverage == pytest.approx(1 - 2 / 32)
    assert median_ci([7.0]).low == median_ci([7.0]).high == 7.0


def test_median_ci_large_n_coverage_just_above_95():
    x = np.random.default_rng(0).exponential(size=1001)
    ci = median_ci(x)
    assert 0.95 <= ci.coverage < 0.96
    assert ci.low < np.median(x) < ci.high


def test_median_ci_covers_true_median_about_95_percent():
    rng = np.random.default_rng(1)
    true_median = math.log(2)  # Exp(1)
    hits = sum(
        (lambda c: c.low <= true_median <= c.high)(median_ci(rng.exponential(size=41))) for _ in range(1000)
    )
    assert 0.93 <= hits / 1000 <= 0.99


def test_summarize_known_values():
    s = summarize([float(i) for i in range(1, 101)])
    assert s.n == 100 and s.median == 50.5 and s.min == 1.0 and s.max == 100.0
    assert s.p90 == pytest.approx(90.1) and s.p99 == pytest.approx(99.01)
    assert s.mean == 50.5 and s.std == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert s.median_ci95[0] < 50.5 < s.median_ci95[1]
    d = s.to_dict()
    assert set(d) >= {"median", "p90", "p99", "min", "mean", "std", "median_ci95"}
    assert isinstance(d["median_ci95"], list)


def test_summarize_single_sample_and_errors():
    s = summarize([2.0])
    assert s.median == s.p99 == 2.0 and s.std == 0.0
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        median_ci([1.0], confidence=1.5)


def test_throughput():
    assert throughput_fps(10.0, batch=4) == 400.0
    with pytest.raises(ValueError):
        throughput_fps(0.0, 1)
