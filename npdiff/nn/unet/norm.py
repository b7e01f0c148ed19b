r"""Group normalization (Wu & He 2018): each image's channels in G groups, each group to mean 0 and variance 1.

For one image and one group g of n = (C/G) H W values,

.. math:: \hat x = \frac{x - \mu_g}{\sqrt{\sigma_g^2 + \varepsilon}},\qquad y_c = \gamma_c\,\hat x_c + \beta_c

(Wu & He 2018, Eqs. 1-2; PyTorch's ``GroupNorm(G, C)``, :math:`\varepsilon = 10^{-5}`). Unlike batch
normalization it never mixes the rows of a batch, so a denoiser's answer for one image does not depend
on the others, and the Jacobian with respect to an image stays within that image.

**Backward and tangent share one operator.** Within a group, with :math:`s = 1/\sqrt{\sigma^2 + \varepsilon}`,

.. math:: \frac{\partial\hat x}{\partial x} = s\Big(I - \tfrac1n \mathbf 1\mathbf 1^\top - \tfrac1n \hat x\hat x^\top\Big)

which is symmetric, so the same map :math:`g \mapsto s\,(g - \overline{g} - \hat x\,\overline{g\hat x})`
(bars: means over the group) turns :math:`\bar{\hat x} = \gamma\bar y` into :math:`\bar x` (reverse mode)
and a tangent :math:`\dot x` into :math:`\dot{\hat x}` (forward mode). The scale and shift gradients are
:math:`\bar\gamma_c = \sum \bar y_c\,\hat x_c` and :math:`\bar\beta_c = \sum \bar y_c` over the batch and pixels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GN_EPS", "group_norm", "group_norm_backward", "group_norm_tangent", "normalization_jacobian"]

#: the variance floor of PyTorch's GroupNorm
GN_EPS = 1e-5


def _channel(v):
    return v[:, None, None]  # (C,) -> (C, 1, 1): broadcasts over the pixels of NCHW


def group_norm(x, gamma, beta, groups):
    r"""y = gamma x_hat + beta for x (B, C, H, W), gamma and beta (C,).

    Returns y and the cache (x_hat (B, C, H, W), s (B, G, 1)) that the backward and the tangent read.
    """
    B, C, H, W = x.shape
    xg = x.reshape(B, groups, -1)  # (B, G, n)
    mu = xg.mean(axis=-1, keepdims=True)
    s = 1.0 / np.sqrt(xg.var(axis=-1, keepdims=True) + GN_EPS)  # (B, G, 1)
    x_hat = ((xg - mu) * s).reshape(B, C, H, W)
    return x_hat * _channel(gamma) + _channel(beta), (x_hat, s)


def normalization_jacobian(g, x_hat, s):
    r""":math:`s\,(g - \overline{g} - \hat x\,\overline{g\hat x})` group by group: the symmetric Jacobian of x_hat applied to g.

    g : (..., B, C, H, W), any leading axes (K tangents). x_hat (B, C, H, W) and s (B, G, 1) from :func:`group_norm`.
    """
    B, G = s.shape[:2]
    gg = g.reshape(*g.shape[:-3], G, -1)  # (..., B, G, n)
    xg = x_hat.reshape(B, G, -1)
    out = s * (gg - gg.mean(axis=-1, keepdims=True) - xg * (gg * xg).mean(axis=-1, keepdims=True))
    return out.reshape(g.shape)


def group_norm_backward(dy, cache, gamma):
    r"""Given dL/dy (B, C, H, W), the gradients of gamma (C,), beta (C,) and x (B, C, H, W)."""
    x_hat, s = cache
    dgamma = (dy * x_hat).sum(axis=(0, 2, 3))
    dbeta = dy.sum(axis=(0, 2, 3))
    return dgamma, dbeta, normalization_jacobian(dy * _channel(gamma), x_hat, s)


def group_norm_tangent(x_dot, cache, gamma):
    r"""Tangent :math:`\dot y = \gamma\,\dot{\hat x}` for K tangents (K, B, C, H, W)."""
    x_hat, s = cache
    return normalization_jacobian(x_dot, x_hat, s) * _channel(gamma)
