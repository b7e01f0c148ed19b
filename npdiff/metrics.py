r"""Sample-quality distances between point sets, and the true log-density of samples.

* :func:`energy_distance`: :math:`2\,\mathbb E\|X-Y\| - \mathbb E\|X-X'\| - \mathbb E\|Y-Y'\|`
  (Székely & Rizzo 2013, Eq. 2), with the within-set means over distinct pairs;
  zero in expectation only when the two distributions agree.
* :func:`mmd_rbf`: the unbiased estimate of the squared maximum mean discrepancy with a
  Gaussian kernel :math:`k(x, y) = \exp(-\|x-y\|^2 / 2h^2)` (Gretton et al. 2012, Lemma 6).
* :func:`mean_log_density`: the mean true log-density of samples and its standard error;
  for a perfect sampler it estimates minus the data's entropy.
* :func:`frechet_distance`: the squared Fréchet distance between Gaussians fitted to two sets of
  feature vectors, :math:`\|\mu_a - \mu_b\|^2 + \operatorname{tr}(\Sigma_a + \Sigma_b - 2(\Sigma_a\Sigma_b)^{1/2})`
  (Dowson & Landau 1982; the FID of Heusel et al. 2017), and :func:`frechet_gaussians`, the same
  distance between two stated Gaussians. On the digits, in the features of a fixed classifier, it is
  :func:`npdiff.digit_features.digit_frechet` (the ``images`` extra).
* :func:`wasserstein1_to_cdf`: the Wasserstein-1 distance of 1-D samples to a distribution given by its CDF,
  :math:`\int |F_n(x) - F(x)|\,dx` (Vallender 1974), exact for a piecewise-linear F.

The pairwise sums are Numba kernels (``_pair_sum_numba``) with chunked NumPy twins
(``_pair_sum_numpy``); both run in O(n m) time and O(1) or O(chunk x m) memory.
"""

from __future__ import annotations

import warnings

import numpy as np
from numba import config as _numba_config
from numba import njit
from scipy import linalg

from ._check import as_batch, as_cdf_table, as_gaussian_moments, as_samples_1d, real_scalar

__all__ = ["energy_distance", "frechet_distance", "frechet_gaussians", "mean_log_density", "mmd_rbf", "wasserstein1_to_cdf"]

# kernel codes for the pair sums
_DIST, _RBF = 0, 1


@njit(cache=True)
def _pair_sum_numba(a, b, kind, scale, distinct):  # pragma: no cover - compiled
    total = 0.0
    n, m, D = a.shape[0], b.shape[0], a.shape[1]
    for i in range(n):
        j0 = i + 1 if distinct else 0
        for j in range(j0, m):
            d2 = 0.0
            for k in range(D):
                diff = a[i, k] - b[j, k]
                d2 += diff * diff
            total += np.sqrt(d2) if kind == 0 else np.exp(-d2 * scale)
    return total


