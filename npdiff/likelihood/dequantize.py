r"""Continuous densities as likelihoods of K-level data: uniform dequantization and bits/dim.

Level v sits at :math:`x = 2v/(K-1) - 1` and owns the bin :math:`[x - \delta, x + \delta]`,
:math:`\delta = 1/(K-1)` (the convention of :mod:`npdiff.gaussian`). Adding
:math:`u \sim U(-\delta, \delta)^D` turns discrete data into continuous data, and for
any continuous density p (Theis et al. 2016, Sec. 3.1; Ho et al. 2019, Sec. 3.1):

.. math::
    \log P(v) = \log\int_{\text{bin}} p(x + u)\,du
      \;\ge\; \mathbb E_u[\log p(x + u)] + D\log(2\delta)

by Jensen's inequality; :math:`D\log(2\delta)` is the exact change of units from a density
to the probability of a bin of volume :math:`(2\delta)^D`. With S draws,
:math:`\log\frac1S\sum_s p(x + u_s) + D\log(2\delta)` is a tighter bound in expectation
(importance weighting, Burda et al. 2016, Thm. 1). :func:`dequantized_bpd` reports both;
the headline figure (``bpd``) is the tighter, log-mean-exp one.

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

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from .._check import as_float_array, as_generator, positive_int
from ..denoiser import Denoiser, as_denoiser_batch
from ._validate import as_level_batch
from .ode import ode_log_likelihood

__all__ = ["DIVERGED_RMS", "DequantizedLikelihood", "bin_log_volume", "density_to_bpd", "dequantize",
           "dequantized_bpd"]

#: A flow that ends at t_max with a root-mean-square size above this has run away (the prior N(0, I) puts it near 1).
DIVERGED_RMS = 30.0


def bin_log_volume(K: int, D: int) -> float:
    r""":math:`D\log(2/(K-1))`, the log-volume of one bin of K-level data in D dimensions."""
    K = positive_int(K, "K", minimum=2)
    D = positive_int(D, "D")
    return D * float(np.log(2.0 / (K - 1)))


def dequantize(x: object, K: int, rng: np.random.Generator | int) -> np.ndarray:
    r"""Add :math:`U(-\delta, \delta)` noise to K-level data x (B, D); checks x is on the levels."""
    x, K = as_level_batch(x, K)  # (B, D) on the levels
    rng = as_generator(rng)
    delta = 1.0 / (K - 1)
    return x + rng.uniform(-delta, delta, size=x.shape)


def density_to_bpd(log_p: object, K: int, D: int) -> np.ndarray:
    r"""Bits/dim of K-level data from a continuous log-density at dequantized points.

    .. math:: \mathrm{bpd} = -\frac{\log p + D\log(2/(K-1))}{D\ln 2}
    """
    # NaN passes through: dequantized_bpd marks a diverged solve with it; -inf is a zero density
    log_p = as_float_array(log_p, "log_p", allow_nonfinite=True)
    return -(log_p + bin_log_volume(K, D)) / (D * np.log(2.0))


@dataclass
class DequantizedLikelihood:
    r"""Result of :func:`dequantized_bpd`.

    Attributes
    ----------
    bpd : (B,) bits/dim from the log-mean-exp over draws (the tighter bound); NaN where diverged.
    bpd_mean : (B,) bits/dim from the mean of log p over draws (Jensen's bound); NaN where diverged.
    log_p : (S, B) continuous log-densities of each draw, in nats; NaN where that draw's solve diverged.
    diverged : (B,) bool, True where the solve of any draw failed or ran away.
    nfe : denoiser evaluations of the solves that finished, over all draws.
    """

    bpd: np.ndarray
    bpd_mean: np.ndarray
    log_p: np.ndarray
    diverged: np.ndarray
    nfe: int


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


def dequantized_bpd(
    denoiser: Denoiser,
    x: object,
    K: int,
    rng: np.random.Generator | int,
    *,
    draws: int = 1,
    **ode_kwargs: object,
) -> DequantizedLikelihood:
    r"""Bits/dim of K-level data x (B, D) under the probability-flow ODE of ``denoiser``.

    Each of ``draws`` dequantizations :math:`x + u_s` is scored by
    :func:`~npdiff.likelihood.ode_log_likelihood` (``ode_kwargs`` are passed on: ``t_min``,
    ``rtol``, ``atol``, ``batch_size``), and the draws are combined as

    .. math:: \mathrm{bpd} = -\frac{\log\frac1S\sum_s p(x + u_s) + D\log(2/(K-1))}{D\ln 2}

    (Burda et al. 2016, Thm. 1; Theis et al. 2016, Sec. 3.1). A point whose flow diverges in
    any draw (see the module's docstring) is flagged in ``diverged`` with NaN bits/dim.

    Raises
    ------
    FloatingPointError
        if the flow diverged for every point: there is no figure to report.
    """
    x = as_denoiser_batch(denoiser, x)
    draws = positive_int(draws, "draws")
    K = positive_int(K, "K", minimum=2)
    rng = as_generator(rng)
    B, D = x.shape
    log_p = np.empty((draws, B))  # (S, B)
    nfe = 0
    for s in range(draws):
        log_p[s], n = _log_p_or_nan(denoiser, dequantize(x, K, rng), ode_kwargs)
        nfe += n
    diverged = np.isnan(log_p).any(axis=0)  # (B,)
    if diverged.all():
        raise FloatingPointError(f"the likelihood ODE diverged for every point ({B} of {B}): the denoiser's flow runs away "
                                 "from them (or it returns NaN/Inf); there is no bits/dim to report")
    iw = logsumexp(np.where(diverged, 0.0, log_p), axis=0) - np.log(draws)  # (B,) log-mean-exp over draws
    bpd, bpd_mean = density_to_bpd(iw, K, D), density_to_bpd(log_p.mean(0), K, D)
    bpd[diverged] = np.nan
    return DequantizedLikelihood(bpd=bpd, bpd_mean=bpd_mean, log_p=log_p, diverged=diverged, nfe=nfe)
