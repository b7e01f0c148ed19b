r"""GroupNorm, the residual block's scale and shift, and SiLU as one step: the formula, and its fused kernels.

Every convolution of the U-Net but ``conv_in`` reads

.. math:: a = \mathrm{SiLU}(m),\qquad m = \mathrm{GN}(x)\odot(1 + s) + t

(:mod:`~npdiff.nn.unet.norm` for GN; s and t, one value per image and channel, are the embedding's
scale and shift in a residual block's second normalization, ADM's ``use_scale_shift_norm``, and absent,
s = t = 0, elsewhere). Its three passes, written from the layers they chain:

* **forward**: :math:`a` and :math:`\mathrm{SiLU}'(m)`, with GroupNorm's cache :math:`(\hat x, \varsigma)`.
* **backward**: given :math:`\bar a`, with :math:`\bar m = \bar a\odot\mathrm{SiLU}'(m)`, the gradients
  :math:`\bar t = \sum_{pixels}\bar m` and :math:`\bar s = \sum_{pixels}\bar m\odot\mathrm{GN}(x)` (for the
  embedding), then GroupNorm's backward of :math:`\bar m\odot(1 + s)`: :math:`\bar\gamma`, :math:`\bar\beta`, :math:`\bar x`.
* **tangent**: :math:`\dot a = \mathrm{SiLU}'(m)\odot(1 + s)\odot\dot{\mathrm{GN}}(\dot x)` for K tangents; s and t
  come from the embedding, which does not depend on x.

:func:`norm_silu`, :func:`norm_silu_backward` and :func:`norm_silu_tangent` are those formulas in plain
NumPy, the code to read. In NumPy they take about ten passes over the features (the group means and
variances over reshaped views, the normalization, the scale and shift, the activation, each a temporary
array); the ``*_fast`` functions compute the same in one Numba kernel each, which reads a group of
channels of one image (a few KB, so it stays in the L1 cache) two or three times and writes each output
once. The network runs the kernels, or the formulas when Numba's JIT is disabled (``NUMBA_DISABLE_JIT=1``),
through :data:`PASSES` (attention's GroupNorm without the SiLU through :data:`GN_PASSES`); the tests
check that each pair agrees in float64 and float32.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from ..activations import ACTIVATIONS
from ..fast import kernels
from ..fast.kernels import silu_pair
from .norm import GN_EPS, group_norm, group_norm_backward, group_norm_tangent

__all__ = [
    "GN_PASSES",
    "PASSES",
    "group_norm_backward_fast",
    "group_norm_fast",
    "norm_silu",
    "norm_silu_backward",
    "norm_silu_backward_fast",
    "norm_silu_fast",
    "norm_silu_tangent",
    "norm_silu_tangent_fast",
    "silu_like",
]


def silu_like(z):
    r"""SiLU and its derivative, :func:`npdiff.nn.activations.silu`, in the dtype of z (a float32 network stays float32).

    Computed by the MLP's fused kernel ``bias_act`` (:mod:`npdiff.nn.fast.kernels`, tested equal to
    :func:`~npdiff.nn.activations.silu`; its NumPy twin when Numba's JIT is off): the rational tanh of the
    SiLU costs NumPy eight passes over the array.
    """
    flat = np.ascontiguousarray(z).reshape(1, -1)  # one long row: the kernel's inner loop runs over all of it
    value, grad = np.empty_like(flat), np.empty_like(flat)
    no_bias = np.zeros(flat.shape[1], flat.dtype)  # the kernel adds a bias per column
    kernels.bias_act(flat, no_bias, flat, ACTIVATIONS["silu"], False, value, grad)
    return value.reshape(z.shape), grad.reshape(z.shape)


def _pixels(v):
    return v[:, :, None, None]  # (B, C) -> (B, C, 1, 1): one value per image and channel


# -- the formulas -------------------------------------------------------------------------------------------
def norm_silu(x, gamma, beta, groups, scale=None, shift=None):
    r"""a = SiLU(GN(x) (1 + scale) + shift) for x (B, C, H, W), gamma and beta (C,), scale and shift (B, C) or None.

    Returns a, SiLU'(m) (B, C, H, W) and GroupNorm's cache (x_hat (B, C, H, W), s (B, G, 1)).
    """
    n, cache = group_norm(x, gamma, beta, groups)
    m = n if scale is None else n * (1.0 + _pixels(scale)) + _pixels(shift)
    a, da = silu_like(m)
    return a, da, cache


def norm_silu_backward(a_bar, da, cache, gamma, beta, scale=None):
    r"""Given dL/da (B, C, H, W) and the forward's SiLU'(m) and cache: the gradients of gamma, beta (C,), x
    (B, C, H, W), scale and shift (B, C)."""
    x_hat = cache[0]
    dm = a_bar * da  # (B, C, H, W)
    n = x_hat * gamma[:, None, None] + beta[:, None, None]  # GN(x), recomputed
    ds, dt = (dm * n).sum(axis=(2, 3)), dm.sum(axis=(2, 3))  # (B, C) each
    dn = dm if scale is None else dm * (1.0 + _pixels(scale))
    dgamma, dbeta, dx = group_norm_backward(dn, cache, gamma)
    return dgamma, dbeta, dx, ds, dt


def norm_silu_tangent(x_dot, da, cache, gamma, scale=None):
    r"""Tangent :math:`\dot a` (K, B, C, H, W) for K tangents x_dot (K, B, C, H, W); scale and shift held fixed."""
    n_dot = group_norm_tangent(x_dot, cache, gamma)
    return da * (n_dot if scale is None else n_dot * (1.0 + _pixels(scale)))


# -- the kernels --------------------------------------------------------------------------------------------
# Sums run in float64 whatever the dtype; everything elementwise runs in the arrays' dtype (a float32
# network stays float32, twice as many numbers per vector instruction), the float64 group statistics
# brought to that dtype through a two-slot array of it. fastmath lets LLVM vectorize the sums.
_OPTS = dict(cache=True, nogil=True, error_model="numpy", fastmath=True)


@njit(**_OPTS)
def _nb_norm_silu(x, coef_a, coef_b, groups, eps, x_hat, s, a, da, silu):
    # x (B, C, N); m = x_hat coef_a + coef_b with coef_a = gamma (1 + scale), coef_b = beta (1 + scale) + shift (B, C);
    # a = SiLU(m) and da = SiLU'(m), or a = m (da untouched) without the SiLU
    B, C, N = x.shape
    cg = C // groups
    n = cg * N
    typed = np.empty(2, x.dtype)
    for b in range(B):
        for g in range(groups):
            total = 0.0
            for c in range(g * cg, (g + 1) * cg):
                for k in range(N):
                    total += x[b, c, k]
            mu = total / n
            sq = 0.0
            for c in range(g * cg, (g + 1) * cg):
                for k in range(N):
                    d = x[b, c, k] - mu
                    sq += d * d
            s[b, g] = 1.0 / np.sqrt(sq / n + eps)  # two passes: the variance without cancellation
            typed[0], typed[1] = mu, s[b, g]
            mu_t, s_t = typed[0], typed[1]
            for c in range(g * cg, (g + 1) * cg):
                ca, cb = coef_a[b, c], coef_b[b, c]
                if silu:
                    for k in range(N):
                        xh = (x[b, c, k] - mu_t) * s_t
                        x_hat[b, c, k] = xh
                        a[b, c, k], da[b, c, k] = silu_pair(xh * ca + cb)
                else:
                    for k in range(N):
                        xh = (x[b, c, k] - mu_t) * s_t
                        x_hat[b, c, k] = xh
                        a[b, c, k] = xh * ca + cb


@njit(**_OPTS)
def _nb_norm_silu_backward(a_bar, da, x_hat, s, gamma, beta, sc, groups, dx, dgamma, dbeta, ds, dt, silu):
    # sc (B, C) = 1 + scale; dm = a_bar da (a_bar without the SiLU) is parked in dx,
    # then dx = s (dm sc gamma - mean(g) - x_hat mean(g x_hat))
    B, C, N = a_bar.shape
    cg = C // groups
    n = cg * N
    acc_gamma, acc_beta = np.zeros(C), np.zeros(C)
    typed = np.empty(2, dx.dtype)
    for b in range(B):
        for g in range(groups):
            mean_g = 0.0
            mean_gx = 0.0
            for c in range(g * cg, (g + 1) * cg):
                s1 = 0.0
                s2 = 0.0
                for k in range(N):
                    dm = a_bar[b, c, k] * da[b, c, k] if silu else a_bar[b, c, k]
                    dx[b, c, k] = dm
                    s1 += dm
                    s2 += dm * x_hat[b, c, k]
                dt[b, c] = s1
                ds[b, c] = gamma[c] * s2 + beta[c] * s1  # sum dm GN(x), GN(x) = gamma x_hat + beta
                f = sc[b, c]
                acc_beta[c] += f * s1
                acc_gamma[c] += f * s2
                mean_g += gamma[c] * f * s1
                mean_gx += gamma[c] * f * s2
            typed[0], typed[1] = mean_g / n, mean_gx / n
            m1, m2 = typed[0], typed[1]
            sv = s[b, g]
            for c in range(g * cg, (g + 1) * cg):
                coef = sc[b, c] * gamma[c]
                for k in range(N):
                    dx[b, c, k] = sv * (dx[b, c, k] * coef - m1 - x_hat[b, c, k] * m2)
    for c in range(C):
        dgamma[c] = acc_gamma[c]
        dbeta[c] = acc_beta[c]


@njit(**_OPTS)
def _nb_norm_silu_tangent(x_dot, da, x_hat, s, coef, groups, out):
    # out = da coef s (x_dot - mean(x_dot) - x_hat mean(x_dot x_hat)) per tangent, image and group; coef = gamma (1 + scale)
    K, B, C, N = x_dot.shape
    cg = C // groups
    n = cg * N
    typed = np.empty(2, out.dtype)
    for kk in range(K):
        for b in range(B):
            for g in range(groups):
                s1 = 0.0
                s2 = 0.0
                for c in range(g * cg, (g + 1) * cg):
                    for k in range(N):
                        v = x_dot[kk, b, c, k]
                        s1 += v
                        s2 += v * x_hat[b, c, k]
                typed[0], typed[1] = s1 / n, s2 / n
                m1, m2 = typed[0], typed[1]
                sv = s[b, g]
                for c in range(g * cg, (g + 1) * cg):
                    f = coef[b, c] * sv
                    for k in range(N):
                        out[kk, b, c, k] = da[b, c, k] * f * (x_dot[kk, b, c, k] - m1 - x_hat[b, c, k] * m2)


def _per_image(v, B):
    return np.ascontiguousarray(np.broadcast_to(v, (B, v.shape[-1])))  # (C,) or (B, C) -> (B, C)


def norm_silu_fast(x, gamma, beta, groups, scale=None, shift=None):
    r""":func:`norm_silu` by one kernel: the same a, SiLU'(m) and cache."""
    B, C = x.shape[:2]
    x = np.ascontiguousarray(x)
    one_plus = 1.0 if scale is None else 1.0 + scale  # (B, C) or a Python float
    coef_a = _per_image(gamma * one_plus, B)
    coef_b = _per_image(beta * one_plus + (0.0 if shift is None else shift), B)
    x_hat, a, da = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    s = np.empty((B, groups, 1), x.dtype)
    _nb_norm_silu(x.reshape(B, C, -1), coef_a.astype(x.dtype, copy=False), coef_b.astype(x.dtype, copy=False), groups,
                  GN_EPS, x_hat.reshape(B, C, -1), s.reshape(B, groups), a.reshape(B, C, -1), da.reshape(B, C, -1), True)
    return a, da, (x_hat, s)


