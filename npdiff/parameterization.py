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

from ._check import as_prediction_batch, one_of

__all__ = ["KINDS", "PREDICTIONS", "convert", "eps_coefficients", "from_eps", "prediction_target", "to_eps", "x0_from_eps"]

#: what a network may predict
PREDICTIONS = ("eps", "x0", "v")
#: everything the conversions speak: the predictions and the score
KINDS = (*PREDICTIONS, "score")


def eps_coefficients(kind: str, alpha: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""The noise as a linear function of a prediction: :math:`\epsilon = c_x\,x_t + c_p\,\hat y`.

    With :math:`\alpha = \sqrt{\bar\alpha}` and :math:`\sigma = \sqrt{1 - \bar\alpha}`:

    ========  ==========================================  =================  ======================
    kind      from                                        :math:`c_x`        :math:`c_p`
    ========  ==========================================  =================  ======================
    eps       --                                          0                  1
    x0        :math:`x_t = \alpha x_0 + \sigma\epsilon`   :math:`1/\sigma`   :math:`-\alpha/\sigma`
    v         :math:`v = \alpha\epsilon - \sigma x_0`     :math:`\sigma`      :math:`\alpha`
    score     :math:`s = -\epsilon/\sigma`                  0                  :math:`-\sigma`
    ========  ==========================================  =================  ======================

    (v: Salimans & Ho 2022, Sec. 4, using :math:`\alpha^2 + \sigma^2 = 1`.) The map is linear in
    the prediction, so it carries a Jacobian's trace as well:
    :math:`\mathrm{tr}\,\partial\epsilon/\partial x_t = c_x D + c_p\,\mathrm{tr}\,\partial\hat y/\partial x_t`.
    Callers pass ``alpha`` and ``sigma`` already checked (the trained model computes them from its
    schedule).

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    alpha : (B, 1) array or float
        :math:`\sqrt{\bar\alpha}`, broadcasting against the prediction.
    sigma : (B, 1) array or float
        :math:`\sqrt{1 - \bar\alpha}`.

    Returns
    -------
    c_x : array of sigma's shape
        The coefficient of :math:`x_t`.
    c_p : array of sigma's shape
        The coefficient of the prediction.

    Examples
    --------
    >>> import numpy as np
    >>> c_x, c_p = eps_coefficients("v", np.array([[0.8]]), np.array([[0.6]]))
    >>> print(c_x, c_p)
    [[0.6]] [[0.8]]
    """
    kind = one_of(kind, "kind", KINDS)
    if kind == "eps":
        return np.zeros_like(sigma), np.ones_like(sigma)
    if kind == "x0":
        return 1.0 / sigma, -alpha / sigma
    if kind == "v":
        return sigma, alpha
    return np.zeros_like(sigma), -sigma


def x0_from_eps(xt: np.ndarray, eps: np.ndarray, alpha: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    r"""The clean data a noise prediction implies: :math:`\hat x_0 = (x_t - \sigma\hat\epsilon)/\alpha`.

    Ho et al. 2020, Eq. 15; with the exact noise :math:`\mathbb E[\epsilon \mid x_t]` it is Tweedie's
    :math:`\mathbb E[x_0 \mid x_t]` (Efron 2011). The formula only: the samplers call it at every step
    on what they have checked.

    Parameters
    ----------
    xt : (B, D) array
        The noised data.
    eps : (B, D) array
        The predicted noise.
    alpha : (B, 1) array or float
        :math:`\sqrt{\bar\alpha}`.
    sigma : (B, 1) array or float
        :math:`\sqrt{1 - \bar\alpha}`.

    Returns
    -------
    (B, D) array
        :math:`\hat x_0`.

    Examples
    --------
    >>> import numpy as np
    >>> print(np.round(x0_from_eps(np.array([[0.3, -0.2]]), np.array([[0.5, 1.0]]), 0.8, 0.6), 4))
    [[ 0. -1.]]
    """
    return (xt - sigma * eps) / alpha


def prediction_target(kind: str, x0: np.ndarray, eps: np.ndarray, alpha: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    r"""What a network of ``kind`` should output for :math:`x_t = \alpha x_0 + \sigma\epsilon`: its regression target.

    :math:`\epsilon`, :math:`x_0`, :math:`v = \alpha\epsilon - \sigma x_0` (Salimans & Ho 2022, Sec. 4) or the
    conditional score :math:`-\epsilon/\sigma`.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    x0 : (B, D) array
        The clean data.
    eps : (B, D) array
        The noise.
    alpha : (B, 1) array or float
        :math:`\sqrt{\bar\alpha}`.
    sigma : (B, 1) array or float
        :math:`\sqrt{1 - \bar\alpha}`.

    Returns
    -------
    (B, D) array
        The target.

    Examples
    --------
    >>> import numpy as np
    >>> print(np.round(prediction_target("v", np.array([[1.0, 0.0]]), np.array([[0.5, 1.0]]), 0.8, 0.6), 4))
    [[-0.2  0.8]]
    """
    kind = one_of(kind, "kind", KINDS)
    if kind == "eps":
        return eps
    if kind == "x0":
        return x0
    if kind == "v":
        return alpha * eps - sigma * x0
    return -eps / sigma


def _alpha_sigma(alpha_bar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.sqrt(alpha_bar), np.sqrt(1.0 - alpha_bar)


def to_eps(pred: object, kind: str, xt: object, alpha_bar: object) -> np.ndarray:
    r"""Turn a prediction of ``kind`` into the noise :math:`\epsilon` (coefficients: :func:`eps_coefficients`).

    .. math::
        \epsilon = \frac{x_t - \sqrt{\bar\alpha}\,\hat x_0}{\sigma},\quad
        \epsilon = \sigma x_t + \sqrt{\bar\alpha}\,\hat v,\quad
        \epsilon = -\sigma\,\hat s

    Parameters
    ----------
    pred : (B, D) array
        The prediction.
    kind : str
        What it predicts, one of :data:`KINDS`.
    xt : (B, D) array
        The noised data it was made at.
    alpha_bar : (B, 1) array or float
        :math:`\bar\alpha` in (0, 1).

    Returns
    -------
    (B, D) array
        :math:`\epsilon`.

    Examples
    --------
    >>> import numpy as np
    >>> x0_hat, xt = np.array([[0.1, -0.2]]), np.array([[0.3, -0.2]])
    >>> print(np.round(to_eps(x0_hat, "x0", xt, 0.64), 4))
    [[ 0.3667 -0.0667]]
    """
    pred, xt, ab = as_prediction_batch(pred, xt, alpha_bar)
    c_x, c_p = eps_coefficients(kind, *_alpha_sigma(ab))
    return c_x * xt + c_p * pred


def from_eps(eps: object, kind: str, xt: object, alpha_bar: object) -> np.ndarray:
    r"""Turn the noise :math:`\epsilon` into a prediction of ``kind``: the inverse of :func:`to_eps`.

    .. math::
        \hat x_0 = \frac{x_t - \sigma\epsilon}{\sqrt{\bar\alpha}}\ \text{(Ho et al. 2020, Eq. 15)},\quad
        v = \sqrt{\bar\alpha}\,\epsilon - \sigma\hat x_0,\quad
        s = -\epsilon / \sigma

    Parameters
    ----------
    eps : (B, D) array
        The noise.
    kind : str
        What to turn it into, one of :data:`KINDS`.
    xt : (B, D) array
        The noised data.
    alpha_bar : (B, 1) array or float
        :math:`\bar\alpha` in (0, 1).

    Returns
    -------
    (B, D) array
        The prediction of ``kind``.

    Examples
    --------
    >>> import numpy as np
    >>> print(np.round(from_eps(np.array([[0.5, 1.0]]), "v", np.array([[0.3, -0.2]]), 0.64), 4))
    [[0.4 1.4]]
    """
    eps, xt, ab = as_prediction_batch(eps, xt, alpha_bar)
    alpha, sigma = _alpha_sigma(ab)
    return prediction_target(kind, x0_from_eps(xt, eps, alpha, sigma), eps, alpha, sigma).copy()


def convert(pred: object, source: str, target: str, xt: object, alpha_bar: object) -> np.ndarray:
    r"""Convert a prediction from ``source`` to ``target`` kind (any of :data:`KINDS`), through eps.

    Parameters
    ----------
    pred : (B, D) array
        The prediction.
    source : str
        What it predicts.
    target : str
        What to convert it to.
    xt : (B, D) array
        The noised data.
    alpha_bar : (B, 1) array or float
        :math:`\bar\alpha` in (0, 1).

    Returns
    -------
    (B, D) array
        The prediction of ``target``.

    Examples
    --------
    >>> import numpy as np
    >>> print(np.round(convert(np.array([[0.1, -0.2]]), "x0", "v", np.array([[0.3, -0.2]]), 0.64), 4))
    [[0.2333 0.0667]]
    """
    one_of(source, "source", KINDS), one_of(target, "target", KINDS)
    return from_eps(to_eps(pred, source, xt, alpha_bar), target, xt, alpha_bar)
