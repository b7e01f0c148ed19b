r"""Gaussian data :math:`x_0 \sim \mathcal N(\mu, C)`: every quantity of the diffusion in closed form.

The forward process :math:`x_t = \sqrt{\bar\alpha}\,x_0 + \sigma\,\epsilon` (Ho et al. 2020, Eq. 4)
maps a Gaussian to a Gaussian:

.. math::
    q_t = \mathcal N\big(\sqrt{\bar\alpha}\,\mu,\; \Sigma_t\big),\qquad \Sigma_t = \bar\alpha C + \sigma^2 I,

    \nabla\log q_t(x) = -\Sigma_t^{-1}(x - \sqrt{\bar\alpha}\mu),\qquad
    \Delta\log q_t = -\mathrm{tr}\,\Sigma_t^{-1},

    \mathbb E[x_0 \mid x_t = x] = \mu + \sqrt{\bar\alpha}\,C\,\Sigma_t^{-1}(x - \sqrt{\bar\alpha}\mu)

(Gaussian conditioning; Bishop 2006, Eq. 2.116). All are computed in the eigenbasis of C,
shared by every :math:`\Sigma_t` (see :func:`npdiff.analytic.mixture.eigh_covariances`).
"""

from __future__ import annotations

import numpy as np

from .._check import as_generator, positive_int
from .._validate import check_schedule
from ..schedule import Schedule, vp_linear
from ._base import AnalyticOracle
from ._kernels import LOG_2PI
from ._validate import as_gaussian_mean
from .mixture import eigh_covariances


class GaussianData(AnalyticOracle):
    r"""The oracle for Gaussian data :math:`\mathcal N(\mu, C)` diffusing under ``schedule``.

    Parameters
    ----------
    mean : (D,) mean :math:`\mu`.
    cov : (D, D) symmetric positive-definite covariance, (D,) diagonal variances, or a
        scalar isotropic variance.
    schedule : Schedule or None (``vp_linear()``).

    Everything is defined at t = 0 too (the clean Gaussian; ``eps`` is 0 there).
    """

    def __init__(self, mean: object, cov: object, schedule: Schedule | None = None) -> None:
        mu, c = as_gaussian_mean(mean, cov)  # (D,), and a scalar, (D,) or (D, D)
        D = mu.size
        rot, eig, _ = eigh_covariances(c[None] if c.ndim else c, 1, D, "cov")
        self.schedule = check_schedule(schedule, default=vp_linear())
        self.dim = D
        self.mean = mu
        self.cov = (rot[0] * eig[0]) @ rot[0].T if c.ndim != 2 else 0.5 * (c + c.T)  # (D, D)
        self._rot = rot[0]  # (D, D), columns are eigenvectors
        self._eig = eig[0]  # (D,)

    def _evaluate(self, x, sqrt_ab, alpha_bar, sigma2):
        y = (x - sqrt_ab[:, None] * self.mean) @ self._rot  # (B, D) in the eigenbasis
        d = alpha_bar[:, None] * self._eig + sigma2[:, None]  # (B, D) eigenvalues of Sigma_t
        log_prob = -0.5 * (np.sum(y * y / d, axis=1) + np.sum(np.log(d), axis=1) + self.dim * LOG_2PI)
        score = -(y / d) @ self._rot.T  # (B, D)
        laplacian = -np.sum(1.0 / d, axis=1)
        return log_prob, score, laplacian

    def _hvp(self, x, sqrt_ab, alpha_bar, sigma2, v):
        # the Hessian of log q_t is -Sigma_t^{-1} = -U diag(1/d) U^T at every x
        y = (x - sqrt_ab[:, None] * self.mean) @ self._rot  # (B, D)
        d = alpha_bar[:, None] * self._eig + sigma2[:, None]  # (B, D)
        score = -(y / d) @ self._rot.T
        return score, -((v @ self._rot) / d[:, None, :]) @ self._rot.T  # (B, T, D)

    def x0_mean(self, x: object, t: object) -> np.ndarray:
        r""":math:`\mathbb E[x_0|x_t=x] = \mu + \sqrt{\bar\alpha} C \Sigma_t^{-1}(x - \sqrt{\bar\alpha}\mu)`, (B, D).

        Gaussian conditioning directly, rather than Tweedie's formula, so it stays accurate
        where :math:`\bar\alpha` is tiny; defined for every t (it is :math:`\mu` where
        :math:`\bar\alpha = 0`).
        """
        x, sqrt_ab, alpha_bar, sigma2, _ = self._levels(x, t, None, "x0_mean", needs_noise=False)
        y = (x - sqrt_ab[:, None] * self.mean) @ self._rot  # (B, D)
        d = alpha_bar[:, None] * self._eig + sigma2[:, None]
        return self.mean + (y * (sqrt_ab[:, None] * self._eig / d)) @ self._rot.T

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        r"""Draw n clean points :math:`x_0 = \mu + U\,\mathrm{diag}(\sqrt\kappa)\,z`, (n, D)."""
        n = positive_int(n, "n")
        rng = as_generator(rng)
        z = rng.standard_normal((n, self.dim))  # (n, D)
        return self.mean + (z * np.sqrt(self._eig)) @ self._rot.T

    def __repr__(self) -> str:
        return f"GaussianData(dim={self.dim}, schedule={self.schedule!r})"