def _pair_sum_numpy(a: np.ndarray, b: np.ndarray, kind: int, scale: float, distinct: bool) -> float:
    r"""NumPy twin of :func:`_pair_sum_numba`: sum of k(a_i, b_j) over all pairs (or i < j)."""
    total = 0.0
    chunk = max(1, 2_000_000 // max(1, b.shape[0] * a.shape[1]))
    for start in range(0, a.shape[0], chunk):
        d2 = np.sum((a[start : start + chunk, None, :] - b[None, :, :]) ** 2, axis=-1)  # (c, m)
        vals = np.sqrt(d2) if kind == _DIST else np.exp(-d2 * scale)
        if distinct:
            rows = np.arange(start, start + vals.shape[0])[:, None]
            vals = np.where(np.arange(b.shape[0])[None, :] > rows, vals, 0.0)
        total += float(vals.sum())
    return total


# With NUMBA_DISABLE_JIT=1 the kernel would run as a pure-Python double loop; use the twin.
_pair_sum = _pair_sum_numpy if _numba_config.DISABLE_JIT else _pair_sum_numba


def _pair_mean(a: np.ndarray, b: np.ndarray | None, kind: int, scale: float = 0.0) -> float:
    if b is None:  # mean over distinct pairs i < j of one set
        n = a.shape[0]
        return float(_pair_sum(a, a, kind, scale, True)) / (n * (n - 1) / 2)
    return float(_pair_sum(a, b, kind, scale, False)) / (a.shape[0] * b.shape[0])


def _two_sets(x: object, y: object, names: tuple[str, str] = ("x", "y")) -> tuple[np.ndarray, np.ndarray]:
    x = as_batch(x, names[0])
    y = as_batch(y, names[1], dim=x.shape[1])
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"{names[0]} and {names[1]} need at least 2 points each, got {x.shape[0]} and {y.shape[0]}")
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def energy_distance(x: object, y: object, *, unbiased: bool = True) -> float:
    r"""Energy distance between the point sets x (n, D) and y (m, D).

    .. math:: \mathcal E = \frac{2}{nm}\sum_{i,j}\|x_i - y_j\| - \binom n2^{-1}\sum_{i<i'}\|x_i - x_{i'}\|
                          - \binom m2^{-1}\sum_{j<j'}\|y_j - y_{j'}\|

    Székely & Rizzo 2013, Eq. 2, with U-statistics for the within-set terms (unbiased,
    may be slightly negative). With ``unbiased=False`` the within-set sums are divided
    by :math:`n^2` and :math:`m^2` instead (the V-statistic, always >= 0, whose null
    distribution times n is a weighted sum of chi-squares).
    """
    x, y = _two_sets(x, y)
    n, m = x.shape[0], y.shape[0]
    within_x, within_y = _pair_mean(x, None, _DIST), _pair_mean(y, None, _DIST)
    if not unbiased:
        within_x, within_y = within_x * (n - 1) / n, within_y * (m - 1) / m
    return 2.0 * _pair_mean(x, y, _DIST) - within_x - within_y


def mmd_rbf(x: object, y: object, bandwidth: float = 1.0) -> float:
    r"""Unbiased squared MMD with the Gaussian kernel :math:`\exp(-\|x-y\|^2/2h^2)`.

    .. math:: \widehat{\mathrm{MMD}}^2_u = \binom n2^{-1}\sum_{i<i'}k(x_i, x_{i'})
              + \binom m2^{-1}\sum_{j<j'}k(y_j, y_{j'}) - \frac{2}{nm}\sum_{i,j}k(x_i, y_j)

    Gretton et al. 2012, Lemma 6. It can be slightly negative when the sets agree.
    """
    x, y = _two_sets(x, y)
    h = real_scalar(bandwidth, "bandwidth", lo=0.0, lo_open=True)
    if h < 1e-150:  # below ~1e-162 h^2 underflows and the kernel's scale would divide by zero
        raise ValueError(f"bandwidth must be at least 1e-150 (its square must not underflow), got {h!r}")
    scale = 1.0 / (2.0 * h * h)
    return _pair_mean(x, None, _RBF, scale) + _pair_mean(y, None, _RBF, scale) - 2.0 * _pair_mean(x, y, _RBF, scale)


def mean_log_density(samples: object, dataset: object) -> tuple[float, float]:
    r"""Mean true log-density of ``samples`` under ``dataset.log_prob`` and its standard error.

    ``dataset`` is anything with ``log_prob(x) -> (N,)``: a toy data set or, with a
    bound time, an oracle (``lambda x: oracle.log_prob(x, 0.0)`` wrapped in an object).

    Returns
    -------
    (mean, standard error) in nats.
    """
    if not hasattr(dataset, "log_prob"):
        raise TypeError(f"dataset must have a log_prob(x) method, got {type(dataset).__name__}")
    x = as_batch(samples, "samples", dim=getattr(dataset, "dim", None))
    logp = np.asarray(dataset.log_prob(x), dtype=np.float64)
    if logp.shape != (x.shape[0],):
        raise ValueError(f"dataset.log_prob returned shape {logp.shape}, expected ({x.shape[0]},)")
    if not np.all(np.isfinite(logp)):
        return float("-inf"), float("nan")
    return float(logp.mean()), float(logp.std(ddof=1) / np.sqrt(x.shape[0]))


# -- the Fréchet distance of two Gaussians ------------------------------------------------------------------

_IMAG_TOL = 1e-6  # largest |Im tr (Sigma_a Sigma_b)^(1/2)| accepted, relative to sqrt(tr Sigma_a tr Sigma_b)