def norm_silu_backward_fast(a_bar, da, cache, gamma, beta, scale=None):
    r""":func:`norm_silu_backward` by one kernel: the same gradients of gamma, beta, x, scale and shift."""
    x_hat, s = cache
    B, C = x_hat.shape[:2]
    G = s.shape[1]
    sc = _per_image(np.ones(C, x_hat.dtype) if scale is None else 1.0 + scale, B).astype(x_hat.dtype, copy=False)
    dx = np.empty_like(x_hat)
    dgamma, dbeta = np.empty(C, x_hat.dtype), np.empty(C, x_hat.dtype)
    ds, dt = np.empty((B, C), x_hat.dtype), np.empty((B, C), x_hat.dtype)
    _nb_norm_silu_backward(np.ascontiguousarray(a_bar).reshape(B, C, -1), da.reshape(B, C, -1), x_hat.reshape(B, C, -1),
                           s.reshape(B, G), gamma, beta, sc, G, dx.reshape(B, C, -1), dgamma, dbeta, ds, dt, True)
    return dgamma, dbeta, dx, ds, dt


def group_norm_fast(x, gamma, beta, groups):
    r""":func:`npdiff.nn.unet.norm.group_norm` (no SiLU: attention's normalization) by the forward kernel."""
    B, C = x.shape[:2]
    x = np.ascontiguousarray(x)
    y, x_hat = np.empty_like(x), np.empty_like(x)
    s = np.empty((B, groups, 1), x.dtype)
    flat = y.reshape(B, C, -1)
    _nb_norm_silu(x.reshape(B, C, -1), _per_image(gamma, B), _per_image(beta, B), groups, GN_EPS,
                  x_hat.reshape(B, C, -1), s.reshape(B, groups), flat, flat, False)
    return y, (x_hat, s)


