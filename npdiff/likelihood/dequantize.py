r"""Continuous densities as likelihoods of K-level data: dequantization and bits/dim.

Level v sits at :math:`x = 2v/(K-1) - 1` and owns the bin :math:`[x - \delta, x + \delta]`,
:math:`\delta = 1/(K-1)` (the convention of :mod:`npdiff.gaussian`). Adding noise
:math:`u \sim q` supported on :math:`[-\delta, \delta]^D` turns discrete data into continuous data,
and for any continuous density p (Theis et al. 2016, Sec. 3.1; Ho et al. 2019, Sec. 3.1):

.. math::
    \log P(v) = \log\int_{\text{bin}} p(x + u)\,du
      = \log \mathbb E_{u \sim q}\Big[\frac{p(x + u)}{q(u)}\Big]
      \;\ge\; \mathbb E_{u \sim q}\big[\log p(x + u) - \log q(u)\big]

by Jensen's inequality; with S draws,
:math:`\log\frac1S\sum_s p(x + u_s)/q(u_s)` is a tighter bound in expectation, non-decreasing in S
(importance weighting, Burda et al. 2016, Thm. 1; Hoogeboom et al. 2020). Two noises q
(:data:`~npdiff.likelihood.DEQUANTIZATIONS`, density :func:`dequantization_log_density`):

- ``"uniform"``: :math:`q = U(-\delta, \delta)^D`, :math:`-\log q(u) = D\log(2\delta)`, the exact change
  of units from a density to the probability of a bin of volume :math:`(2\delta)^D`;
- ``"truncated_normal"``: :math:`q = \mathcal N(0, s^2)` truncated to the bin, per pixel,

  .. math:: \log q(u) = -\frac{u^2}{2s^2} - \log\big(\sqrt{2\pi}\,s\big)
      - \log\operatorname{erf}\Big(\frac{\delta}{\sqrt2\,s}\Big),\qquad |u| \le \delta,

  with :math:`s = \sigma(t_0)/\sqrt{\bar\alpha(t_0)}` by default, the forward process's noise in data units at
  the time :math:`t_0` where the likelihood starts (Zheng et al. 2023, Sec. 4.3, "training-free
  truncated-normal dequantization"): :math:`x + u` is then distributed as :math:`x_{t_0}/\sqrt{\bar\alpha(t_0)}`
  given :math:`x_0 = x`, conditioned to stay in the bin, which is what a model trained on undequantized data
  has learned to score at :math:`t_0`.

:func:`dequantized_bpd` scores with the probability-flow ODE's exact density, :func:`dequantized_vlb_bpd` with
the variational bound of a chain on the dequantized data (Gaussian decoder density). Both report the tighter,
log-mean-exp figure (``bpd``) and Jensen's (``bpd_mean``).

A density uniform over the union of the bins, :math:`((K-1)/(2K))^D`, scores exactly
:math:`\log_2 K` bits per dimension.

**Diverged solves.** A learned flow can run away from a point it has not learned (an
image unlike the training set): the solve overflows, or ends far outside the prior.
When a batch's solve fails, :func:`dequantized_bpd` solves each of its points alone, so
one runaway point costs only itself; a point whose own solve fails, or whose flow ends at
a root-mean-square size above :data:`DIVERGED_RMS`, is flagged ``diverged`` and gets NaN
bits/dim, never a number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import erf, erfinv, logsumexp

from .._check import as_batch, as_float_array, as_generator, positive_int, real_scalar
from .._validate import check_schedule
from ..denoiser import Denoiser, as_denoiser_batch
from ..reverse_variance import EpsMoments
from ..schedule import Schedule
from ._validate import DEQUANTIZATIONS, as_level_batch, check_dequantization, check_draws_scale
from .ode import ode_log_likelihood
from .vlb import bound_chain, vlb

__all__ = ["DEQUANTIZATIONS", "DIVERGED_RMS", "DequantizedLikelihood", "bin_log_volume", "check_dequantization",
           "density_to_bpd", "dequantization_log_density", "dequantize", "dequantized_bpd", "dequantized_vlb_bpd",
           "truncated_normal_scale"]

#: A flow that ends at t_max with a root-mean-square size above this has run away (the prior N(0, I) puts it near 1).
DIVERGED_RMS = 30.0


def bin_log_volume(K: int, D: int) -> float:
    r""":math:`D\log(2/(K-1))`, the log-volume of one bin of K-level data in D dimensions."""
    K = positive_int(K, "K", minimum=2)
    D = positive_int(D, "D")
    return D * float(np.log(2.0 / (K - 1)))


def truncated_normal_scale(schedule: Schedule, t: float) -> float:
    r"""The truncated normal's scale at time t: :math:`s = \sigma(t)/\sqrt{\bar\alpha(t)}` (Zheng et al. 2023, Sec. 4.3).

    The forward process's noise at t in the units of the data: :math:`x_t/\sqrt{\bar\alpha(t)} = x_0 + s\,\epsilon`.

    Examples
    --------
    >>> from npdiff.schedule import vp_linear
    >>> round(truncated_normal_scale(vp_linear(), 1e-3), 5)
    0.0105
    """
    schedule = check_schedule(schedule)
    t = real_scalar(t, "t", lo=0.0, hi=float(schedule.t_max), lo_open=True)
    return float(np.exp(0.5 * (np.log(-np.expm1(schedule.log_alpha_bar(t))) - schedule.log_alpha_bar(t))))


def _log_density(u: np.ndarray, delta: float, dequantization: str, scale: float | None) -> np.ndarray:
    r"""(B,) :math:`\log q(u)` of offsets u (B, D) (module docstring); -inf where an offset leaves the bin."""
    D = u.shape[1]
    inside = np.all(np.abs(u) <= delta, axis=1)  # (B,)
    if dequantization == "uniform":
        log_q = np.full(u.shape[0], -D * np.log(2.0 * delta))  # (B,) -log q = D log(2 delta)
    else:
        # N(0, s^2) truncated to [-delta, delta]: its mass there is erf(delta / (sqrt(2) s))
        with np.errstate(over="ignore"):  # delta / s = inf for a tiny s: erf(inf) = 1, the untruncated normal
            log_norm = 0.5 * np.log(2.0 * np.pi) + np.log(scale) + np.log(erf(delta / (np.sqrt(2.0) * scale)))
            z = u / scale  # (B, D) in units of s, so that s^2 never underflows
        log_q = -0.5 * np.sum(z**2, axis=1) - D * log_norm  # (B,)
    return np.where(inside, log_q, -np.inf)


def _offsets(shape: tuple[int, int], delta: float, rng: np.random.Generator, dequantization: str,
             scale: float | None) -> np.ndarray:
    r"""(B, D) offsets :math:`u \sim q` inside the bins."""
    if dequantization == "uniform":
        return rng.uniform(-delta, delta, size=shape)
    # inverse CDF of the symmetric truncated normal: u = s sqrt(2) erfinv(erf(tau / sqrt 2) (2w - 1)), tau = delta / s
    w = rng.random(shape)  # (B, D) in [0, 1)
    with np.errstate(over="ignore"):  # delta / s = inf for a tiny s: erf(inf) = 1
        u = scale * np.sqrt(2.0) * erfinv(erf(delta / (np.sqrt(2.0) * scale)) * (2.0 * w - 1.0))
    return np.clip(u, -delta, delta)  # erfinv(+-1) = +-inf when erf rounds to 1: the bin's edge


def dequantization_log_density(u: object, K: int, dequantization: str = "uniform", scale: float | None = None) -> np.ndarray:
    r"""The log-density :math:`\log q(u)` of dequantization offsets, per point (module docstring).

    Parameters
    ----------
    u : (B, D) array
        Offsets from the levels; -inf where one leaves its bin :math:`[-\delta, \delta]`.
    K : int
        Number of levels, :math:`\delta = 1/(K-1)`.
    dequantization : str
        ``"uniform"`` or ``"truncated_normal"``.
    scale : float or None
        The truncated normal's :math:`s` (required for it).

    Returns
    -------
    (B,) float64 log-densities, nats.

    Examples
    --------
    >>> import numpy as np
    >>> float(dequantization_log_density(np.zeros((1, 2)), 17)[0]) == -2 * np.log(2 / 16)
    True
    """
    u = as_batch(u, "u")  # (B, D) offsets
    K = positive_int(K, "K", minimum=2)
    dequantization, scale = check_dequantization(dequantization, scale, required=True)
    return _log_density(u, 1.0 / (K - 1), dequantization, scale)


def dequantize(x: object, K: int, rng: np.random.Generator | int, dequantization: str = "uniform",
               scale: float | None = None) -> np.ndarray:
    r"""K-level data x (B, D) plus dequantization noise :math:`u \sim q` (module docstring); checks x is on the levels.

    ``"uniform"`` draws :math:`U(-\delta, \delta)`; ``"truncated_normal"`` needs its ``scale`` :math:`s`.
    """
    x, K = as_level_batch(x, K)  # (B, D) on the levels
    rng = as_generator(rng)
    dequantization, scale = check_dequantization(dequantization, scale, required=True)
    return x + _offsets(x.shape, 1.0 / (K - 1), rng, dequantization, scale)


def density_to_bpd(log_p: object, K: int, D: int) -> np.ndarray:
    r"""Bits/dim of K-level data from a continuous log-density at uniformly dequantized points.

    .. math:: \mathrm{bpd} = -\frac{\log p + D\log(2/(K-1))}{D\ln 2}
    """
    # NaN passes through: dequantized_bpd marks a diverged solve with it; -inf is a zero density
    log_p = as_float_array(log_p, "log_p", allow_nonfinite=True)
    return -(log_p + bin_log_volume(K, D)) / (D * np.log(2.0))


@dataclass
class DequantizedLikelihood:
    r"""Result of :func:`dequantized_bpd` and :func:`dequantized_vlb_bpd`.

    Attributes
    ----------
    bpd : (B,) bits/dim from the log-mean-exp over draws (the tighter bound); NaN where diverged.
    bpd_mean : (B,) bits/dim from the mean of :math:`\log p - \log q` over draws (Jensen's bound); NaN where diverged.
    log_p : (S, B) continuous log-densities of each draw, in nats (the bound's :math:`-L` for
        :func:`dequantized_vlb_bpd`); NaN where that draw's solve diverged.
    diverged : (B,) bool, True where the solve of any draw failed or ran away.
    nfe : denoiser evaluations of the solves that finished, over all draws.
    log_q : (S, B) the dequantization's log-density of each draw's offsets, nats.
    dequantization : the noise, one of :data:`~npdiff.likelihood.DEQUANTIZATIONS`.
    scale : the truncated normal's scale :math:`s`, or None.
    D : dimensions per point (bits/dim divide by :math:`D\ln 2`).
    """

    bpd: np.ndarray
    bpd_mean: np.ndarray
    log_p: np.ndarray
    diverged: np.ndarray
    nfe: int
    log_q: np.ndarray | None = None
    dequantization: str = "uniform"
    scale: float | None = None
    D: int | None = None

    def bpd_of_draws(self, draws: int) -> np.ndarray:
        r"""(B,) the log-mean-exp bound from the first ``draws`` draws only (NaN where diverged).

        The figures at S = 1, 4, 16 from one run of 16 draws are then paired: each S reuses the draws of the smaller.
        """
        draws = positive_int(draws, "draws", maximum=self.log_p.shape[0])
        return _iw_bpd(self.log_p[:draws] - self.log_q[:draws], self.diverged, self.D)


def _iw_bpd(log_w: np.ndarray, diverged: np.ndarray, D: int) -> np.ndarray:
    r"""(B,) :math:`-\log\frac1S\sum_s w_s / (D\ln 2)` over draws of :math:`\log w = \log p - \log q` (S, B)."""
    S = log_w.shape[0]
    bpd = -(logsumexp(np.where(diverged, 0.0, log_w), axis=0) - np.log(S)) / (D * np.log(2.0))  # (B,) Burda et al.
    bpd[diverged] = np.nan
    return bpd


def _combine(log_p: np.ndarray, log_q: np.ndarray, D: int, nfe: int, dequantization: str,
             scale: float | None) -> DequantizedLikelihood:
    diverged = np.isnan(log_p).any(axis=0)  # (B,)
    B = log_p.shape[1]
    if diverged.all():
        raise FloatingPointError(f"the likelihood ODE diverged for every point ({B} of {B}): the denoiser's flow runs away "
                                 "from them (or it returns NaN/Inf); there is no bits/dim to report")
    log_w = log_p - log_q  # (S, B) log p(x + u) - log q(u)
    bpd = _iw_bpd(log_w, diverged, D)
    bpd_mean = -log_w.mean(axis=0) / (D * np.log(2.0))  # (B,) NaN where a draw diverged
    return DequantizedLikelihood(bpd=bpd, bpd_mean=bpd_mean, log_p=log_p, diverged=diverged, nfe=nfe, log_q=log_q,
                                 dequantization=dequantization, scale=scale, D=D)


def _log_p_or_nan(denoiser: Denoiser, x: np.ndarray, ode_kwargs: dict) -> tuple[np.ndarray, int]:
    r"""Per-point :math:`\log p` (B,) of one dequantized batch, NaN where the flow diverged, and nfe."""
    B = x.shape[0]
    try:
        parts = [(np.arange(B), ode_log_likelihood(denoiser, x, **ode_kwargs))]
    except FloatingPointError:
        parts = []
        if B > 1:  # one runaway point fails its whole chunk: solve each point alone, so that it costs only itself
            for i in range(B):
                try:
                    parts.append((np.array([i]), ode_log_likelihood(denoiser, x[i : i + 1], **ode_kwargs)))
                except FloatingPointError:
                    continue  # this point's own flow diverged: it stays NaN
    log_p = np.full(B, np.nan)  # (B,)
    for rows, res in parts:
        runaway = np.sqrt(np.mean(res.x_end**2, axis=1)) > DIVERGED_RMS  # finite, but far outside the prior
        log_p[rows] = np.where(runaway, np.nan, res.log_p)
    return log_p, sum(res.nfe for _, res in parts)


def _draws(x: np.ndarray, K: int, rng: np.random.Generator, draws: int, dequantization: str, scale: float,
           log_p_of: Callable[[np.ndarray], tuple[np.ndarray, int]]) -> DequantizedLikelihood:
    r"""Score ``draws`` dequantizations of x (B, D): for each, u ~ q, then ``log_p_of(x + u)``; combine them."""
    B, D = x.shape
    delta = 1.0 / (K - 1)
    log_p, log_q = np.empty((draws, B)), np.empty((draws, B))  # (S, B) each
    nfe = 0
    for s in range(draws):
        u = _offsets(x.shape, delta, rng, dequantization, scale)  # (B, D) first the offsets, then the estimator's noise
        log_q[s] = _log_density(u, delta, dequantization, scale)
        log_p[s], n = log_p_of(x + u)
        nfe += n
    return _combine(log_p, log_q, D, nfe, dequantization, scale if dequantization != "uniform" else None)


def dequantized_bpd(
    denoiser: Denoiser,
    x: object,
    K: int,
    rng: np.random.Generator | int,
    *,
    draws: int = 1,
    dequantization: str = "uniform",
    scale: float | None = None,
    **ode_kwargs: object,
) -> DequantizedLikelihood:
    r"""Bits/dim of K-level data x (B, D) under the probability-flow ODE of ``denoiser``.

    Each of ``draws`` dequantizations :math:`x + u_s`, :math:`u_s \sim q`, is scored by
    :func:`~npdiff.likelihood.ode_log_likelihood` (``ode_kwargs`` are passed on: ``t_min``,
    ``rtol``, ``atol``, ``batch_size``, ``progress``), and the draws are combined as

    .. math:: \mathrm{bpd} = -\frac{1}{D\ln 2}\log\frac1S\sum_s \frac{p(x + u_s)}{q(u_s)}

    (Burda et al. 2016, Thm. 1; Theis et al. 2016, Sec. 3.1; for the uniform q,
    :math:`-\log q = D\log(2/(K-1))`). A point whose flow diverges in any draw (see the module's
    docstring) is flagged in ``diverged`` with NaN bits/dim.

    Parameters
    ----------
    denoiser : follows the denoiser protocol.
    x : (B, D) data on the K levels.
    K : number of levels.
    rng : draws the offsets, one (B, D) array per draw, in order.
    draws : S >= 1.
    dequantization : ``"uniform"`` or ``"truncated_normal"`` (:data:`~npdiff.likelihood.DEQUANTIZATIONS`).
    scale : the truncated normal's :math:`s`; None: :func:`truncated_normal_scale` at the flow's ``t_min``.

    Raises
    ------
    FloatingPointError
        if the flow diverged for every point: there is no figure to report.
    """
    x = as_denoiser_batch(denoiser, x)
    draws, dequantization, scale = check_draws_scale(draws, dequantization, scale)
    x, K = as_level_batch(x, K)
    rng = as_generator(rng)
    if dequantization == "truncated_normal" and scale is None:
        scale = truncated_normal_scale(denoiser.schedule, ode_kwargs.get("t_min", 1e-5))
    return _draws(x, K, rng, draws, dequantization, scale, lambda y: _log_p_or_nan(denoiser, y, ode_kwargs))


def dequantized_vlb_bpd(
    denoiser: Denoiser,
    x: object,
    K: int,
    rng: np.random.Generator | int,
    *,
    draws: int = 1,
    dequantization: str = "uniform",
    scale: float | None = None,
    T: int = 1000,
    variance: str = "large",
    eps_moments: EpsMoments | None = None,
    steps: int | Sequence[int] | None = None,
    times: object | None = None,
    progress: bool = False,
) -> DequantizedLikelihood:
    r"""Bits/dim of K-level data x (B, D) by the variational bound of the chain on dequantized data.

    The chain's bound :math:`L(y)` (:func:`~npdiff.likelihood.vlb` with a Gaussian decoder density, ``K=None``)
    bounds :math:`-\log p(y)` of the continuous :math:`y = x + u`; with the module's inequality,

    .. math:: -\log P(v) \le -\log\frac1S\sum_s \exp\big(-L(x + u_s) - \log q(u_s)\big)

    in expectation, S draws :math:`u_s \sim q`. This is what the network was trained on when it was trained on
    dequantized data; the bound of :func:`~npdiff.likelihood.vlb` with ``K`` scores the levels themselves through the
    discretized decoder instead. For S = 1 the inequality holds for any estimate of L that is unbiased; for S > 1
    it holds for the exact :math:`\mathbb E\,L`, and the one-draw-per-term Monte Carlo noise of L adds an upward
    bias to the log-mean-exp of at most half its variance.

    Parameters
    ----------
    denoiser : follows the denoiser protocol.
    x : (B, D) data on the K levels.
    K : number of levels.
    rng : draws each dequantization's offsets, then that draw's :math:`x_t`.
    draws : S >= 1.
    dequantization : ``"uniform"`` or ``"truncated_normal"``.
    scale : the truncated normal's :math:`s`; None: :func:`truncated_normal_scale` at the chain's first time.
    T : steps of the chain (:func:`~npdiff.likelihood.vlb`).
    variance : the reverse variance.
    eps_moments : what ``"analytic"`` needs.
    steps : respace the chain of T steps (:func:`~npdiff.likelihood.vlb`).
    times : a chain through these times instead (:func:`~npdiff.likelihood.vlb`).
    progress : a bar per draw.
    """
    x = as_denoiser_batch(denoiser, x)
    draws, dequantization, scale = check_draws_scale(draws, dequantization, scale)
    x, K = as_level_batch(x, K)
    rng = as_generator(rng)

    def minus_bound(y: np.ndarray) -> tuple[np.ndarray, int]:
        res = vlb(denoiser, y, T, rng=rng, variance=variance, eps_moments=eps_moments, steps=steps, times=times,
                  progress=progress)
        return -res.total, res.nfe

    chain = bound_chain(denoiser.schedule, T, steps, times)  # its errors before any work
    if dequantization == "truncated_normal" and scale is None:
        scale = truncated_normal_scale(denoiser.schedule, float(chain.times[1]))
    return _draws(x, K, rng, draws, dequantization, scale, minus_bound)
