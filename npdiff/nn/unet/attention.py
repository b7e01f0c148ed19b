r"""Multi-head self-attention over the pixels of a feature map, as a residual block (ADM's ``AttentionBlock``).

Each of the N = H W pixels is a token of C channels. With h = GroupNorm(x) and M heads of d = C / M channels,

.. math::
    [q \mid k \mid v] = W_{qkv} h + b_{qkv},\qquad
    S = \frac{q^\top k}{\sqrt d}\ (N \times N),\qquad P = \mathrm{softmax}_{\text{keys}}(S),\qquad
    a = v P^\top,\qquad y = x + W_o a + b_o

per image and head (Vaswani et al. 2017, Eqs. 1-2; Dhariwal & Nichol 2021 put it at the coarse
resolutions of the U-Net, Ho et al. 2020 at 16x16). Row n of P says how much query pixel n reads from
every key pixel m. The 1x1 convolution :math:`W_{qkv}` (3C, C) makes the channels
:math:`[q \mid k \mid v]` in that order, each split into M consecutive heads of d channels.

**The softmax backward.** Each row of P is a softmax of its row of S, whose Jacobian
:math:`\mathrm{diag}(P) - P P^\top` is symmetric, so reverse and forward mode read the same rule,

.. math:: \bar S = P\odot\big(\bar P - \textstyle\sum_m \bar P_{:,m} P_{:,m}\big),\qquad
          \dot P = P\odot\big(\dot S - \textstyle\sum_m P_{:,m}\dot S_{:,m}\big)

and the rest is the product rule: :math:`\bar P = \bar a^\top v`, :math:`\bar v = \bar a P`,
:math:`\bar q = k \bar S^\top/\sqrt d`, :math:`\bar k = q \bar S/\sqrt d`; forward,
:math:`\dot S = (\dot q^\top k + q^\top \dot k)/\sqrt d` and :math:`\dot a = \dot v P^\top + v \dot P^\top`.
"""

from __future__ import annotations

import numpy as np

from .conv import conv1x1, conv1x1_backward, conv1x1_tangent
from .norm import group_norm_tangent
from .norm_act import GN_PASSES

# GroupNorm's forward and backward (npdiff.nn.unet.norm), or their fused kernels when Numba's JIT is on (tested equal)
_group_norm, _group_norm_backward = GN_PASSES

__all__ = ["attention", "attention_backward", "attention_tangent", "softmax", "softmax_adjoint"]


def softmax(S):
    r"""Softmax over the last axis, shifted by the row maximum so that exp never overflows."""
    e = np.exp(S - S.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_adjoint(P, g):
    r""":math:`P \odot (g - \sum_m P_m g_m)`, the softmax's symmetric Jacobian applied to g (gradient or tangent)."""
    return P * (g - (P * g).sum(axis=-1, keepdims=True))


def _T(a):
    return a.swapaxes(-1, -2)  # the transpose of every matrix in a stack


def _heads(qkv, heads):
    # (..., 3C, H, W) -> q, k, v each (..., M, d, N)
    *lead, C3, H, W = qkv.shape
    parts = qkv.reshape(*lead, 3, heads, C3 // (3 * heads), H * W)
    return parts[..., 0, :, :, :], parts[..., 1, :, :, :], parts[..., 2, :, :, :]


def attention(x, p, heads, groups):
    r"""y = x + attention(GroupNorm(x)) for x (B, C, H, W); p holds ``norm.gamma``, ``norm.beta``, ``qkv.W``
    (3C, C), ``qkv.b``, ``proj.W`` (C, C), ``proj.b``. Returns y (B, C, H, W) and the cache."""
    B, C, H, W = x.shape
    h, norm_cache = _group_norm(x, p["norm.gamma"], p["norm.beta"], groups)
    q, k, v = _heads(conv1x1(h, p["qkv.W"], p["qkv.b"]), heads)  # (B, M, d, N) each
    scale = (C // heads) ** -0.5  # a Python float: a float32 network stays float32
    P = softmax(np.matmul(_T(q), k) * scale)  # (B, M, N, N): S = q^T k / sqrt(d), query n, key k
    a = np.matmul(v, _T(P)).reshape(B, C, H, W)  # a = v P^T (B, M, d, N)
    y = x + conv1x1(a, p["proj.W"], p["proj.b"])
    return y, {"h": h, "norm": norm_cache, "q": q, "k": k, "v": v, "P": P, "a": a}


def attention_backward(dy, cache, p, heads):
    r"""Given dL/dy (B, C, H, W), the gradients of p (a dict with its keys) and of x."""
    q, k, v, P = cache["q"], cache["k"], cache["v"], cache["P"]
    B, C, H, W = dy.shape
    scale = (C // heads) ** -0.5  # a Python float: a float32 network stays float32
    g = {}
    g["proj.W"], g["proj.b"], da = conv1x1_backward(dy, cache["a"], p["proj.W"])
    da = da.reshape(q.shape)  # (B, M, d, N)
    dP = np.matmul(_T(da), v)  # (B, M, N, N)
    dv = np.matmul(da, P)
    dS = softmax_adjoint(P, dP) * scale
    dq = np.matmul(k, _T(dS))  # (B, M, d, N)
    dk = np.matmul(q, dS)
    dqkv = np.stack([dq, dk, dv], axis=1).reshape(B, 3 * C, H, W)
    g["qkv.W"], g["qkv.b"], dh = conv1x1_backward(dqkv, cache["h"], p["qkv.W"])
    g["norm.gamma"], g["norm.beta"], dx = _group_norm_backward(dh, cache["norm"], p["norm.gamma"])
    return g, dy + dx  # the residual passes dL/dy straight through


def attention_tangent(x_dot, cache, p, heads):
    r"""Tangent :math:`\dot y` of the block for K tangents x_dot (K, B, C, H, W)."""
    q, k, v, P = cache["q"], cache["k"], cache["v"], cache["P"]
    C = x_dot.shape[-3]
    scale = (C // heads) ** -0.5  # a Python float: a float32 network stays float32
    h_dot = group_norm_tangent(x_dot, cache["norm"], p["norm.gamma"])
    q_dot, k_dot, v_dot = _heads(conv1x1_tangent(h_dot, p["qkv.W"]), heads)  # (K, B, M, d, N) each
    S_dot = (np.matmul(_T(q_dot), k) + np.matmul(_T(q), k_dot)) * scale  # (K, B, M, N, N)
    P_dot = softmax_adjoint(P, S_dot)
    a_dot = (np.matmul(v, _T(P_dot)) + np.matmul(v_dot, _T(P))).reshape(x_dot.shape)
    return x_dot + conv1x1_tangent(a_dot, p["proj.W"])
