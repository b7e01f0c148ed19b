r"""Gaussian-mixture data: the noised marginal is again a Gaussian mixture, with the same weights.

Each component :math:`\mathcal N(\mu_k, C_k)` diffuses on its own (the forward kernel is
linear-Gaussian), so

.. math::
    q_t(x) = \sum_k w_k\,\mathcal N\big(x;\ \sqrt{\bar\alpha}\,\mu_k,\ \bar\alpha C_k + \sigma^2 I\big).

With :math:`P_k = (\bar\alpha C_k + \sigma^2 I)^{-1}`, :math:`g_k = -P_k(x - \sqrt{\bar\alpha}\mu_k)`
and the posterior responsibilities :math:`r_k \propto w_k \mathcal N_k(x)`:

.. math::
    \nabla\log q_t = \sum_k r_k g_k = \bar g,\qquad
    \Delta\log q_t = \sum_k r_k\big(-\mathrm{tr}\,P_k + \lVert g_k\rVert^2\big) - \lVert\bar g\rVert^2 .

The loop over components is the Numba kernel ``_gmm_numba`` (with its NumPy twin) in
:mod:`npdiff.analytic._kernels`.
"""

from __future__ import annotations

import numpy as np

from .._check import as_float_array, as_generator, positive_int
from .._validate import check_schedule
from ..schedule import Schedule, vp_linear
from ._base import AnalyticOracle
from ._covariance import eigh_covariances
from ._kernels import gmm_eval


def check_weights(weights: object, name: str = "weights") -> np.ndarray:
    r"""Mixture weights: a 1-D non-negative array summing to 1 (within 1e-6), renormalized exactly."""
    w = as_float_array(weights, name)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of shape (K,), got shape {w.shape}")
    if np.any(w < 0.0):
        raise ValueError(f"{name} must be non-negative, got min {w.min()}")
    if abs(w.sum() - 1.0) > 1e-6:
        raise ValueError(f"{name} must sum to 1, got sum {w.sum()!r}")
    return w / w.sum()


class GaussianMixture(AnalyticOracle):
    r"""The oracle for data :math:`\sum_k w_k \mathcal N(\mu_k, C_k)` diffusing under ``schedule``.

    Parameters
    ----------
    weights : (K,) non-negative, summing to 1.
    means : (K, D).
    covs : (K, D, D) symmetric positive-definite covariances; (K, D) diagonal variances;
        (K,) isotropic variances; or a scalar isotropic variance shared by all components.
    schedule : Schedule or None (``vp_linear()``).
    labels : (K,) ints 0..C-1, the class of each component, or None: a labelled mixture is a
        conditional denoiser (:mod:`npdiff.analytic._base`, "Labels").

    Everything is defined at t = 0 too (the clean mixture; ``eps`` is 0 there).
    Components of zero weight are dropped.
    """

    def __init__(self, weights: object, means: object, covs: object, schedule: Schedule | None = None,
                 labels: object = None) -> None:
        w = check_weights(weights)
        mu = as_float_array(means, "means")
        if mu.ndim != 2 or mu.shape[0] != w.size or mu.shape[1] == 0:
            raise ValueError(f"means must have shape (K, D) = ({w.size}, D) to match weights, got shape {mu.shape}")
        K, D = mu.shape
        rot, lam, rotate = eigh_covariances(covs, K, D, "covs")
        keep = w > 0.0
        self.schedule = check_schedule(schedule, default=vp_linear())
        self.dim = D
        self.weights = w[keep]  # (K,)
        self.means = mu[keep]  # (K, D)
        self.covs = np.einsum("kde,ke,kfe->kdf", rot[keep], lam[keep], rot[keep])  # (K, D, D)
        self._log_w = np.log(self.weights)
        self._rot = np.ascontiguousarray(rot[keep]) if rotate else np.zeros((1, 1, 1))
        self._lam = np.ascontiguousarray(lam[keep])  # (K, D)
        self._rotate = rotate
        self._set_labels(labels, self.weights, keep)

    def _evaluate(self, x, sqrt_ab, alpha_bar, sigma2):
        return gmm_eval(x, sqrt_ab, alpha_bar, sigma2, self._log_w, self.means, self._rot, self._lam, self._rotate)

    def _restrict(self, mask):
        w = self.weights[mask]
        return GaussianMixture(w / w.sum(), self.means[mask], self.covs[mask], self.schedule)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        r"""Draw n clean points: a component k ~ w, then :math:`\mu_k + C_k^{1/2} z`, (n, D)."""
        return self._draw(positive_int(n, "n"), as_generator(rng))[0]

    def _draw(self, n, rng):
        k = rng.choice(self.weights.size, size=n, p=self.weights)  # (n,)
        z = rng.standard_normal((n, self.dim)) * np.sqrt(self._lam[k])  # (n, D)
        if self._rotate:
            z = np.einsum("nde,ne->nd", self._rot[k], z)
        return self.means[k] + z, k

    def __repr__(self) -> str:
        labels = f", classes={self.num_classes}" if self.num_classes else ""
        return f"GaussianMixture(K={self.weights.size}, dim={self.dim}{labels}, schedule={self.schedule!r})"
