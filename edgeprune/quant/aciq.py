"""ACIQ: analytical clipping for integer quantization (Banner et al., arXiv 1810.05723).

A tensor is clipped to [-alpha, alpha] (two-sided) or [0, alpha] (one-sided, after ReLU)
before uniform quantization to 2^M bins. With the tensor modelled as Laplace(b) or
Gaussian(sigma), the expected mean-squared error is

    two-sided   MSE(alpha) = 2 * E[(|X| - alpha)^2; |X| > alpha]  +  (2 alpha)^2 / (12 * 4^M)
    one-sided   MSE(alpha) = p * ( E[(X - alpha)^2; X > alpha | X > 0] + alpha^2 / (12 * 4^M) )

(clipping noise + rounding noise, with the rounding noise of a step Delta taken as
Delta^2/12 for every value inside the range, as in the paper). For Laplace the clipping
terms are closed form: 2 b^2 exp(-alpha/b) two-sided, 2 b^2 exp(-alpha/b) for the
exponential tail of the positive half. Setting dMSE/dalpha = 0 gives

    two-sided Laplace   2 alpha / (3 * 4^M) = 2 b exp(-alpha/b)   (METHODS.md)
    one-sided Laplace     alpha / (12 * 4^M) =   b exp(-alpha/b)

whose roots are alpha/b = 2.83, 3.89, 5.03, 9.89 (two-sided) and 3.89, 5.02, 6.2, 11.16
(one-sided) for 2/3/4/8 bits - the paper's constants, reproduced by the tests. The
derivation fixes what ``b`` is in the one-sided case: the scale of the positive half
alone, i.e. the mean of the positive values (the exponential MLE), not a Laplace fitted
to the whole tensor with its spike of ReLU zeros (the fraction p cancels). Here the
optimum is found numerically from the MSE expressions (no table lookup), so any bit width
works, Gaussian included (closed-form Gaussian tail moments via erfc).

Which distribution. ``fit`` alone picks the one with the higher maximum log-likelihood
(Laplace b = mean |x - median|, Gaussian sigma = std; one-sided: exponential vs half-normal
on the positive values). The quantizer uses ``fit_for_bits``: both fits give an analytical
clipping value, and the one whose clip gives the lower *measured* quantization MSE on the
tensor's sample wins. Measured on resnet20 (Fashion-MNIST), the likelihood rule picked the
Gaussian for most tensors and its 3.9-sigma clip at 8 bits cut real, heavier-than-Gaussian
tails: logit SQNR 26.6 dB against 37.4 dB for plain min/max; see
benchmarks/results/quantization.md for the numbers with the MSE rule.

Per-channel bit allocation (weights, below 8 bits): with a budget of B = C * 2^M bins
over C channels, the MSE-optimal number of bins of channel i is proportional to
alpha_i^(2/3), so M_i = round(log2(B * alpha_i^(2/3) / sum_j alpha_j^(2/3))), clamped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LAPLACE = "laplace"
GAUSS = "gauss"
DISTRIBUTIONS = (LAPLACE, GAUSS)


def _q(z: np.ndarray) -> np.ndarray:
    """Gaussian upper tail P(Z > z)."""
    erfc = np.vectorize(math.erfc, otypes=[float])
    return 0.5 * erfc(np.asarray(z, dtype=float) / math.sqrt(2.0))


def _phi(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * np.asarray(z, dtype=float) ** 2) / math.sqrt(2.0 * math.pi)


def clip_noise(alpha: np.ndarray, scale: float, dist: str, one_sided: bool) -> np.ndarray:
    """Expected squared clipping error (per value of the modelled half/whole distribution)."""
    alpha = np.asarray(alpha, dtype=float)
    if dist == LAPLACE:
        # two tails of Laplace(b): 2 * (1/2b) * int (x-a)^2 e^{-x/b} = 2 b^2 e^{-a/b};
        # one tail of Exp(b) (positive half, conditional): int (x-a)^2 e^{-x/b}/b = 2 b^2 e^{-a/b}
        return 2.0 * scale**2 * np.exp(-alpha / scale)
    if dist == GAUSS:
        z = alpha / scale
        tail = (scale**2 + alpha**2) * _q(z) - alpha * scale * _phi(z)  # E[(X-a)^2; X>a], N(0, s^2)
        return 2.0 * tail  # two tails; or one tail of the half-normal (density doubled)
    raise ValueError(f"unknown distribution {dist!r}; choose from {', '.join(DISTRIBUTIONS)}")


def expected_mse(alpha: np.ndarray, scale: float, bits: int, dist: str, one_sided: bool = False) -> np.ndarray:
    """Clipping + rounding noise for clipping value(s) ``alpha`` at ``bits`` (2^bits bins)."""
    alpha = np.asarray(alpha, dtype=float)
    width = alpha if one_sided else 2.0 * alpha
    rounding = width**2 / (12.0 * 4.0**bits)
    return clip_noise(alpha, scale, dist, one_sided) + rounding


def optimal_alpha_ratio(bits: int, dist: str = LAPLACE, one_sided: bool = False) -> float:
    """alpha*/scale minimising `expected_mse` (scale = 1), found numerically."""
    if bits < 1:
        raise ValueError(f"bits must be >= 1, got {bits}")
    key = (int(bits), dist, bool(one_sided))
    if key not in _RATIO_CACHE:
        lo, hi = 1e-3, 60.0
        grid = np.linspace(lo, hi, 6001)
        best = grid[int(np.argmin(expected_mse(grid, 1.0, bits, dist, one_sided)))]
        # golden-section refinement around the grid minimum
        a, b = max(lo, best - 0.02), best + 0.02
        g = (math.sqrt(5.0) - 1.0) / 2.0
        for _ in range(60):
            c, d = b - g * (b - a), a + g * (b - a)
            if expected_mse(c, 1.0, bits, dist, one_sided) < expected_mse(d, 1.0, bits, dist, one_sided):
                b = d
            else:
                a = c
        _RATIO_CACHE[key] = float((a + b) / 2.0)
    return _RATIO_CACHE[key]


_RATIO_CACHE: dict[tuple[int, str, bool], float] = {}


@dataclass(frozen=True)
class Fit:
    """A fitted tensor (or channel): distribution, scale (b or sigma), centre, one-sidedness."""

    dist: str
    scale: float
    center: float
    one_sided: bool
    lowest: float
    highest: float
    clipped: bool = True  # False: the observed range quantizes better than either ACIQ clip

    def alpha(self, bits: int) -> float:
        """The ACIQ clipping value (distance from the centre, or from 0 when one-sided)."""
        return optimal_alpha_ratio(bits, self.dist, self.one_sided) * self.scale

    def clip_range(self, bits: int) -> tuple[float, float]:
        """[lo, hi] to quantize to, never wider than the observed [lowest, highest]."""
        if self.scale <= 0 or not self.clipped:
            return (0.0 if self.one_sided else self.lowest), self.highest
        a = self.alpha(bits)
        if self.one_sided:
            return 0.0, min(self.highest, a)
        return max(self.lowest, self.center - a), min(self.highest, self.center + a)


def fit(sample: np.ndarray, lowest: float | None = None, highest: float | None = None,
        dist: str | None = None) -> Fit:
    """Fit a Laplace or Gaussian (``dist=None``: the better by log-likelihood) to ``sample``.

    A sample with no negative values is one-sided (post-ReLU): the positive values are fitted
    with an exponential or half-normal. ``lowest``/``highest`` are the exact extremes over
    all data (the sample may be a subsample); default: the sample's.
    """
    x = np.asarray(sample, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("cannot fit an empty sample")
    lo = float(x.min()) if lowest is None else float(lowest)
    hi = float(x.max()) if highest is None else float(highest)
    if lo >= 0.0:
        pos = x[x > 0]
        if pos.size == 0:
            return Fit(LAPLACE, 0.0, 0.0, True, lo, hi)
        b = float(pos.mean())  # exponential MLE
        sigma = float(np.sqrt(np.mean(pos**2)))  # half-normal MLE
        n = pos.size
        ll = {
            LAPLACE: -n * (math.log(b) + 1.0) if b > 0 else -math.inf,
            GAUSS: -0.5 * n * math.log(math.pi * sigma**2 / 2.0) - 0.5 * n if sigma > 0 else -math.inf,
        }
        chosen = dist or (LAPLACE if ll[LAPLACE] >= ll[GAUSS] else GAUSS)
        return Fit(chosen, b if chosen == LAPLACE else sigma, 0.0, True, lo, hi)
    median = float(np.median(x))
    b = float(np.mean(np.abs(x - median)))  # Laplace MLE
    mean = float(x.mean())
    sigma = float(x.std())
    n = x.size
    ll = {
        LAPLACE: -n * (math.log(2.0 * b) + 1.0) if b > 0 else -math.inf,
        GAUSS: -0.5 * n * math.log(2.0 * math.pi * sigma**2) - 0.5 * n if sigma > 0 else -math.inf,
    }
    chosen = dist or (LAPLACE if ll[LAPLACE] >= ll[GAUSS] else GAUSS)
    if chosen == LAPLACE:
        return Fit(LAPLACE, b, median, False, lo, hi)
    return Fit(GAUSS, sigma, mean, False, lo, hi)


def _sample_mse(x: np.ndarray, lo: float, hi: float, bits: int, symmetric: bool) -> float:
    if symmetric:
        a = max(abs(lo), abs(hi))
        qmax = max(2 ** (bits - 1) - 1, 1)
        s = a / qmax if a > 0 else 1.0
        return float(np.mean((np.clip(np.round(x / s), -qmax, qmax) * s - x) ** 2))
    return float(np.mean((fake_quant_range(x, lo, hi, bits) - x) ** 2))


def fit_for_bits(sample: np.ndarray, bits: int, lowest: float | None = None, highest: float | None = None,
                 symmetric: bool = False, allow_no_clip: bool = True) -> Fit:
    """The Laplace or Gaussian fit whose ACIQ clip at ``bits`` gives the lower measured MSE on ``sample``.

    ``symmetric``: the clip is applied as [-a, a] around 0 (weights, zero point 0).
    ``allow_no_clip``: when quantizing the observed range [lowest, highest] measures better
    than both clips (small or bounded tensors: a 3x3 depthwise filter has 9 weights, a
    ReLU6 output is bounded), the returned fit has ``clipped=False``.
    """
    import dataclasses

    x = np.asarray(sample, dtype=np.float64).ravel()
    best, best_mse = None, np.inf
    if allow_no_clip:
        f = fit(x, lowest, highest)
        lo, hi = f.lowest, f.highest
        if symmetric:
            a = max(abs(lo), abs(hi))
            lo, hi = -a, a
        best, best_mse = dataclasses.replace(f, clipped=False), _sample_mse(x, lo, hi, bits, symmetric)
    for dist in DISTRIBUTIONS:
        f = fit(x, lowest, highest, dist=dist)
        lo, hi = f.clip_range(bits)
        if symmetric:
            a = min(max(abs(f.lowest), abs(f.highest)), abs(f.center) + f.alpha(bits)) if f.scale > 0 else max(abs(f.lowest), abs(f.highest))
            lo, hi = -a, a
        mse = _sample_mse(x, lo, hi, bits, symmetric)
        if mse < best_mse * (1.0 - 1e-9):
            best, best_mse = f, mse
    assert best is not None
    return best


def weight_alphas(weight: np.ndarray, bits: int | np.ndarray, dist: str | None = None) -> np.ndarray:
    """Per-output-channel symmetric clipping value for a weight [C_out, ...].

    Weights are quantized symmetrically (zero point 0), so the clip is
    min(max|w_c|, |centre_c| + alpha_c): never beyond the channel's largest weight.
    ``bits`` may be one width or one per channel.
    """
    w = np.asarray(weight, dtype=np.float64).reshape(weight.shape[0], -1)
    bits_arr = np.broadcast_to(np.asarray(bits), (w.shape[0],))
    out = np.empty(w.shape[0])
    for c in range(w.shape[0]):
        row = w[c]
        amax = float(np.abs(row).max())
        if amax == 0.0:
            out[c] = 0.0
            continue
        if row.size <= 1:
            f = None
        elif dist is None:
            f = fit_for_bits(row, int(bits_arr[c]), symmetric=True)
        else:
            f = fit(row, dist=dist)
        if f is None or f.scale <= 0 or not f.clipped:
            out[c] = amax
            continue
        out[c] = min(amax, abs(f.center) + f.alpha(int(bits_arr[c])))
    return out


def allocate_bits(alphas: np.ndarray, mean_bits: int, min_bits: int = 1, max_bits: int = 8) -> np.ndarray:
    """Per-channel bit widths under a total budget of ``len(alphas) * 2**mean_bits`` bins.

    bins_i proportional to alpha_i^(2/3) (Banner et al., section 4): M_i =
    round(log2(B * alpha_i^(2/3) / sum_j alpha_j^(2/3))), clamped to [min_bits, max_bits].
    Channels with alpha 0 (all-zero) get ``min_bits``.
    """
    a = np.asarray(alphas, dtype=np.float64)
    weights = np.where(a > 0, a, 0.0) ** (2.0 / 3.0)
    total = weights.sum()
    if total <= 0:
        return np.full(a.shape, mean_bits, dtype=int)
    budget = a.size * 2.0**mean_bits
    with np.errstate(divide="ignore"):
        bins = budget * weights / total
        bits = np.where(bins > 0, np.round(np.log2(np.maximum(bins, 1e-30))), min_bits)
    return np.clip(bits, min_bits, max_bits).astype(int)


def quantize_symmetric(weight: np.ndarray, alphas: np.ndarray, bits: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric quantization: (integer codes, scales).

    Codes lie in [-(2^(M-1) - 1), 2^(M-1) - 1] (the symmetric int range, e.g. +-127 at 8 bits)
    with scale_c = alpha_c / (2^(M_c-1) - 1); values beyond alpha_c are clipped.
    """
    w = np.asarray(weight, dtype=np.float64)
    c = w.shape[0]
    bits_arr = np.broadcast_to(np.asarray(bits), (c,)).astype(int)
    qmax = (2.0 ** (bits_arr - 1) - 1.0).clip(min=1.0)
    alphas = np.asarray(alphas, dtype=np.float64)
    scales = np.where(alphas > 0, alphas / qmax, 1.0)
    shape = (c,) + (1,) * (w.ndim - 1)
    codes = np.clip(np.round(w / scales.reshape(shape)), -qmax.reshape(shape), qmax.reshape(shape))
    return codes, scales


def fake_quant_range(x: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """Asymmetric uniform quantize-dequantize of ``x`` on [lo, hi] (0 exactly representable)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    levels = 2**bits - 1
    scale = (hi - lo) / levels if hi > lo else 1.0
    zp = np.round(-lo / scale)
    q = np.clip(np.round(x / scale) + zp, 0, levels)
    return (q - zp) * scale