def frechet_gaussians(mean_a: object, cov_a: object, mean_b: object, cov_b: object) -> float:
    r"""Squared Fréchet (2-Wasserstein) distance between two Gaussians given by their means and covariances.

    For :math:`\mathcal N(\mu_a, \Sigma_a)` and :math:`\mathcal N(\mu_b, \Sigma_b)`,

    .. math:: d^2 = \|\mu_a - \mu_b\|^2 + \operatorname{tr}\big(\Sigma_a + \Sigma_b - 2\,(\Sigma_a\Sigma_b)^{1/2}\big)

    Dowson & Landau 1982 (the Fréchet distance of two Gaussians); Heusel et al. 2017 compute it
    between Gaussians fitted to Inception features, the FID, and report :math:`d^2`, as this does.

    Numerical care: :math:`\Sigma_a\Sigma_b` is not symmetric, but it is similar to the positive
    semi-definite :math:`\Sigma_a^{1/2}\Sigma_b\Sigma_a^{1/2}`, so its eigenvalues are real and
    non-negative and the trace of its square root is real. ``scipy.linalg.sqrtm`` of a product that
    is singular (a feature that never varies) or whose zero eigenvalues round to tiny negative ones
    returns complex entries (they can be large where the root is ill-conditioned) whose trace is
    real up to round-off: the real part of the trace is taken once its imaginary part is below
    ``1e-6`` of :math:`\sqrt{\operatorname{tr}\Sigma_a \operatorname{tr}\Sigma_b}` (the largest
    the trace term can be), and a larger one raises. Should ``sqrtm`` return non-finite entries, it
    is retried once on :math:`(\Sigma_a + \epsilon I)(\Sigma_b + \epsilon I)` with
    :math:`\epsilon = 10^{-10}` of the mean variance (the offset of the reference FID code, made
    relative). The sum is clipped at 0, which round-off can cross for identical Gaussians.

    Parameters
    ----------
    mean_a : (F,) array
        Mean of the first Gaussian.
    cov_a : (F, F) array
        Its covariance, symmetric positive semi-definite.
    mean_b : (F,) array
        Mean of the second Gaussian.
    cov_b : (F, F) array
        Its covariance.

    Returns
    -------
    float
        :math:`d^2 \ge 0`, in squared feature units.
    """
    mean_a, cov_a = as_gaussian_moments(mean_a, cov_a, "a")
    mean_b, cov_b = as_gaussian_moments(mean_b, cov_b, "b", dim=mean_a.size)
    tr_a, tr_b = float(np.trace(cov_a)), float(np.trace(cov_b))
    root_trace = _trace_sqrt_product(cov_a, cov_b)
    d2 = float(np.sum((mean_a - mean_b) ** 2)) + tr_a + tr_b - 2.0 * root_trace
    return max(d2, 0.0)


def _trace_sqrt_product(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    r"""tr (cov_a cov_b)^(1/2) by ``scipy.linalg.sqrtm``, with the care :func:`frechet_gaussians` states."""
    scale = np.sqrt(max(float(np.trace(cov_a)) * float(np.trace(cov_b)), 0.0))
    with warnings.catch_warnings():
        # a singular product (a constant feature) still has its square root; scipy warns all the same
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)  # (F, F), complex when round-off makes an eigenvalue negative
        if not np.all(np.isfinite(root)):
            F = cov_a.shape[0]
            eps = 1e-10 * max(float(np.trace(cov_a) + np.trace(cov_b)) / (2 * F), np.finfo(float).tiny)
            offset = eps * np.eye(F)
            root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if not np.all(np.isfinite(root)):
        raise ValueError("the square root of cov_a @ cov_b is not finite even after a small diagonal offset")
    trace = complex(np.trace(root))
    if abs(trace.imag) > _IMAG_TOL * max(scale, np.finfo(float).tiny):
        raise ValueError(f"tr (cov_a cov_b)^(1/2) has an imaginary part of {trace.imag:.3g} (real part "
                         f"{trace.real:.6g}): the covariances are not positive semi-definite")
    return trace.real


