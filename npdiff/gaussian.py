r"""Gaussian densities, KL divergences, the discretized decoder and units.

* :func:`log_normal_diag` and :func:`log_normal_full`: log-densities of Gaussians;
* :func:`kl_normal_diag`: the KL between two diagonal Gaussians (the terms of the VLB,
  Ho et al. 2020, Eq. 5);
* :func:`discretized_gaussian_log_likelihood`: the decoder :math:`p(x_0|x_1)` for data with K
  integer levels (Ho et al. 2020, Eq. 13), exact in the tails through ``log_ndtr``;
* :func:`nats_to_bpd`, :func:`bpd_to_nats`: nats per example <-> bits per dimension.

**K-level data.** Level :math:`v \in \{0, \dots, K-1\}` maps to :math:`x = 2v/(K-1) - 1 \in [-1, 1]`;
each level owns a bin of width :math:`2/(K-1)` centred on it, the first and last bins being
open-ended. Dequantization (in the likelihood module) is uniform within a bin. Use
:func:`levels_to_data` and :func:`data_to_levels` to move between the two.

Each public function checks its arguments and calls the formula of the same name with ``_unchecked``
appended; the estimators' loops, which checked their arrays at their own door, call those formulas
directly (:func:`log_normal_diag_unchecked`, :func:`kl_normal_diag_unchecked`,
:func:`discretized_gaussian_log_likelihood_unchecked`: the same arguments, float64, no checks).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import log_ndtr

from ._check import as_float_array, as_float_arrays, as_full_gaussian, as_integers, positive_int

__all__ = [
    "LOG_2PI",
    "bpd_to_nats",
    "data_to_levels",
    "discretized_gaussian_log_likelihood",
    "discretized_gaussian_log_likelihood_unchecked",
    "kl_normal_diag",
    "kl_normal_diag_unchecked",
    "levels_to_data",
    "log_normal_diag",
    "log_normal_diag_unchecked",
    "log_normal_full",
    "nats_to_bpd",
]

LOG_2PI = float(np.log(2.0 * np.pi))


def log_normal_diag(x: object, mean: object, log_var: object) -> np.ndarray:
    r"""Log-density of a diagonal Gaussian, summed over the last axis.

    .. math:: \log\mathcal N(x; \mu, \mathrm{diag}(e^{\ell})) =
        -\tfrac12\sum_d \Big[\log 2\pi + \ell_d + (x_d - \mu_d)^2 e^{-\ell_d}\Big]

    Parameters
    ----------
    x : (..., D) array
        Points.
    mean : array broadcastable to x's shape
        The means.
    log_var : array broadcastable to x's shape
        The log-variances (so a tiny or huge variance is represented without under- or overflow).

    Returns
    -------
    (...,) array
        Log-densities in nats.

    Examples
    --------
    >>> import numpy as np
    >>> print(np.round(log_normal_diag(np.array([[0.5, -1.0]]), 0.0, 0.0), 4))
    [-2.4629]
    """
    x, mean, log_var = as_float_arrays(x=x, mean=mean, log_var=log_var, like="x", min_ndim=1)
    return log_normal_diag_unchecked(x, mean, log_var)


def log_normal_diag_unchecked(x: np.ndarray, mean: np.ndarray | float, log_var: np.ndarray | float) -> np.ndarray:
    r""":func:`log_normal_diag`'s formula on float64 arrays its caller checked.

    Examples
    --------
    >>> import numpy as np
    >>> print(np.round(log_normal_diag_unchecked(np.array([[0.5, -1.0]]), 0.0, 0.0), 4))
    [-2.4629]
    """
    return -0.5 * np.sum(LOG_2PI + log_var + (x - mean) ** 2 * np.exp(-log_var), axis=-1)


def log_normal_full(x: object, mean: object, cov: object) -> np.ndarray:
    r"""Log-density of a full-covariance Gaussian via a Cholesky factor :math:`\Sigma = LL^\top`.

    .. math:: \log\mathcal N(x;\mu,\Sigma) = -\tfrac12\big[D\log 2\pi + \log|\Sigma|
        + (x-\mu)^\top\Sigma^{-1}(x-\mu)\big],\quad \log|\Sigma| = 2\sum_d\log L_{dd}

    Parameters
    ----------
    x : (B, D) array
        Points.
    mean : (D,) array
        The mean.
    cov : (D, D) array
        The covariance, symmetric positive definite.

    Returns
    -------
    (B,) array
        Log-densities in nats.

    Examples
    --------
    >>> import numpy as np
    >>> cov = np.array([[1.0, 0.5], [0.5, 2.0]])
    >>> print(np.round(log_normal_full(np.array([[0.5, -1.0]]), np.zeros(2), cov), 4))
    [-2.6891]
    """
    x, mean, L = as_full_gaussian(x, mean, cov)  # (B, D), (D,), (D, D) with L L^T = cov
    D = x.shape[1]
    z = solve_triangular(L, (x - mean).T, lower=True)  # (D, B) whitened residuals
    log_det = 2.0 * np.sum(np.log(np.diag(L)))
    return -0.5 * (D * LOG_2PI + log_det + np.sum(z**2, axis=0))


def kl_normal_diag(mean1: object, log_var1: object, mean2: object, log_var2: object) -> np.ndarray:
    r"""Elementwise :math:`\mathrm{KL}(\mathcal N(\mu_1, e^{\ell_1}) \,\|\, \mathcal N(\mu_2, e^{\ell_2}))`.

    .. math:: \mathrm{KL} = \tfrac12\Big[-1 + \ell_2 - \ell_1 + e^{\ell_1 - \ell_2}
        + (\mu_1 - \mu_2)^2 e^{-\ell_2}\Big]

    Written with log-variances so that the ratio :math:`e^{\ell_1-\ell_2}` is formed
    once, stable for variances from 1e-300 to 1e300. ``-1 + r - log r`` is evaluated
    as ``expm1(d) - d`` with ``d = l1 - l2`` (by its Taylor series for small d), so
    equal variances give exactly 0 and nearly equal ones lose no digits. Sum over
    dimensions yourself (the VLB does).

    Parameters
    ----------
    mean1 : array
        :math:`\mu_1`.
    log_var1 : array
        :math:`\ell_1 = \log\sigma_1^2`.
    mean2 : array
        :math:`\mu_2`.
    log_var2 : array
        :math:`\ell_2`; all four broadcast together.

    Returns
    -------
    array of the broadcast shape
        The KL in nats, each entry >= 0.

    Examples
    --------
    >>> import numpy as np
    >>> print(np.round(kl_normal_diag(0.0, 0.0, 1.0, np.log(2.0)), 4))
    0.3466
    """
    m1, l1, m2, l2 = as_float_arrays(mean1=mean1, log_var1=log_var1, mean2=mean2, log_var2=log_var2)
    return kl_normal_diag_unchecked(m1, l1, m2, l2)


def kl_normal_diag_unchecked(m1: np.ndarray, l1: np.ndarray, m2: np.ndarray | float, l2: np.ndarray | float) -> np.ndarray:
    r""":func:`kl_normal_diag`'s formula on float64 arrays its caller checked.

    Examples
    --------
    >>> import numpy as np
    >>> print(np.round(kl_normal_diag_unchecked(np.array(0.0), np.array(0.0), 1.0, np.log(2.0)), 4))
    0.3466
    """
    return 0.5 * (_expm1_minus_x(l1 - l2) + (m1 - m2) ** 2 * np.exp(-l2))


def _expm1_minus_x(d: np.ndarray) -> np.ndarray:
    r""":math:`e^d - 1 - d \ge 0`, by its Taylor series near 0 where the subtraction would cancel."""
    d = np.asarray(d, dtype=np.float64)
    series = np.zeros_like(d)
    for k in range(10, 1, -1):  # Horner on sum_{k=2}^{10} d^k / k!; truncation < 1e-16 relative for |d| < 0.1
        series = (series + 1.0 / math.factorial(k)) * d
    series = series * d
    with np.errstate(over="ignore"):
        direct = np.expm1(d) - d
    return np.where(np.abs(d) < 0.1, series, direct)


def levels_to_data(levels: object, K: int) -> np.ndarray:
    r"""Map integer levels 0..K-1 to :math:`x = 2v/(K-1) - 1 \in [-1, 1]`.

    Parameters
    ----------
    levels : array of ints
        Levels in 0..K-1, any shape.
    K : int
        The number of levels, >= 2.

    Returns
    -------
    array of levels' shape
        The data, float64.

    Examples
    --------
    >>> import numpy as np
    >>> print(np.round(levels_to_data(np.array([0, 1, 2, 3]), 4), 4))
    [-1.     -0.3333  0.3333  1.    ]
    """
    K = positive_int(K, "K", minimum=2)
    v = as_integers(levels, "levels", lo=0, hi=K - 1)
    return 2.0 * v / (K - 1) - 1.0


def data_to_levels(x: object, K: int, name: str = "x") -> np.ndarray:
    r"""Invert :func:`levels_to_data`; data must lie on the K levels (within 1e-6 of a bin width).

    Parameters
    ----------
    x : array
        Data on the levels, any shape.
    K : int
        The number of levels, >= 2.
    name : str
        The argument's name in an error message.

    Returns
    -------
    array of x's shape
        The levels, int64.

    Examples
    --------
    >>> import numpy as np
    >>> print(data_to_levels(np.array([-1.0, 1.0 / 3, 1.0]), 4))
    [0 2 3]
    """
    K, x = positive_int(K, "K", minimum=2), as_float_array(x, name)
    v = (x + 1.0) * (K - 1) / 2.0
    v_round = np.round(v)
    if v.size and (v_round.min() < 0 or v_round.max() > K - 1 or np.max(np.abs(v - v_round)) > 1e-6):
        raise ValueError(f"{name} must lie on the {K} levels 2v/(K-1) - 1 in [-1, 1], got values in [{x.min()}, {x.max()}]")
    return v_round.astype(np.int64)


def _log_diff_ndtr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r""":math:`\log(\Phi(b) - \Phi(a))` for :math:`a < b`, accurate in both tails.

    Uses :math:`\log\Phi(b) + \log(1 - e^{\log\Phi(a) - \log\Phi(b)})`, mirrored
    (:math:`\Phi(b)-\Phi(a) = \Phi(-a)-\Phi(-b)`) when the bin lies right of 0 so
    both CDFs are small and ``log_ndtr`` keeps full precision. A bin much narrower than
    the standard deviation near the centre (:math:`w = b - a < 10^{-3}`, :math:`|m| < 5` with
    :math:`m = (a+b)/2`) would lose :math:`\log_{10}(1/w)` digits to that subtraction (and
    give -inf once w is below 1e-16), so there the midpoint expansion is used instead:

    .. math:: \Phi(b) - \Phi(a) = w\,\varphi(m)\Big(1 + \frac{w^2(m^2 - 1)}{24}\Big) + O(w^5 m^4)
    """
    mirror = a > 0
    lo = np.where(mirror, -b, a)
    hi = np.where(mirror, -a, b)
    log_hi = log_ndtr(hi)
    log_lo = log_ndtr(lo)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # the branch not taken may overflow
        out = log_hi + np.log(-np.expm1(log_lo - log_hi))
        w = b - a  # +inf for the open edge bins, which never take the narrow branch
        m = 0.5 * (a + b)
        narrow = (w < 1e-3) & (np.abs(m) < 5.0)
        series = np.log(w) - 0.5 * (LOG_2PI + m * m) + np.log1p(w * w * (m * m - 1.0) / 24.0)
    return np.where(narrow, series, out)


def discretized_gaussian_log_likelihood(x: object, mean: object, log_var: object, K: int = 256) -> np.ndarray:
    r"""Elementwise log-probability of K-level data under a discretized Gaussian decoder.

    .. math::
        p(x \mid \mu, \sigma^2) = \Phi\Big(\frac{x + \delta - \mu}{\sigma}\Big)
                               - \Phi\Big(\frac{x - \delta - \mu}{\sigma}\Big),
        \qquad \delta = \frac{1}{K - 1}

    with :math:`x - \delta` replaced by :math:`-\infty` at :math:`x = -1` and
    :math:`x + \delta` by :math:`+\infty` at :math:`x = 1` (Ho et al. 2020, Eq. 13;
    K = 256 is the classic 8-bit decoder of improved-diffusion). Computed in log
    space with ``log_ndtr``, so it is finite even twenty standard deviations out.

    Parameters
    ----------
    x : array
        Data on the K levels (see the module docstring).
    mean : array broadcastable to x
        The decoder's mean.
    log_var : array broadcastable to x
        The decoder's log-variance.
    K : int
        The number of levels, >= 2.

    Returns
    -------
    array of x's shape
        Log-probabilities in nats (sum them for a joint).

    Examples
    --------
    Three levels, a decoder N(0, 0.5^2): the probabilities of the three bins sum to one.

    >>> import numpy as np
    >>> log_p = discretized_gaussian_log_likelihood(np.array([-1.0, 0.0, 1.0]), 0.0, np.log(0.25), K=3)
    >>> print(np.round(np.exp(log_p), 4), round(float(np.exp(log_p).sum()), 12))
    [0.1587 0.6827 0.1587] 1.0
    """
    K = positive_int(K, "K", minimum=2)
    x, mean, log_var = as_float_arrays(x=x, mean=mean, log_var=log_var, like="x")
    data_to_levels(x, K)  # validates that x lies on the levels
    return discretized_gaussian_log_likelihood_unchecked(x, mean, log_var, K)


def discretized_gaussian_log_likelihood_unchecked(x: np.ndarray, mean: np.ndarray, log_var: np.ndarray | float,
                                                  K: int) -> np.ndarray:
    r""":func:`discretized_gaussian_log_likelihood`'s formula on checked arrays (x on the K levels).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([-1.0, 0.0, 1.0])
    >>> print(np.round(discretized_gaussian_log_likelihood_unchecked(x, np.zeros(3), np.log(0.25), 3), 4))
    [-1.841  -0.3817 -1.841 ]
    """
    delta = 1.0 / (K - 1)
    inv_std = np.exp(-0.5 * log_var)
    upper = np.where(x > 1.0 - 1e-9, np.inf, (x + delta - mean) * inv_std)
    lower = np.where(x < -1.0 + 1e-9, -np.inf, (x - delta - mean) * inv_std)
    return _log_diff_ndtr(lower, upper)


def nats_to_bpd(nats: object, D: int) -> np.ndarray:
    r"""Nats per example to bits per dimension: :math:`\mathrm{bpd} = \mathrm{nats} / (D \ln 2)`.

    Parameters
    ----------
    nats : array
        Nats per example, any shape (+-inf allowed).
    D : int
        The data dimension.

    Returns
    -------
    array of nats' shape
        Bits per dimension.

    Examples
    --------
    >>> import numpy as np
    >>> print(np.round(nats_to_bpd(np.array([1000.0]), 784), 4))
    [1.8402]
    """
    D, nats = positive_int(D, "D"), as_float_array(nats, "nats", allow_inf=True)
    return nats / (D * np.log(2.0))


def bpd_to_nats(bpd: object, D: int) -> np.ndarray:
    r"""Bits per dimension to nats per example: :math:`\mathrm{nats} = \mathrm{bpd}\cdot D \ln 2`.

    Parameters
    ----------
    bpd : array
        Bits per dimension, any shape (+-inf allowed).
    D : int
        The data dimension.

    Returns
    -------
    array of bpd's shape
        Nats per example.

    Examples
    --------
    >>> import numpy as np
    >>> print(np.round(bpd_to_nats(np.array([2.0]), 784), 2))
    [1086.85]
    """
    D, bpd = positive_int(D, "D"), as_float_array(bpd, "bpd", allow_inf=True)
    return bpd * (D * np.log(2.0))
