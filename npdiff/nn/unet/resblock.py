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

Each normalization with its SiLU (and the second one's scale and shift) is one step of
:mod:`~npdiff.nn.unet.norm_act`, forward, backward and tangent.
"""

from __future__ import annotations

import numpy as np

from ..mlp import dense, dense_backward
from .conv import conv1x1, conv1x1_backward, conv1x1_tangent, conv3x3, conv3x3_backward, conv3x3_tangent
from .norm_act import PASSES

__all__ = ["residual_block", "residual_block_backward", "residual_block_tangent"]

# a = SiLU(GN(x) (1 + s) + t) and its backward and tangent: the formulas of npdiff.nn.unet.norm_act, each
# run as one fused kernel when Numba's JIT is on (tested equal to the formulas)
_norm_silu, _norm_silu_backward, _norm_silu_tangent = PASSES


def residual_block(x, e, p, groups):
    r"""y (B, O, H, W) for x (B, C, H, W) and e = SiLU(embedding) (B, T); p holds the block's arrays
    ``norm1.*``, ``conv1.*``, ``emb.W`` (T, 2O), ``emb.b``, ``norm2.*``, ``conv2.*`` and, when C != O, ``skip.*``.
    Returns y and the cache the backward and the tangent read."""
    O = p["conv1.b"].shape[0]
    a1, da1, norm1 = _norm_silu(x, p["norm1.gamma"], p["norm1.beta"], groups)
    h1, cols1 = conv3x3(a1, p["conv1.W"], p["conv1.b"])
    st = dense(e, p["emb.W"], p["emb.b"])  # (B, 2O)
    s, t = st[:, :O], st[:, O:]
    a2, da2, norm2 = _norm_silu(h1, p["norm2.gamma"], p["norm2.beta"], groups, s, t)  # SiLU(GN_2(h1) (1 + s) + t)
    h2, cols2 = conv3x3(a2, p["conv2.W"], p["conv2.b"])
    skip = conv1x1(x, p["skip.W"], p["skip.b"]) if "skip.W" in p else x
    cache = {"x": x, "e": e, "norm1": norm1, "da1": da1, "cols1": cols1, "s": s, "norm2": norm2, "da2": da2,
             "cols2": cols2}
    h2 += skip  # y = skip(x) + h2, in place: h2 is this block's own array
    return h2, cache


def residual_block_backward(dy, cache, p, overwrite_cache=False):
    r"""Given dL/dy (B, O, H, W), the gradients of p (a dict with its keys), of x (B, C, H, W) and of e (B, T).

    ``overwrite_cache=True`` lets the convolutions' backward reuse the cached columns (a training step's).
    """
    c, g = cache, {}
    g["conv2.W"], g["conv2.b"], da = conv3x3_backward(dy, c["cols2"], p["conv2.W"], dy.shape,
                                                      overwrite_cols=overwrite_cache)
    g["norm2.gamma"], g["norm2.beta"], dh1, ds, dt = _norm_silu_backward(da, c["da2"], c["norm2"], p["norm2.gamma"],
                                                                         p["norm2.beta"], c["s"])  # ds, dt (B, O)
    g["emb.W"], g["emb.b"], de = dense_backward(np.concatenate([ds, dt], axis=1), c["e"], p["emb.W"])
    g["conv1.W"], g["conv1.b"], da = conv3x3_backward(dh1, c["cols1"], p["conv1.W"], c["x"].shape,
                                                      overwrite_cols=overwrite_cache)
    g["norm1.gamma"], g["norm1.beta"], dx, _, _ = _norm_silu_backward(da, c["da1"], c["norm1"], p["norm1.gamma"],
                                                                      p["norm1.beta"])
    if "skip.W" in p:
        g["skip.W"], g["skip.b"], dskip = conv1x1_backward(dy, c["x"], p["skip.W"])
    else:
        dskip = dy
    dx += dskip  # the gradient down both paths adds up at x; dx is the kernel's own array
    return g, dx, de


def residual_block_tangent(x_dot, cache, p):
    r"""Tangent :math:`\dot y` (K, B, O, H, W) for K tangents x_dot (K, B, C, H, W); the embedding is held fixed."""
    c = cache
    a1_dot = _norm_silu_tangent(x_dot, c["da1"], c["norm1"], p["norm1.gamma"])
    h1_dot = conv3x3_tangent(a1_dot, p["conv1.W"])
    a2_dot = _norm_silu_tangent(h1_dot, c["da2"], c["norm2"], p["norm2.gamma"], c["s"])
    h2_dot = conv3x3_tangent(a2_dot, p["conv2.W"])
    h2_dot += conv1x1_tangent(x_dot, p["skip.W"]) if "skip.W" in p else x_dot
    return h2_dot