def frechet_distance(a: object, b: object) -> float:
    r"""Squared Fréchet distance between Gaussians fitted to the feature sets a (n, F) and b (m, F).

    Each set's Gaussian is its sample mean and its sample covariance (divided by n - 1, as the
    reference FID code fits it); the distance between them is :func:`frechet_gaussians`:

    .. math:: d^2 = \|\hat\mu_a - \hat\mu_b\|^2
              + \operatorname{tr}\big(\hat\Sigma_a + \hat\Sigma_b - 2\,(\hat\Sigma_a\hat\Sigma_b)^{1/2}\big)

    Heusel et al. 2017 (the FID, there in Inception features; here in any features, e.g.
    :func:`npdiff.digit_features.digit_features`). It is symmetric and zero for two sets with the
    same mean and covariance; an estimate from finite sets is biased upwards (two samples of one
    distribution are at a positive distance), so a figure is read beside its floor, the distance
    between two real sets of the same sizes.

    Parameters
    ----------
    a : (n, F) array
        The first set of feature vectors, n >= 2.
    b : (m, F) array
        The second set, m >= 2, with as many features.

    Returns
    -------
    float
        :math:`d^2 \ge 0`.
    """
    a, b = _two_sets(a, b, ("a", "b"))
    return frechet_gaussians(a.mean(axis=0), np.cov(a, rowvar=False, ddof=1).reshape(a.shape[1], a.shape[1]),
                             b.mean(axis=0), np.cov(b, rowvar=False, ddof=1).reshape(b.shape[1], b.shape[1]))


# -- the Wasserstein-1 distance in one dimension ---------------------------------------------------------------


def wasserstein1_to_cdf(samples: object, grid: object, cdf: object) -> float:
    r"""Wasserstein-1 distance of 1-D samples to the distribution whose CDF is linear between ``grid`` points.

    In one dimension the optimal coupling is monotone and

    .. math:: W_1(\mu_n, \mu) = \int_{-\infty}^{\infty} \big|F_n(x) - F(x)\big|\,dx

    (Vallender 1974), with :math:`F_n` the samples' empirical CDF. Here F is 0 below ``grid[0]``, 1 above
    ``grid[-1]`` and linear in between (the CDF of a density that is piecewise constant on the grid's cells,
    or a quadrature CDF interpolated linearly), so the integral is exact: on each piece between consecutive
    points of the merged grid and samples, :math:`F_n` is a constant c and :math:`F - c` linear, with the
    integral of its absolute value :math:`\tfrac{|d_0| + |d_1|}{2}\,h` when the ends agree in sign and
    :math:`\tfrac{d_0^2 + d_1^2}{2(|d_0| + |d_1|)}\,h` when they do not.

    Parameters
    ----------
    samples : (n,) array
        The samples, n >= 1, finite.
    grid : (G,) array
        Strictly increasing points, G >= 2.
    cdf : (G,) array
        F at the grid points: non-decreasing, ``cdf[0] == 0`` and ``cdf[-1] == 1``.

    Returns
    -------
    float
        :math:`W_1 \ge 0`, in the samples' units.

    Examples
    --------
    One sample at 0 against U(0, 1): :math:`\int_0^1 |1 - x|\,dx = 1/2`.

    >>> wasserstein1_to_cdf([0.0], [0.0, 1.0], [0.0, 1.0])
    0.5
    """
    x = np.sort(as_samples_1d(samples, "samples"))
    grid, cdf = as_cdf_table(grid, cdf)
    z = np.union1d(grid, x)  # (P,) every point where F_n jumps or F bends
    f = np.interp(z, grid, cdf)  # (P,) F, 0 and 1 beyond the grid
    fn = np.searchsorted(x, z[:-1], side="right") / x.size  # (P-1,) F_n on [z_k, z_k+1)
    d0, d1, h = f[:-1] - fn, f[1:] - fn, np.diff(z)
    a0, a1 = np.abs(d0), np.abs(d1)
    same = d0 * d1 >= 0.0
    denom = np.where(same, 1.0, a0 + a1)  # a0 + a1 > 0 where the sign changes
    piece = np.where(same, 0.5 * (a0 + a1), 0.5 * (d0 * d0 + d1 * d1) / denom) * h
    return float(np.sum(piece))  # beyond z, F_n and F are both 0 (left) or both 1 (right)