def group_norm_backward_fast(dy, cache, gamma):
    r""":func:`npdiff.nn.unet.norm.group_norm_backward` by the backward kernel: the gradients of gamma, beta and x."""
    x_hat, s = cache
    B, C = x_hat.shape[:2]
    G = s.shape[1]
    dy = np.ascontiguousarray(dy).reshape(B, C, -1)
    dx = np.empty_like(x_hat)
    dgamma, dbeta = np.empty(C, x_hat.dtype), np.empty(C, x_hat.dtype)
    ds = np.empty((B, C), x_hat.dtype)  # the scale and shift gradients, which GroupNorm alone does not have
    _nb_norm_silu_backward(dy, dy, x_hat.reshape(B, C, -1), s.reshape(B, G), gamma, np.zeros_like(gamma),
                           np.ones((B, C), x_hat.dtype), G, dx.reshape(B, C, -1), dgamma, dbeta, ds, ds, False)
    return dgamma, dbeta, dx


def norm_silu_tangent_fast(x_dot, da, cache, gamma, scale=None):
    r""":func:`norm_silu_tangent` by one kernel: the same K tangents (K, B, C, H, W)."""
    x_hat, s = cache
    K = x_dot.shape[0]
    B, C = x_hat.shape[:2]
    G = s.shape[1]
    coef = _per_image(gamma if scale is None else gamma * (1.0 + scale), B).astype(x_hat.dtype, copy=False)
    out = np.empty(x_dot.shape, x_hat.dtype)
    _nb_norm_silu_tangent(np.ascontiguousarray(x_dot).reshape(K, B, C, -1), da.reshape(B, C, -1),
                          x_hat.reshape(B, C, -1), s.reshape(B, G), coef, G, out.reshape(K, B, C, -1))
    return out


#: what the network runs (forward, backward, tangent): the kernels, or the formulas when Numba's JIT is disabled
PASSES = ((norm_silu, norm_silu_backward, norm_silu_tangent) if numba.config.DISABLE_JIT
          else (norm_silu_fast, norm_silu_backward_fast, norm_silu_tangent_fast))
#: the same for GroupNorm alone (forward, backward): attention's normalization
GN_PASSES = ((group_norm, group_norm_backward) if numba.config.DISABLE_JIT
             else (group_norm_fast, group_norm_backward_fast))
