r"""The residual block of the U-Net, with the time (and label) embedding as a scale and a shift (ADM).

For an input x (B, C, H, W) with O output channels and the block's view of the embedding
:math:`e` = SiLU(embedding) (B, T), shared by every block:

.. math::
    h_1 = \mathrm{conv}_1\big(\mathrm{SiLU}(\mathrm{GN}_1(x))\big),\qquad
    [\,s \mid t\,] = e\,W_e + b_e\ \ (B, 2O),

.. math::
    m = \mathrm{GN}_2(h_1)\odot(1 + s) + t,\qquad
    y = \mathrm{skip}(x) + \mathrm{conv}_2\big(\mathrm{SiLU}(m)\big)

with skip the identity when C = O and a 1x1 convolution otherwise (He et al. 2016's residual
connection; the Wide ResNet block of Ho et al. 2020). The embedding enters as the scale and shift of
the second normalization, ADM's ``use_scale_shift_norm`` (Dhariwal & Nichol 2021, Sec. 3, "adaptive
group normalization"), rather than as a bias added to h_1 (Ho et al. 2020). No dropout: the reference
computes one deterministic function.

Backward: the gradient runs down the two paths and adds up at x; the embedding's gradient
:math:`\bar e = [\bar s \mid \bar t]\,W_e^\top` with :math:`\bar s = \sum_{pixels}\bar m\odot\mathrm{GN}_2(h_1)`
and :math:`\bar t = \sum_{pixels}\bar m` is returned to the caller, which adds the blocks' contributions.
Tangent: the embedding does not depend on x, so s and t are constants of the forward mode,
:math:`\dot m = \dot{\mathrm{GN}}_2(\dot h_1)\odot(1 + s)`.
"""

from __future__ import annotations

import numpy as np

from ..activations import silu
from ..mlp import dense, dense_backward
from .conv import conv1x1, conv1x1_backward, conv1x1_tangent, conv3x3, conv3x3_backward, conv3x3_tangent
from .norm import group_norm, group_norm_backward, group_norm_tangent

__all__ = ["residual_block", "residual_block_backward", "residual_block_tangent", "silu_like"]


def silu_like(z):
    r"""SiLU and its derivative (:func:`npdiff.nn.activations.silu`) in the dtype of z, so a float32 network stays float32."""
    value, grad = silu(z)
    return value.astype(z.dtype, copy=False), grad.astype(z.dtype, copy=False)


def _pixels(v):
    return v[:, :, None, None]  # (B, O) -> (B, O, 1, 1): one value per image and channel


def residual_block(x, e, p, groups):
    r"""y (B, O, H, W) for x (B, C, H, W) and e = SiLU(embedding) (B, T); p holds the block's arrays
    ``norm1.*``, ``conv1.*``, ``emb.W`` (T, 2O), ``emb.b``, ``norm2.*``, ``conv2.*`` and, when C != O, ``skip.*``.
    Returns y and the cache the backward and the tangent read."""
    O = p["conv1.b"].shape[0]
    n1, norm1 = group_norm(x, p["norm1.gamma"], p["norm1.beta"], groups)
    a1, da1 = silu_like(n1)
    h1, cols1 = conv3x3(a1, p["conv1.W"], p["conv1.b"])
    st = dense(e, p["emb.W"], p["emb.b"])  # (B, 2O)
    s, t = st[:, :O], st[:, O:]
    n2, norm2 = group_norm(h1, p["norm2.gamma"], p["norm2.beta"], groups)
    a2, da2 = silu_like(n2 * (1.0 + _pixels(s)) + _pixels(t))
    h2, cols2 = conv3x3(a2, p["conv2.W"], p["conv2.b"])
    skip = conv1x1(x, p["skip.W"], p["skip.b"]) if "skip.W" in p else x
    cache = {"x": x, "e": e, "norm1": norm1, "da1": da1, "cols1": cols1, "s": s, "n2": n2, "norm2": norm2,
             "da2": da2, "cols2": cols2}
    return skip + h2, cache


def residual_block_backward(dy, cache, p):
    r"""Given dL/dy (B, O, H, W), the gradients of p (a dict with its keys), of x (B, C, H, W) and of e (B, T)."""
    c, g = cache, {}
    g["conv2.W"], g["conv2.b"], da = conv3x3_backward(dy, c["cols2"], p["conv2.W"], dy.shape)
    dm = da * c["da2"]  # (B, O, H, W)
    ds, dt = (dm * c["n2"]).sum(axis=(2, 3)), dm.sum(axis=(2, 3))  # (B, O) each
    g["emb.W"], g["emb.b"], de = dense_backward(np.concatenate([ds, dt], axis=1), c["e"], p["emb.W"])
    dh1 = dm * (1.0 + _pixels(c["s"]))
    g["norm2.gamma"], g["norm2.beta"], dh1 = group_norm_backward(dh1, c["norm2"], p["norm2.gamma"])
    g["conv1.W"], g["conv1.b"], da = conv3x3_backward(dh1, c["cols1"], p["conv1.W"], c["x"].shape)
    g["norm1.gamma"], g["norm1.beta"], dx = group_norm_backward(da * c["da1"], c["norm1"], p["norm1.gamma"])
    if "skip.W" in p:
        g["skip.W"], g["skip.b"], dskip = conv1x1_backward(dy, c["x"], p["skip.W"])
    else:
        dskip = dy
    return g, dx + dskip, de


def residual_block_tangent(x_dot, cache, p):
    r"""Tangent :math:`\dot y` (K, B, O, H, W) for K tangents x_dot (K, B, C, H, W); the embedding is held fixed."""
    c = cache
    a1_dot = c["da1"] * group_norm_tangent(x_dot, c["norm1"], p["norm1.gamma"])
    h1_dot = conv3x3_tangent(a1_dot, p["conv1.W"])
    a2_dot = c["da2"] * group_norm_tangent(h1_dot, c["norm2"], p["norm2.gamma"]) * (1.0 + _pixels(c["s"]))
    h2_dot = conv3x3_tangent(a2_dot, p["conv2.W"])
    skip_dot = conv1x1_tangent(x_dot, p["skip.W"]) if "skip.W" in p else x_dot
    return skip_dot + h2_dot
