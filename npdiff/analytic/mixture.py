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

from .._check import as_generator, positive_int
from .._validate import check_schedule
from ..schedule import Schedule, vp_linear
from ._base import AnalyticOracle
from ._kernels import gmm_eval, gmm_hvp
from ._validate import as_covariances, as_means, check_positive_definite, check_weights


def eigh_covariances(covs: object, K: int, D: int, name: str) -> tuple[np.ndarray, np.ndarray, bool]:
    r"""Check covariances of K components in D dimensions and diagonalize them.

    ``covs`` is a scalar variance shared by all components, (K,) isotropic variances,
    (K, D) diagonal variances or (K, D, D) full symmetric positive-definite matrices.
    For :math:`C = U\,\mathrm{diag}(\kappa)\,U^\top` (eigenvalues :math:`\kappa`) the noised covariance
    :math:`\bar\alpha C + \sigma^2 I = U\,\mathrm{diag}(\bar\alpha\kappa + \sigma^2)\,U^\top` has the
    same eigenvectors, so one eigendecomposition at construction serves every t.

    Returns
    -------
    rot : (K, D, D) array
        Eigenvectors (columns).
    eig : (K, D) array
        Eigenvalues.
    rotate : bool
        False when every covariance is diagonal (rot is the identity and may be skipped).
    """
    c = as_covariances(covs, K, D, name)  # (K, D) variances or (K, D, D) symmetric matrices
    if c.ndim == 2:
        return np.broadcast_to(np.eye(D), (K, D, D)).copy(), c, False
    eig, rot = np.linalg.eigh(0.5 * (c + np.swapaxes(c, 1, 2)))  # (K, D), (K, D, D)
    check_positive_definite(eig, name)
    return rot, eig, True


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
        mu = as_means(means, w.size)  # (K, D)
        K, D = mu.shape
        rot, eig, rotate = eigh_covariances(covs, K, D, "covs")
        keep = w > 0.0
        self.schedule = check_schedule(schedule, default=vp_linear())
        self.dim = D
        self.weights = w[keep]  # (K,)
        self.means = mu[keep]  # (K, D)
        self.covs = np.einsum("kde,ke,kfe->kdf", rot[keep], eig[keep], rot[keep])  # (K, D, D)
        self._log_w = np.log(self.weights)
        self._rot = np.ascontiguousarray(rot[keep]) if rotate else np.zeros((1, 1, 1))
        self._eig = np.ascontiguousarray(eig[keep])  # (K, D)
        self._rotate = rotate
        self._set_labels(labels, self.weights, keep)

    def _evaluate(self, x, sqrt_ab, alpha_bar, sigma2):
        return gmm_eval(x, sqrt_ab, alpha_bar, sigma2, self._log_w, self.means, self._rot, self._eig, self._rotate)

    def _hvp(self, x, sqrt_ab, alpha_bar, sigma2, v):
        return gmm_hvp(x, sqrt_ab, alpha_bar, sigma2, v, self._log_w, self.means, self._rot, self._eig, self._rotate)

    def _restrict(self, mask):
        w = self.weights[mask]
        return GaussianMixture(w / w.sum(), self.means[mask], self.covs[mask], self.schedule)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        r"""Draw n clean points: a component k ~ w, then :math:`\mu_k + C_k^{1/2} z`, (n, D)."""
        return self._draw(positive_int(n, "n"), as_generator(rng))[0]

    def _draw(self, n, rng):
        k = rng.choice(self.weights.size, size=n, p=self.weights)  # (n,)
        z = rng.standard_normal((n, self.dim)) * np.sqrt(self._eig[k])  # (n, D)
        if self._rotate:
            z = np.einsum("nde,ne->nd", self._rot[k], z)
        return self.means[k] + z, k

    def __repr__(self) -> str:
        labels = f", classes={self.num_classes}" if self.num_classes else ""
        return f"GaussianMixture(K={self.weights.size}, dim={self.dim}{labels}, schedule={self.schedule!r})"
