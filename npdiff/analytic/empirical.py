r"""Empirical data: the uniform mixture of Dirac masses at N training points.

Its noised marginal is a mixture of N isotropic Gaussians of variance :math:`\sigma^2`,

.. math::
    q_t(x) = \frac1N\sum_i \mathcal N\big(x;\ \sqrt{\bar\alpha}\,p_i,\ \sigma^2 I\big),

and with the posterior weights :math:`r_i \propto \exp(-\lVert x - \sqrt{\bar\alpha} p_i\rVert^2 / 2\sigma^2)`,
:math:`m = \sum_i r_i p_i` and :math:`V = \sum_i r_i \lVert p_i - m\rVert^2`:

.. math::
    \mathbb E[x_0 \mid x_t = x] = m,\qquad
    \nabla\log q_t = \frac{\sqrt{\bar\alpha}\,m - x}{\sigma^2},\qquad
    \Delta\log q_t = \frac{\bar\alpha\,V}{\sigma^4} - \frac{D}{\sigma^2}.

The optimal denoiser therefore returns a convex combination of training points: as
:math:`t \to 0` it snaps to the nearest one, which is why a perfectly trained model
memorizes its training set (Karras et al. 2022, Sec. 3; the tutorials show it).

The loop over the N points is the Numba kernel ``_empirical_numba`` (a streaming
log-sum-exp per query; memory O(B D), so 10,000 points by 10,000 queries never builds a
10^8 x D array). Where :math:`\sigma(t) = 0` nothing here is defined and every method
raises ``ValueError``.
"""

from __future__ import annotations

import numpy as np

from .._check import as_batch, as_generator, positive_int
from .._validate import check_schedule
from ..schedule import Schedule, vp_linear
from ._base import AnalyticOracle
from ._kernels import LOG_2PI, empirical_eval, empirical_hvp


class EmpiricalData(AnalyticOracle):
    r"""The oracle for the empirical distribution of ``points`` (N, D) diffusing under ``schedule``.

    Parameters
    ----------
    points : (N, D) training points, each of weight 1/N.
    schedule : Schedule or None (``vp_linear()``).
    """

    _needs_noise = True
    _log_prob_needs_noise = True

    def __init__(self, points: object, schedule: Schedule | None = None) -> None:
        self.points = np.ascontiguousarray(as_batch(points, "points"))  # (N, D)
        self.schedule = check_schedule(schedule, default=vp_linear())
        self.dim = self.points.shape[1]

    def _posterior(self, x, sqrt_ab, sigma2):
        return empirical_eval(x, sqrt_ab, sigma2, self.points)

    def _evaluate(self, x, sqrt_ab, alpha_bar, sigma2):
        log_sum, mean, spread = self._posterior(x, sqrt_ab, sigma2)
        N, D = self.points.shape
        log_prob = log_sum - np.log(N) - 0.5 * D * (LOG_2PI + np.log(sigma2))
        score = (sqrt_ab[:, None] * mean - x) / sigma2[:, None]  # (B, D)
        laplacian = alpha_bar * spread / sigma2**2 - D / sigma2
        return log_prob, score, laplacian

    def _hvp(self, x, sqrt_ab, alpha_bar, sigma2, v):
        # d mean / dx = sqrt_ab Cov_r[p] / sigma^2, so H = alpha_bar Cov_r[p] / sigma^4 - I / sigma^2
        mean, cov_v = empirical_hvp(x, sqrt_ab, sigma2, v, self.points)
        score = (sqrt_ab[:, None] * mean - x) / sigma2[:, None]
        return score, (alpha_bar / sigma2**2)[:, None, None] * cov_v - v / sigma2[:, None, None]

    def x0_mean(self, x: object, t: object) -> np.ndarray:
        r""":math:`\mathbb E[x_0|x_t=x] = \sum_i r_i p_i`, the posterior mean of the training points, (B, D)."""
        x, sqrt_ab, _, sigma2, _ = self._levels(x, t, None, "x0_mean", needs_noise=True)
        return self._posterior(x, sqrt_ab, sigma2)[1]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        r"""Draw n training points uniformly with replacement, (n, D)."""
        n = positive_int(n, "n")
        rng = as_generator(rng)
        return self.points[rng.integers(0, self.points.shape[0], size=n)]

    def __repr__(self) -> str:
        return f"EmpiricalData(N={self.points.shape[0]}, dim={self.dim}, schedule={self.schedule!r})"
