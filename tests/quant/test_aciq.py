"""ACIQ: the analytical clipping values against the paper's constants, and against measured MSE."""

import numpy as np
import pytest

from edgeprune.quant import aciq


@pytest.mark.parametrize("bits,expected", [(2, 2.83), (3, 3.89), (4, 5.03), (8, 9.89)])
def test_laplace_two_sided_constants(bits, expected):
    assert aciq.optimal_alpha_ratio(bits, aciq.LAPLACE) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("bits,expected", [(2, 1.71), (3, 2.15), (4, 2.55), (8, 3.92)])
def test_gauss_two_sided_constants(bits, expected):
    assert aciq.optimal_alpha_ratio(bits, aciq.GAUSS) == pytest.approx(expected, abs=0.011)


@pytest.mark.parametrize("bits,expected", [(2, 3.89), (3, 5.02), (4, 6.2), (8, 11.16)])
def test_laplace_one_sided_constants_from_the_derivation(bits, expected):
    # METHODS.md lists these for post-ReLU tensors; they follow from alpha/(12*4^M) = b*exp(-alpha/b)
    ratio = aciq.optimal_alpha_ratio(bits, aciq.LAPLACE, one_sided=True)
    assert ratio == pytest.approx(expected, abs=0.011)
    assert ratio / (12 * 4.0**bits) == pytest.approx(np.exp(-ratio), rel=1e-3)


def test_laplace_optimum_satisfies_the_methods_condition():
    for bits in (2, 4, 8):
        a = aciq.optimal_alpha_ratio(bits, aciq.LAPLACE)
        assert 2 * a / (3 * 4.0**bits) == pytest.approx(2 * np.exp(-a), rel=1e-3)


def _measured_mse(x, alpha, bits):
    """Uniform quantization of x clipped to [-alpha, alpha] with 2^bits bins (mid-rise)."""
    step = 2 * alpha / 2**bits
    xc = np.clip(x, -alpha, alpha - 1e-12)
    q = (np.floor(xc / step) + 0.5) * step
    return float(np.mean((q - x) ** 2))


@pytest.mark.parametrize("dist,bits", [("laplace", 2), ("laplace", 4), ("laplace", 8), ("gauss", 4), ("gauss", 8)])
def test_solved_alpha_minimises_the_simulated_mse(dist, bits):
    rng = np.random.default_rng(0)
    x = rng.laplace(0, 1.0, 400_000) if dist == "laplace" else rng.normal(0, 1.0, 400_000)
    alpha = aciq.optimal_alpha_ratio(bits, dist)
    grid = alpha * np.linspace(0.6, 1.6, 41)
    mses = [_measured_mse(x, a, bits) for a in grid]
    best = grid[int(np.argmin(mses))]
    at_alpha = _measured_mse(x, alpha, bits)
    # the MSE valley is flat and the Delta^2/12 rounding model is rough at 3 bits: the measured
    # optimum lies within 15% of the analytical alpha, and the MSE there within 3% of the minimum
    assert abs(best - alpha) / alpha < 0.15
    assert at_alpha <= 1.03 * min(mses)
    assert at_alpha < _measured_mse(x, np.abs(x).max(), bits)  # and beats no clipping at all


def test_fit_recognises_laplace_and_gauss_and_relu():
    rng = np.random.default_rng(1)
    lap = aciq.fit(rng.laplace(0.5, 2.0, 50_000))
    assert lap.dist == "laplace" and lap.scale == pytest.approx(2.0, rel=0.03) and not lap.one_sided
    gau = aciq.fit(rng.normal(-1.0, 3.0, 50_000))
    assert gau.dist == "gauss" and gau.scale == pytest.approx(3.0, rel=0.03)
    relu = aciq.fit(np.maximum(rng.laplace(0, 1.5, 50_000), 0))
    assert relu.one_sided and relu.dist == "laplace" and relu.scale == pytest.approx(1.5, rel=0.05)
    lo, hi = relu.clip_range(4)
    assert lo == 0.0 and hi == pytest.approx(6.2 * relu.scale, rel=0.01)


def test_clip_range_never_exceeds_the_observed_range():
    x = np.random.default_rng(2).laplace(0, 1.0, 1000)
    f = aciq.fit(x)
    lo, hi = f.clip_range(8)  # 9.89 b is beyond this small sample's extremes
    assert (lo, hi) == (pytest.approx(x.min()), pytest.approx(x.max()))


def test_fit_for_bits_picks_the_lower_measured_mse():
    rng = np.random.default_rng(3)
    x = rng.standard_t(3, 100_000)  # heavier tails than a Gaussian
    chosen = aciq.fit_for_bits(x, 8)
    errs = {}
    for dist in aciq.DISTRIBUTIONS:
        lo, hi = aciq.fit(x, dist=dist).clip_range(8)
        errs[dist] = np.mean((aciq.fake_quant_range(x, lo, hi, 8) - x) ** 2)
    assert errs[chosen.dist] == min(errs.values())


def test_bit_allocation_follows_alpha_to_the_two_thirds_within_budget():
    alphas = np.array([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 0.5, 0.5])
    bits = aciq.allocate_bits(alphas, 4)
    assert np.all(np.diff(bits[:6]) >= 0)  # more range, more bits
    assert bits[5] > bits[0]
    assert np.sum(2.0**bits) <= 1.5 * len(alphas) * 2**4  # about the budget (rounding in log2)
    assert np.all(aciq.allocate_bits(np.full(5, 0.3), 4) == 4)  # equal ranges keep the mean width


def test_weight_quantization_is_symmetric_per_channel_and_clipped():
    rng = np.random.default_rng(4)
    w = rng.laplace(0, 0.05, (8, 64, 3, 3))
    alphas = aciq.weight_alphas(w, 4)
    amax = np.abs(w).reshape(8, -1).max(1)
    assert np.all(alphas < amax)  # 4-bit ACIQ clips Laplace tails
    codes, scales = aciq.quantize_symmetric(w, alphas, 4)
    assert codes.min() >= -7 and codes.max() <= 7 and np.all(codes == np.round(codes))
    deq = codes * scales[:, None, None, None]
    mse_aciq = np.mean((deq - w) ** 2)
    codes_mm, scales_mm = aciq.quantize_symmetric(w, amax, 4)
    assert mse_aciq < np.mean((codes_mm * scales_mm[:, None, None, None] - w) ** 2)
