r"""Checking covariances and writing them in the eigenbasis the noised marginals share.

For :math:`C = U\,\mathrm{diag}(\lambda)\,U^\top` the noised covariance
:math:`\bar\alpha C + \sigma^2 I = U\,\mathrm{diag}(\bar\alpha\lambda + \sigma^2)\,U^\top` has the
same eigenvectors, so one eigendecomposition at construction serves every t, and each query
may carry its own t at no extra cost.
"""

from __future__ import annotations

import numpy as np

from .._check import as_float_array

# An eigenvalue below this fraction of the largest one is a singular covariance in float64.
_MIN_EIG_RATIO = 1e-12


def eigh_covariances(covs: object, K: int, D: int, name: str) -> tuple[np.ndarray, np.ndarray, bool]:
    r"""Check covariances of K components in D dimensions and diagonalize them.

    ``covs`` is a scalar variance shared by all components, (K,) isotropic variances,
    (K, D) diagonal variances or (K, D, D) full symmetric positive-definite matrices.

    Returns
    -------
    rot : (K, D, D) eigenvectors (columns). lam : (K, D) eigenvalues.
    rotate : False when every covariance is diagonal (rot is the identity and may be skipped).
    """
    c = as_float_array(covs, name)
    if c.ndim == 0 or c.shape == (K,) or c.shape == (K, D):
        var = np.broadcast_to(c.reshape(c.shape + (1,) * (2 - c.ndim)) if c.ndim < 2 else c, (K, D))
        var = np.array(var, dtype=np.float64)
        if np.any(var <= 0.0):
            k = int(np.argwhere(var <= 0.0)[0][0])
            raise ValueError(f"{name} must be positive variances, got {var[k].min()} for component {k}")
        return np.broadcast_to(np.eye(D), (K, D, D)).copy(), var, False
    if c.shape != (K, D, D):
        raise ValueError(
            f"{name} must be a scalar variance, ({K},) isotropic variances, ({K}, {D}) diagonal variances "
            f"or ({K}, {D}, {D}) full covariances, got shape {c.shape}"
        )
    scale = np.max(np.abs(c), axis=(1, 2))  # (K,)
    asym = np.max(np.abs(c - np.swapaxes(c, 1, 2)), axis=(1, 2))
    if np.any(asym > 1e-10 * np.maximum(scale, 1e-300)):
        k = int(np.argmax(asym / np.maximum(scale, 1e-300)))
        raise ValueError(f"{name}[{k}] must be symmetric, got max |C - C^T| = {asym[k]:.3e}")
    lam, rot = np.linalg.eigh(0.5 * (c + np.swapaxes(c, 1, 2)))  # (K, D), (K, D, D)
    bad = lam.min(axis=1) <= _MIN_EIG_RATIO * np.maximum(lam.max(axis=1), 0.0)
    if np.any(bad):
        k = int(np.argmax(bad))
        raise ValueError(
            f"{name}[{k}] must be positive definite, got smallest eigenvalue {lam[k].min():.3e} "
            f"(largest {lam[k].max():.3e})"
        )
    return rot, lam, True
