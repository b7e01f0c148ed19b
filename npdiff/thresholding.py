r"""Thresholding of the predicted clean data :math:`\hat x_0` during sampling (Saharia et al. 2022, Sec. 2.3).

Images live in :math:`[-1, 1]^D` (the K-level convention of the design notes). Under strong guidance the
predicted :math:`\hat x_0` of a step leaves that range, and the sampler, which feeds :math:`\hat x_0` back
into the next state, drifts towards saturated images. Imagen's two remedies, applied to :math:`\hat x_0`
before the posterior mean :math:`\tilde\mu_t(x_t, \hat x_0)` (Ho et al. 2020, Eq. 7) is formed:

* ``"static"``: :math:`\hat x_0 \leftarrow \mathrm{clip}(\hat x_0, -1, 1)` (the clipping of Ho et al.'s
  reference code);
* ``"dynamic"``: per sample, :math:`s = \max\big(Q_p(\lvert\hat x_0\rvert), 1\big)` with :math:`Q_p` the
  p-th quantile of the sample's D absolute values (linear interpolation between order statistics, NumPy's
  and PyTorch's default), then :math:`\hat x_0 \leftarrow \mathrm{clip}(\hat x_0, -s, s) / s`. A sample
  whose p-th quantile lies inside [-1, 1] is left unchanged except its values beyond 1, which are clipped
  (s = 1 is static clipping); one above it is shrunk towards the range instead of flattened against its
  ends.

``"none"`` leaves :math:`\hat x_0` as the denoiser predicts it. The default p, 0.995
(:data:`IMAGEN_PERCENTILE`), is the value of the reference implementations that attribute it to Imagen
(diffusers' ``dynamic_thresholding_ratio``, DPM-Solver's code); the paper names a percentile without
printing it.

Thresholding makes the reverse step a different (nonlinear, and for ``"dynamic"`` non-local across a
sample's coordinates) map of :math:`x_t`: the sampler is no longer the discretization of the probability
flow or of the reverse SDE, so no exact density is claimed for its samples.
"""

from __future__ import annotations

import numpy as np

from ._check import as_batch
from ._validate import THRESHOLDS, check_threshold

__all__ = ["IMAGEN_PERCENTILE", "THRESHOLDS", "dynamic_threshold", "static_threshold", "threshold_x0",
           "threshold_x0_unchecked"]

#: the percentile p of dynamic thresholding, as a fraction in (0, 1)
IMAGEN_PERCENTILE = 0.995


def static_threshold(x0_hat: object) -> np.ndarray:
    r"""Static thresholding: :math:`\mathrm{clip}(\hat x_0, -1, 1)` (Saharia et al. 2022, Sec. 2.3).

    Parameters
    ----------
    x0_hat : (B, D) array
        Predicted clean data.

    Returns
    -------
    (B, D) array
        The prediction clipped to the data range [-1, 1].

    Examples
    --------
    >>> static_threshold([[0.5, -2.0, 3.0]])
    array([[ 0.5, -1. ,  1. ]])
    """
    return threshold_x0(x0_hat, "static")


def dynamic_threshold(x0_hat: object, percentile: float = IMAGEN_PERCENTILE) -> np.ndarray:
    r"""Dynamic thresholding (Saharia et al. 2022, Sec. 2.3), per sample (row).

    .. math::
        s = \max\big(Q_p(\lvert\hat x_0\rvert),\ 1\big),\qquad
        \hat x_0 \leftarrow \mathrm{clip}(\hat x_0, -s, s)\,/\,s

    with :math:`Q_p` the p-th quantile of the row's absolute values (linear interpolation).

    Parameters
    ----------
    x0_hat : (B, D) array
        Predicted clean data, one sample a row.
    percentile : float
        p, in (0, 1) (default :data:`IMAGEN_PERCENTILE`).

    Returns
    -------
    (B, D) array
        The thresholded prediction, in [-1, 1].

    Examples
    --------
    The first row's 0.75-quantile of the absolute values is 2.5 (a quarter of the way from 2 to 4): it is
    clipped to [-2.5, 2.5] and divided by 2.5; the second row's is below 1, so s = 1:

    >>> dynamic_threshold([[0.5, -1.0, 2.0, 4.0], [0.1, 0.2, -0.3, 1.5]], 0.75)
    array([[ 0.2, -0.4,  0.8,  1. ],
           [ 0.1,  0.2, -0.3,  1. ]])
    """
    return threshold_x0(x0_hat, "dynamic", percentile)


def threshold_x0(x0_hat: object, threshold: str, percentile: float = IMAGEN_PERCENTILE) -> np.ndarray:
    r"""Apply the thresholding ``threshold`` (one of :data:`THRESHOLDS`) to :math:`\hat x_0` (module docstring).

    Parameters
    ----------
    x0_hat : (B, D) array
        Predicted clean data, one sample a row.
    threshold : str
        ``"none"``, ``"static"`` or ``"dynamic"`` (:data:`THRESHOLDS`).
    percentile : float
        p of ``"dynamic"``, in (0, 1), checked for every method (a bad value is never silently ignored).

    Returns
    -------
    (B, D) array
        A new array (``"none"``: a copy).

    Examples
    --------
    >>> threshold_x0([[0.5, -2.0]], "none")
    array([[ 0.5, -2. ]])
    """
    threshold, percentile = check_threshold(threshold, percentile)
    x = as_batch(x0_hat, "x0_hat")
    return threshold_x0_unchecked(x.copy(), threshold, percentile)


def threshold_x0_unchecked(x0_hat: np.ndarray, threshold: str, percentile: float) -> np.ndarray:
    r""":func:`threshold_x0` on checked arguments (x0_hat (B, D) float64); a new array unless ``"none"``.

    Examples
    --------
    >>> import numpy as np
    >>> threshold_x0_unchecked(np.array([[2.0, -0.5]]), "static", 0.995)
    array([[ 1. , -0.5]])
    """
    if threshold == "none":
        return x0_hat
    if threshold == "static":
        return np.clip(x0_hat, -1.0, 1.0)
    s = np.maximum(np.quantile(np.abs(x0_hat), percentile, axis=1), 1.0)[:, None]  # (B, 1) Imagen's s, at least 1
    return np.clip(x0_hat, -s, s) / s
