r"""What a network predicts: noise, clean data, velocity or score, and the maps between them.

With :math:`x_t = \sqrt{\bar\alpha}\,x_0 + \sigma\,\epsilon` and :math:`\sigma = \sqrt{1-\bar\alpha}`:

* ``"eps"``: the noise :math:`\epsilon` (Ho et al. 2020, Eq. 11);
* ``"x0"``: the clean data :math:`x_0` (Ho et al. 2020, Sec. 3.2, "predicting x_0");
* ``"v"``: the velocity :math:`v = \sqrt{\bar\alpha}\,\epsilon - \sigma x_0` (Salimans & Ho 2022, Sec. 4);
* ``"score"``: :math:`\nabla_{x_t}\log q(x_t|x_0) = -\epsilon / \sigma` (Song et al. 2021, Eq. 17
  uses its expectation, the score of the marginal).

Every map is linear in the prediction given :math:`x_t` and :math:`\bar\alpha`, so it applies
equally to a network's output and to the exact quantities. ``diffusers`` calls this choice
``prediction_type`` (``"epsilon"``, ``"sample"``, ``"v_prediction"``).
"""

from __future__ import annotations

import numpy as np

from ._check import as_float_array, same_shape

__all__ = ["KINDS", "convert", "from_eps", "to_eps"]

KINDS = ("eps", "x0", "v", "score")


def _check(pred: object, xt: object, alpha_bar: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = as_float_array(pred, "pred")
    xt = as_float_array(xt, "xt")
    same_shape(pred, xt, "pred", "xt")
    ab = as_float_array(alpha_bar, "alpha_bar")
    if ab.size and (ab.min() <= 0.0 or ab.max() >= 1.0):
        raise ValueError(
            f"alpha_bar must lie in (0, 1) for the conversions to be defined, got values in [{ab.min()}, {ab.max()}]"
        )
    try:
        np.broadcast_shapes(ab.shape, xt.shape)
    except ValueError:
        raise ValueError(
            f"alpha_bar of shape {ab.shape} does not broadcast against xt of shape {xt.shape}; use shape (B, 1)"
        ) from None
    if np.broadcast_shapes(ab.shape, xt.shape) != xt.shape:
        raise ValueError(f"alpha_bar of shape {ab.shape} would enlarge xt of shape {xt.shape}; use shape (B, 1)")
    return pred, xt, ab


def _kind(kind: object, name: str) -> str:
    if not isinstance(kind, str) or kind not in KINDS:  # an array would make `in` elementwise
        raise ValueError(f"{name} must be one of {KINDS}, got {kind!r}")
    return kind  # type: ignore[return-value]


def to_eps(pred: object, kind: str, xt: object, alpha_bar: object) -> np.ndarray:
    r"""Turn a prediction of ``kind`` into the noise :math:`\epsilon`.

    .. math::
        \epsilon = \frac{x_t - \sqrt{\bar\alpha}\,\hat x_0}{\sigma},\quad
        \epsilon = \sigma x_t + \sqrt{\bar\alpha}\,\hat v,\quad
        \epsilon = -\sigma\,\hat s

    Parameters
    ----------
    pred, xt : (B, D) arrays. alpha_bar : (B, 1) or a scalar in (0, 1).
    """
    pred, xt, ab = _check(pred, xt, alpha_bar)
    kind = _kind(kind, "kind")
    a, s = np.sqrt(ab), np.sqrt(1.0 - ab)
    if kind == "eps":
        return pred.copy()
    if kind == "x0":
        return (xt - a * pred) / s
    if kind == "v":
        return s * xt + a * pred  # Salimans & Ho 2022, from v = a eps - s x0 and x_t = a x0 + s eps
    return -s * pred


def from_eps(eps: object, kind: str, xt: object, alpha_bar: object) -> np.ndarray:
    r"""Turn the noise :math:`\epsilon` into a prediction of ``kind``.

    .. math::
        \hat x_0 = \frac{x_t - \sigma\epsilon}{\sqrt{\bar\alpha}}\ \text{(Ho et al. 2020, Eq. 15)},\quad
        v = \sqrt{\bar\alpha}\,\epsilon - \sigma\hat x_0,\quad
        s = -\epsilon / \sigma
    """
    eps, xt, ab = _check(eps, xt, alpha_bar)
    kind = _kind(kind, "kind")
    a, s = np.sqrt(ab), np.sqrt(1.0 - ab)
    if kind == "eps":
        return eps.copy()
    if kind == "x0":
        return (xt - s * eps) / a
    if kind == "v":
        x0 = (xt - s * eps) / a
        return a * eps - s * x0
    return -eps / s


def convert(pred: object, source: str, target: str, xt: object, alpha_bar: object) -> np.ndarray:
    r"""Convert a prediction from ``source`` to ``target`` kind (any of :data:`KINDS`), through eps."""
    _kind(source, "source")
    _kind(target, "target")
    return from_eps(to_eps(pred, source, xt, alpha_bar), target, xt, alpha_bar)
