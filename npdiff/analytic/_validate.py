r"""Checks of the oracles' arguments: weights, means, covariances, labels and where a density exists.

The oracles' modules call these at their door, in a line each, and then compute.
"""

from __future__ import annotations

import numpy as np

from .._check import as_float_array, as_integers

__all__ = [
    "as_component_labels",
    "as_covariances",
    "as_gaussian_mean",
    "as_means",
    "check_has_labels",
    "check_noise",
    "check_positive_definite",
    "check_tweedie",
    "check_weights",
]

# An eigenvalue below this fraction of the largest one is a singular covariance in float64.
MIN_EIG_RATIO = 1e-12
# Below this, x + sigma^2 score (of order 1e-16 |x| in rounding) divided by sqrt(alpha_bar)
# no longer gives E[x0|x_t] to 1e-8 (cosine reaches it only beyond its t_max).
MIN_ALPHA_BAR_TWEEDIE = 1e-16


def check_weights(weights: object, name: str = "weights") -> np.ndarray:
    r"""Mixture weights: a non-empty (K,) array, non-negative, summing to 1 (within 1e-6)."""
    w = as_float_array(weights, name)
    if w.ndim != 1 or w.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of shape (K,), got shape {w.shape}")
    if np.any(w < 0.0):
        raise ValueError(f"{name} must be non-negative, got min {w.min()}")
    if abs(w.sum() - 1.0) > 1e-6:
        raise ValueError(f"{name} must sum to 1, got sum {w.sum()!r}")
    return w


def as_means(means: object, K: int) -> np.ndarray:
    r"""The (K, D) means of K components, D >= 1."""
    mu = as_float_array(means, "means")
    if mu.ndim != 2 or mu.shape[0] != K or mu.shape[1] == 0:
        raise ValueError(f"means must have shape (K, D) = ({K}, D) to match weights, got shape {mu.shape}")
    return mu


def as_gaussian_mean(mean: object, cov: object) -> tuple[np.ndarray, np.ndarray]:
    r"""A Gaussian's mean (D,) and its covariance as a scalar, (D,) variances or a (D, D) matrix."""
    mu, c = as_float_array(mean, "mean"), as_float_array(cov, "cov")
    if mu.ndim != 1 or mu.size == 0:
        raise ValueError(f"mean must be a 1-D array of shape (D,), got shape {mu.shape}")
    D = mu.size
    if c.ndim == 2 and c.shape != (D, D):
        raise ValueError(f"cov must be ({D}, {D}) to match mean of shape ({D},), got shape {c.shape}")
    if c.ndim == 1 and c.shape != (D,):
        raise ValueError(f"cov as diagonal variances must have shape ({D},), got shape {c.shape}")
    if c.ndim > 2:
        raise ValueError(f"cov must be a scalar, (D,) or (D, D), got shape {c.shape}")
    return mu, c


def as_covariances(covs: object, K: int, D: int, name: str) -> np.ndarray:
    r"""Covariances of K components in D dimensions: (K, D) positive variances, or (K, D, D) symmetric matrices.

    ``covs`` may be a scalar variance shared by all components, (K,) isotropic variances, (K, D)
    diagonal variances or (K, D, D) full matrices; the first three are returned as (K, D).
    """
    c = as_float_array(covs, name)
    if c.ndim == 0 or c.shape == (K,) or c.shape == (K, D):
        var = np.array(np.broadcast_to(c.reshape(c.shape + (1,) * (2 - c.ndim)) if c.ndim < 2 else c, (K, D)))
        if np.any(var <= 0.0):
            k = int(np.argwhere(var <= 0.0)[0][0])
            raise ValueError(f"{name} must be positive variances, got {var[k].min()} for component {k}")
        return var
    if c.shape != (K, D, D):
        raise ValueError(f"{name} must be a scalar variance, ({K},) isotropic variances, ({K}, {D}) diagonal variances "
                         f"or ({K}, {D}, {D}) full covariances, got shape {c.shape}")
    scale = np.maximum(np.max(np.abs(c), axis=(1, 2)), 1e-300)  # (K,)
    asym = np.max(np.abs(c - np.swapaxes(c, 1, 2)), axis=(1, 2)) / scale
    if np.any(asym > 1e-10):
        k = int(np.argmax(asym))
        raise ValueError(f"{name}[{k}] must be symmetric, got max |C - C^T| = {asym[k] * scale[k]:.3e}")
    return c


def check_positive_definite(eig: np.ndarray, name: str) -> None:
    r"""Eigenvalues (K, D) of K covariances: each one's smallest above :data:`MIN_EIG_RATIO` times its largest."""
    bad = eig.min(axis=1) <= MIN_EIG_RATIO * np.maximum(eig.max(axis=1), 0.0)
    if np.any(bad):
        k = int(np.argmax(bad))
        raise ValueError(f"{name}[{k}] must be positive definite, got smallest eigenvalue {eig[k].min():.3e} "
                         f"(largest {eig[k].max():.3e})")


def as_component_labels(labels: object, weights: np.ndarray, keep: np.ndarray) -> np.ndarray:
    r"""One label per component (ints in 0..C-1), each class on a component of positive weight; the kept ones."""
    lab = as_integers(labels, "labels", lo=0, hi=np.iinfo(np.int32).max)
    if lab.shape != keep.shape:
        raise ValueError(f"labels must have shape {keep.shape}, one per component, got {lab.shape}")
    pi = np.bincount(lab[keep], weights=weights, minlength=int(lab[keep].max()) + 1)  # (C,)
    if np.any(pi <= 0.0):
        raise ValueError(f"labels must use every class 0..{pi.size - 1} on a component of positive weight; "
                         f"classes {np.flatnonzero(pi <= 0.0).tolist()} have none")
    return lab[keep]


def check_has_labels(oracle: object, what: str) -> None:
    r"""A method that needs the classes of a labelled oracle (``num_classes`` > 0)."""
    if oracle.num_classes == 0:
        raise ValueError(f"{type(oracle).__name__} has no labels: build it with labels=... to use {what}")


def check_noise(oracle: object, t: np.ndarray, sigma2: np.ndarray, what: str) -> None:
    r"""Refuse times where :math:`\sigma(t) = 0` for a quantity the clean distribution does not define."""
    if np.any(sigma2 <= 0.0):
        raise ValueError(f"{type(oracle).__name__}.{what} is undefined at t where sigma(t) = 0 (got t = "
                         f"{t[sigma2 <= 0.0][0]}): the clean distribution has no smooth density there; use t > 0")


def check_tweedie(oracle: object, alpha_bar: np.ndarray) -> None:
    r"""Refuse Tweedie's formula where :math:`\bar\alpha(t)` < :data:`MIN_ALPHA_BAR_TWEEDIE` (no information on x_0)."""
    if np.any(alpha_bar < MIN_ALPHA_BAR_TWEEDIE):
        raise ValueError(f"{type(oracle).__name__}.x0_mean by Tweedie's formula is meaningless where alpha_bar(t) < "
                         f"{MIN_ALPHA_BAR_TWEEDIE:g} (got {alpha_bar.min():.3g}): it would divide rounding error by "
                         f"sqrt(alpha_bar); use t <= schedule.t_max = {oracle.schedule.t_max}")
