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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from .._check import as_batch, as_float_array, as_generator, positive_int
from ..denoiser import Denoiser
from ..gaussian import data_to_levels
from .ode import ode_log_likelihood

__all__ = ["DequantizedLikelihood", "bin_log_volume", "density_to_bpd", "dequantize", "dequantized_bpd"]


def bin_log_volume(K: int, D: int) -> float:
    r""":math:`D\log(2/(K-1))`, the log-volume of one bin of K-level data in D dimensions."""
    K = positive_int(K, "K", minimum=2)
    D = positive_int(D, "D")
    return D * float(np.log(2.0 / (K - 1)))


def dequantize(x: object, K: int, rng: np.random.Generator) -> np.ndarray:
    r"""Add :math:`U(-\delta, \delta)` noise to K-level data x (B, D); checks x is on the levels."""
    x = as_batch(x, "x")
    K = positive_int(K, "K", minimum=2)
    data_to_levels(x, K)
    rng = as_generator(rng)
    delta = 1.0 / (K - 1)
    return x + rng.uniform(-delta, delta, size=x.shape)


def density_to_bpd(log_p: object, K: int, D: int) -> np.ndarray:
    r"""Bits/dim of K-level data from a continuous log-density at dequantized points.

    .. math:: \mathrm{bpd} = -\frac{\log p + D\log(2/(K-1))}{D\ln 2}
    """
    # NaN passes through: callers mark a diverged solve with it (npdiff.cli.image_nll); -inf is a zero density
    log_p = as_float_array(log_p, "log_p", allow_nonfinite=True)
    return -(log_p + bin_log_volume(K, D)) / (D * np.log(2.0))


@dataclass
class DequantizedLikelihood:
    r"""Result of :func:`dequantized_bpd`.

    Attributes
    ----------
    bpd : (B,) bits/dim from the log-mean-exp over draws (the tighter bound).
    bpd_mean : (B,) bits/dim from the mean of log p over draws (Jensen's bound).
    log_p : (S, B) continuous log-densities of each draw, in nats.
    nfe : denoiser evaluations over all draws.
    """

    bpd: np.ndarray
    bpd_mean: np.ndarray
    log_p: np.ndarray
    nfe: int


def dequantized_bpd(
    denoiser: Denoiser,
    x: object,
    K: int,
    rng: np.random.Generator,
    *,
    draws: int = 1,
    **ode_kwargs: object,
) -> DequantizedLikelihood:
    r"""Bits/dim of K-level data x (B, D) under the probability-flow ODE of ``denoiser``.

    Each of ``draws`` dequantizations is scored by :func:`~npdiff.likelihood.ode_log_likelihood`
    (``ode_kwargs`` are passed on: ``t_min``, ``rtol``, ``atol``, ``batch_size``).
    """
    x = as_batch(x, "x")
    draws = positive_int(draws, "draws")
    K = positive_int(K, "K", minimum=2)
    D = x.shape[1]
    log_p = np.empty((draws, x.shape[0]))  # (S, B)
    nfe = 0
    for s in range(draws):
        res = ode_log_likelihood(denoiser, dequantize(x, K, rng), **ode_kwargs)  # type: ignore[arg-type]
        log_p[s] = res.log_p
        nfe += res.nfe
    iw = logsumexp(log_p, axis=0) - np.log(draws)
    return DequantizedLikelihood(bpd=density_to_bpd(iw, K, D), bpd_mean=density_to_bpd(log_p.mean(0), K, D),
                                 log_p=log_p, nfe=nfe)
