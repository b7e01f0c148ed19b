r"""The exact density of what a deterministic sampler samples, and its KL divergence to the data.

A deterministic sampler is a map F from its starting noise :math:`z \sim \mathcal N(0, I)` to a
sample :math:`x = F(z)`. Where F is a diffeomorphism (a flow and, for small enough steps, every
solver of it), the change of variables gives the exact log-density of its samples,

.. math::
    \log p_F(x) = \log\mathcal N(z; 0, I) - \log\big|\det \partial F/\partial z\big|,\qquad x = F(z),

and with the data's true log-density :math:`\log q` the exact divergence of the sampler from the data,

.. math::
    \mathrm{KL}(p_F\,\|\,q) = \mathbb E_{z}\big[\log p_F(F(z)) - \log q(F(z))\big],

estimated by its sample mean over the z given, with the standard error std / sqrt(N). The terms
:math:`\delta = \log p_F - \log q` are 0 for a sampler that transports N(0, I) exactly onto q, so
the standard error shrinks with the sampler's error. Since q is normalized and :math:`p_F > 0`,
:math:`\mathbb E_{p_F}[e^{-\delta}] = \int q = 1`, so

.. math:: \mathrm{KL}(p_F\,\|\,q) = \mathbb E_{p_F}\big[\delta + e^{-\delta} - 1\big]

too, a control variate whose terms are :math:`\ge 0` and of order :math:`\delta^2/2`: for a good
sampler its standard error is far smaller (measured in ``docs/measurements/samplers.md``); the mean of
:math:`e^{-\delta}` itself checks the whole computation (it must be 1 within its error).

In low dimension the Jacobian costs 2D more runs of the sampler: central differences in
float64, with the sampler called once on the stacked points :math:`[z, z \pm h e_1, \dots,
z \pm h e_D]` so that an adaptive solver takes the same steps for a point and its neighbours.
A Jacobian whose determinant is negative means the sampler folds space (too large steps): there
F is not injective, the change of variables counts one preimage only, and ``folded`` counts
those points.

:func:`sampler_log_density_at` runs the change of variables the other way, at given samples x,
solving :math:`F(z) = x` by Newton's method from a starting guess (e.g. the exact flow's
encoding of x, ``ode_log_likelihood(...).x_end``); with it the paired gap
:math:`\log q(x) - \log p_F(x)` on test points estimates :math:`\mathrm{KL}(q\,\|\,p_F)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._check import as_batch, as_batches, positive_int, real_scalar
from ..gaussian import log_normal_diag_unchecked
from ._validate import as_log_q_values, check_log_q, check_nonsingular, check_sampler, check_sampler_output

# step halvings of the damped Newton iteration: 2^-30 of a step is no step
_HALVINGS = 30

__all__ = ["SamplerDensity", "SamplerKL", "sampler_kl", "sampler_log_density", "sampler_log_density_at"]


@dataclass
class SamplerDensity:
    r"""The change of variables of a deterministic sampler, per point.

    Attributes
    ----------
    z : (N, D) the starting noise.
    x : (N, D) the samples F(z).
    log_p : (N,) :math:`\log p_F(x) = ` ``prior - log_det``, nats.
    prior : (N,) :math:`\log\mathcal N(z; 0, I)`.
    log_det : (N,) :math:`\log|\det\partial F/\partial z|`.
    folded : how many points have a negative Jacobian determinant (F folds space there).
    residual : (N,) :math:`\max_i |F(z)_i - x_i|` for :func:`sampler_log_density_at` (0 otherwise).
    """

    z: np.ndarray
    x: np.ndarray
    log_p: np.ndarray
    prior: np.ndarray
    log_det: np.ndarray
    folded: int
    residual: np.ndarray


@dataclass
class SamplerKL:
    r"""The exact :math:`\mathrm{KL}(p_F\,\|\,q)` of a sampler and its standard error, in nats.

    Attributes
    ----------
    kl : the mean of ``terms``; ``inf`` if q is 0 at a sample.
    se : ``std(terms) / sqrt(N)`` (``inf`` with an infinite KL).
    kl_cv : the control-variate estimate, the mean of :math:`\delta + e^{-\delta} - 1` (module docstring).
    se_cv : its standard error.
    ratio : the mean of :math:`e^{-\delta} = q / p_F`, 1 in expectation.
    ratio_se : its standard error.
    terms : (N,) :math:`\delta = \log p_F(x) - \log q(x)` at each sample (paired: subtract two samplers'
        terms on the same z to compare them).
    density : the :class:`SamplerDensity` behind it.
    """

    kl: float
    se: float
    kl_cv: float
    se_cv: float
    ratio: float
    ratio_se: float
    terms: np.ndarray
    density: SamplerDensity


def _run(sampler: Callable[[np.ndarray], np.ndarray], z: np.ndarray, name: str) -> np.ndarray:
    return check_sampler_output(sampler(z), z, name)


def _jacobian(sampler: Callable[[np.ndarray], np.ndarray], z: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    r"""F(z) (N, D) and its Jacobian (N, D, D), J[n, i, j] = dF_i / dz_j, by central differences."""
    N, D = z.shape
    steps = h * np.eye(D)  # (D, D)
    stacked = np.concatenate([z, *(z + steps[j] for j in range(D)), *(z - steps[j] for j in range(D))])  # (N(2D+1), D)
    out = _run(sampler, stacked, "sampler").reshape(2 * D + 1, N, D)
    J = ((out[1 : D + 1] - out[D + 1 :]) / (2.0 * h)).transpose(1, 2, 0)  # (N, D, D)
    return out[0], J


def _density(z: np.ndarray, x: np.ndarray, J: np.ndarray, residual: np.ndarray) -> SamplerDensity:
    sign, log_det = np.linalg.slogdet(J)  # (N,) each
    check_nonsingular(sign)
    prior = log_normal_diag_unchecked(z, 0.0, 0.0)  # (N,) log N(z; 0, I)
    return SamplerDensity(z=z, x=x, log_p=prior - log_det, prior=prior, log_det=log_det,
                          folded=int(np.sum(sign < 0.0)), residual=residual)


def sampler_log_density(sampler: Callable[[np.ndarray], np.ndarray], z: object, *, h: float = 1e-6) -> SamplerDensity:
    r"""The exact log-density :math:`\log p_F(F(z))` of a deterministic sampler's samples (module docstring).

    Parameters
    ----------
    sampler : F, a callable taking (M, D) noise and returning (M, D) samples, deterministic and smooth
        in z, e.g. ``lambda z: fast_sample(model, None, rng, x_T=z, denoise=False).x``.
    z : (N, D) starting noise.
    h : the step of the central differences (the sampler's rounding error over h against h^2 times
        its third derivative; see ``docs/measurements/samplers.md``).

    Returns
    -------
    :class:`SamplerDensity` at the N points.
    """
    sampler, z = check_sampler(sampler), as_batch(z, "z")
    h = real_scalar(h, "h", lo=1e-12, hi=1.0)  # below ~1e-12, z + h rounds to z for |z| ~ 1e4
    x, J = _jacobian(sampler, z, h)
    return _density(z, x, J, np.zeros(z.shape[0]))


def sampler_kl(sampler: Callable[[np.ndarray], np.ndarray], z: object, log_q: Callable[[np.ndarray], np.ndarray], *,
               h: float = 1e-6) -> SamplerKL:
    r"""The exact :math:`\mathrm{KL}(p_F\,\|\,q) = \mathbb E_z[\log p_F(F(z)) - \log q(F(z))]` and its standard error.

    Parameters
    ----------
    sampler : F, as in :func:`sampler_log_density`.
    z : (N, D) starting noise, N >= 2, drawn from N(0, I) by the caller.
    log_q : the true log-density, a callable taking (N, D) points and returning (N,) values
        (e.g. ``oracle.log_prob(x, t_min)``, the data at the sampler's last noise level).
    h : the central differences' step.

    Returns
    -------
    :class:`SamplerKL`.
    """
    sampler, z = check_sampler(sampler), as_batch(z, "z")
    log_q = check_log_q(log_q, z)
    density = sampler_log_density(sampler, z, h=h)
    lq = as_log_q_values(log_q(density.x), z.shape[0])  # (N,)
    terms = density.log_p - lq  # (N,) delta, +inf where q(x) = 0
    with np.errstate(over="ignore"):  # e^{-delta} beyond float64 (p_F below q by e^709): an infinite estimate
        ratio = np.exp(-terms)  # (N,) q / p_F
    (kl, se), (kl_cv, se_cv), (r, r_se) = (_mean_se(v) for v in (terms, terms + (ratio - 1.0), ratio))
    return SamplerKL(kl=kl, se=se, kl_cv=kl_cv, se_cv=se_cv, ratio=r, ratio_se=r_se, terms=terms, density=density)


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    if np.any(np.isinf(values)):
        return np.inf, np.inf
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))


def sampler_log_density_at(sampler: Callable[[np.ndarray], np.ndarray], x: object, z0: object, *, h: float = 1e-6,
                           tol: float = 1e-10, max_iter: int = 20) -> SamplerDensity:
    r""":math:`\log p_F(x)` at given samples: solve :math:`F(z) = x` by Newton's method from ``z0``, then change variables.

    .. math:: z_{k+1} = z_k - s_k\big(\partial F/\partial z\,(z_k)\big)^{-1}\,\big(F(z_k) - x\big)

    with the step :math:`s_k = 1, 1/2, 1/4, \dots`, the first that lowers the point's residual
    (damped Newton: a sampler of few steps bends space enough for a full step to overshoot).

    Parameters
    ----------
    sampler : F, as in :func:`sampler_log_density`.
    x : (N, D) samples, e.g. test points of the data.
    z0 : (N, D) a starting guess near the preimage, e.g. the probability flow's encoding of x.
    h : the central differences' step.
    tol : stop when every :math:`\max_i|F(z)_i - x_i|` is below it.
    max_iter : Newton iterations at most.

    Returns
    -------
    :class:`SamplerDensity` at the solution; its ``residual`` says how far F(z) stayed from x.
    """
    sampler = check_sampler(sampler)
    x, z = as_batches(x=x, z0=z0)
    z = z.copy()
    h = real_scalar(h, "h", lo=1e-12, hi=1.0)  # below ~1e-12, z + h rounds to z for |z| ~ 1e4
    tol = real_scalar(tol, "tol", lo=0.0, lo_open=True)
    max_iter = positive_int(max_iter, "max_iter", maximum=1000)
    fz, J = _jacobian(sampler, z, h)
    res = np.max(np.abs(fz - x), axis=1)  # (N,) residuals
    for _ in range(max_iter):
        if res.max() < tol:
            break
        try:
            dz = np.linalg.solve(J, (fz - x)[:, :, None])[:, :, 0]  # (N, D) one Newton step per point
        except np.linalg.LinAlgError:
            raise FloatingPointError("the sampler's Jacobian became singular during Newton's iterations") from None
        # damped: halve a point's step until its residual falls (a full step can leap to another preimage)
        step = np.where(res >= tol, 1.0, 0.0)  # (N,) converged points stay
        for _ in range(_HALVINGS):
            z_try = z - step[:, None] * dz
            res_try = np.max(np.abs(_run(sampler, z_try, "sampler") - x), axis=1)
            worse = (step > 0.0) & (res_try >= res)
            if not worse.any():
                break
            step = np.where(worse, 0.5 * step, step)
        z = z_try
        fz, J = _jacobian(sampler, z, h)
        res = np.max(np.abs(fz - x), axis=1)
    return _density(z, fz, J, res)
