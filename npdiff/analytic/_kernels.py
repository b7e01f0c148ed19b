r"""Component loops of the analytic oracles: Numba kernels and their NumPy twins.

Every oracle here is a mixture :math:`q_t(x) = \sum_k w_k f_k(x)` whose components have a
closed-form log-density :math:`\ell_k`, gradient :math:`g_k = \nabla\ell_k` and Laplacian
:math:`\mathrm{tr}\,H_k`. With responsibilities :math:`r_k = w_k f_k / q_t` the mixture's

.. math::
    \log q_t = \operatorname{logsumexp}_k(\log w_k + \ell_k),\qquad
    \nabla\log q_t = \sum_k r_k g_k = \bar g,\qquad
    \Delta\log q_t = \sum_k r_k\big(\mathrm{tr}\,H_k + \lVert g_k\rVert^2\big) - \lVert\bar g\rVert^2
                  = \sum_k r_k\,\mathrm{tr}\,H_k + \sum_k r_k\lVert g_k - \bar g\rVert^2

(differentiate :math:`\nabla q_t / q_t` once more). The kernels stream over the components with
a running maximum (log-sum-exp) and a weighted Welford update (West 1979) for the mean and the
spread of the :math:`g_k`, one shared helper (``_accumulate``) inlined into each kernel, so
nothing of size (B, K, D) is ever built and the variance term is a sum of squares, not a
difference of two large numbers.

Each ``_*_numba`` kernel has a ``_*_numpy`` twin (same inputs, same outputs) that works on
chunks of queries; the public dispatchers ``gmm_eval``, ``empirical_eval`` and ``box_eval``
use the kernel, or the twin when Numba's JIT is disabled (``NUMBA_DISABLE_JIT=1``), where a
pure-Python loop would be far too slow. Kernels never validate their inputs.

Inputs shared by all kernels: ``x`` (B, D) queries; ``sqrt_ab``, ``alpha_bar`` (B,) the signal
scale :math:`\sqrt{\bar\alpha(t)}` and its square per query; ``var`` (B,) an isotropic
variance added to every component (:math:`\sigma^2(t) = 1 - \bar\alpha(t)`, plus the
scaled noise of the data where it has one).
"""

from __future__ import annotations

import math

import numpy as np
from numba import config as _numba_config
from numba import njit
from scipy.special import log_ndtr

LOG_2PI = math.log(2.0 * math.pi)
_SQRT2 = math.sqrt(2.0)
_CHUNK_ELEMENTS = 1 << 21  # bound on the (chunk, K, D) temporaries of the NumPy twins
_SKIP_LOG_RATIO = 50.0  # the box kernel skips components below e^-50 of the running maximum


def _chunks(B: int, per_row: int):
    step = max(1, _CHUNK_ELEMENTS // max(1, per_row))
    for start in range(0, B, step):
        yield slice(start, min(B, start + step))


@njit(cache=True, inline="always")
def _accumulate(ell, g, tr_h, m, s, v, h, g_mean):
    r"""Add one component to the streaming log-sum-exp and the weighted Welford sums (West 1979).

    With the running maximum m of the log-weights seen so far, the sums are scaled by :math:`e^{-m}`:
    :math:`s = \sum_k e^{\ell_k - m}`, ``g_mean`` (D,) the weighted mean of the :math:`g_k` (updated in
    place), :math:`v = \sum_k e^{\ell_k - m}\lVert g_k - \bar g\rVert^2` and :math:`h = \sum_k e^{\ell_k - m}
    \mathrm{tr}\,H_k`. Returns the new (m, s, v, h).
    """
    if ell > m:  # a new maximum: rescale what was summed so far
        scale = math.exp(m - ell)
        s *= scale
        v *= scale
        h *= scale
        m = ell
        w = 1.0
    else:
        w = math.exp(ell - m)
    s_new = s + w
    frac = w / s_new
    for d in range(g.shape[0]):
        delta = g[d] - g_mean[d]
        g_mean[d] += frac * delta
        v += w * delta * (g[d] - g_mean[d])
    return m, s_new, v, h + w * tr_h


# -- Gaussian mixture -----------------------------------------------------------------
#
# Component k at time t: N(sqrt_ab mu_k, alpha_bar C_k + var I). With C_k = U_k diag(eig_k) U_k^T
# every noised covariance shares the eigenvectors U_k, so for y = U_k^T (x - sqrt_ab mu_k) and
# d = alpha_bar eig_k + var (elementwise):
#   l_k = -1/2 [sum y^2/d + sum log d + D log 2 pi],  g_k = -U_k (y / d),  tr H_k = -sum 1/d.


@njit(cache=True)
def _gmm_numba(x, sqrt_ab, alpha_bar, var, log_w, means, rot, eig, rotate):
    B, D = x.shape
    K = means.shape[0]
    log_prob = np.empty(B)
    score = np.empty((B, D))
    laplacian = np.empty(B)
    y = np.empty(D)
    gy = np.empty(D)
    g = np.empty(D)
    g_mean = np.empty(D)
    for b in range(B):
        m = -np.inf
        s = 0.0
        v = 0.0
        h = 0.0
        g_mean[:] = 0.0
        for k in range(K):
            if rotate:
                for e in range(D):
                    acc = 0.0
                    for d in range(D):
                        acc += (x[b, d] - sqrt_ab[b] * means[k, d]) * rot[k, d, e]
                    y[e] = acc
            else:
                for e in range(D):
                    y[e] = x[b, e] - sqrt_ab[b] * means[k, e]
            quad = 0.0
            logdet = 0.0
            tr_h = 0.0
            for e in range(D):
                de = alpha_bar[b] * eig[k, e] + var[b]
                z = y[e] / de
                quad += y[e] * z
                logdet += math.log(de)
                tr_h -= 1.0 / de
                gy[e] = -z
            if rotate:
                for d in range(D):
                    acc = 0.0
                    for e in range(D):
                        acc += rot[k, d, e] * gy[e]
                    g[d] = acc
            else:
                for d in range(D):
                    g[d] = gy[d]
            ell = log_w[k] - 0.5 * (quad + logdet + D * LOG_2PI)
            m, s, v, h = _accumulate(ell, g, tr_h, m, s, v, h, g_mean)  # streaming log-sum-exp and Welford
        log_prob[b] = m + math.log(s)
        for d in range(D):
            score[b, d] = g_mean[d]
        laplacian[b] = (h + v) / s
    return log_prob, score, laplacian


def _gmm_numpy(x, sqrt_ab, alpha_bar, var, log_w, means, rot, eig, rotate):
    B, D = x.shape
    K = means.shape[0]
    log_prob = np.empty(B)
    score = np.empty((B, D))
    laplacian = np.empty(B)
    for sl in _chunks(B, K * D):
        diff = x[sl, None, :] - sqrt_ab[sl, None, None] * means[None]  # (c, K, D)
        y = np.einsum("ckd,kde->cke", diff, rot) if rotate else diff  # (c, K, D)
        d = alpha_bar[sl, None, None] * eig[None] + var[sl, None, None]  # (c, K, D)
        gy = -y / d
        ell = log_w[None] - 0.5 * (np.sum(y * y / d, axis=2) + np.sum(np.log(d), axis=2) + D * LOG_2PI)  # (c, K)
        m = ell.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.sum(np.exp(ell - m), axis=1))  # (c,)
        r = np.exp(ell - lse[:, None])  # (c, K) responsibilities
        g = np.einsum("kde,cke->ckd", rot, gy) if rotate else gy  # (c, K, D)
        g_bar = np.einsum("ck,ckd->cd", r, g)  # (c, D)
        spread = np.einsum("ck,ck->c", r, np.sum((g - g_bar[:, None, :]) ** 2, axis=2))
        tr_h = -np.sum(1.0 / d, axis=2)  # (c, K)
        log_prob[sl] = lse
        score[sl] = g_bar
        laplacian[sl] = np.sum(r * tr_h, axis=1) + spread
    return log_prob, score, laplacian


# -- empirical data (a mixture of Dirac masses) ---------------------------------------
#
# Component i at time t: N(sqrt_ab p_i, var I). The kernel returns the log-sum of the
# unnormalized weights exp(-|x - sqrt_ab p_i|^2 / (2 var)), the posterior mean of p_i
# (= E[x_0 | x_t]) and the posterior spread sum_i r_i |p_i - mean|^2; the caller adds the
# constants and turns them into score and Laplacian.


@njit(cache=True)
def _empirical_numba(x, sqrt_ab, var, points):
    B, D = x.shape
    N = points.shape[0]
    log_sum = np.empty(B)
    post_mean = np.empty((B, D))
    post_spread = np.empty(B)
    p_mean = np.empty(D)
    for b in range(B):
        m = -np.inf
        s = 0.0
        v = 0.0
        p_mean[:] = 0.0
        inv_two_var = 0.5 / var[b]
        for i in range(N):
            q = 0.0
            for d in range(D):
                u = x[b, d] - sqrt_ab[b] * points[i, d]
                q += u * u
            ell = -q * inv_two_var
            m, s, v, _ = _accumulate(ell, points[i], 0.0, m, s, v, 0.0, p_mean)  # the mean and spread of the p_i
        log_sum[b] = m + math.log(s)
        for d in range(D):
            post_mean[b, d] = p_mean[d]
        post_spread[b] = v / s
    return log_sum, post_mean, post_spread


def _empirical_numpy(x, sqrt_ab, var, points):
    B, D = x.shape
    N = points.shape[0]
    log_sum = np.empty(B)
    post_mean = np.empty((B, D))
    post_spread = np.empty(B)
    for sl in _chunks(B, N * D):
        diff = x[sl, None, :] - sqrt_ab[sl, None, None] * points[None]  # (c, N, D)
        ell = -np.sum(diff * diff, axis=2) / (2.0 * var[sl, None])  # (c, N)
        m = ell.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.sum(np.exp(ell - m), axis=1))
        r = np.exp(ell - lse[:, None])  # (c, N)
        mean = r @ points  # (c, D)
        spread = np.einsum("cn,cn->c", r, np.sum((points[None] - mean[:, None, :]) ** 2, axis=2))
        log_sum[sl] = lse
        post_mean[sl] = mean
        post_spread[sl] = spread
    return log_sum, post_mean, post_spread


# -- mixture of uniform boxes convolved with an isotropic Gaussian ---------------------
#
# log_c (K,) is log w_k - sum_d log(hi_kd - lo_kd), the log-weight over the clean volume;
# the volume's factor sqrt_ab^D is the same for every box and added at the end.
#
# Component k at time t: U[sqrt_ab lo_k, sqrt_ab hi_k] (+) N(0, var I), a product over
# coordinates of f(x) = [Phi(a) - Phi(b)] / (sqrt_ab (hi - lo)), a = (x - sqrt_ab lo)/sd,
# b = (x - sqrt_ab hi)/sd, sd = sqrt(var). With Z = Phi(a) - Phi(b) and phi the normal pdf:
#   (log f)'  = (phi(a) - phi(b)) / (sd Z)
#   (log f)'' = (-a phi(a) + b phi(b)) / (var Z) - ((log f)')^2


@njit(cache=True)
def _log_ndtr_numba(z):
    r""":math:`\log\Phi(z)`, accurate in both tails (the asymptotic series below z = -30)."""
    if z > 0.0:
        return math.log1p(-0.5 * math.erfc(z / _SQRT2))
    if z > -30.0:
        return math.log(0.5 * math.erfc(-z / _SQRT2))
    # Abramowitz & Stegun 26.2.12; the first omitted term is below 3e-16 at z = -30
    iz2 = 1.0 / (z * z)
    series = 1.0 - iz2 * (1.0 - 3.0 * iz2 * (1.0 - 5.0 * iz2 * (1.0 - 7.0 * iz2 * (1.0 - 9.0 * iz2 * (
        1.0 - 11.0 * iz2)))))
    return -0.5 * z * z - 0.5 * LOG_2PI - math.log(-z) + math.log(series)


@njit(cache=True)
def _log_diff_ndtr_numba(a, b):
    r""":math:`\log(\Phi(a) - \Phi(b))` for :math:`a > b`, mirrored when both lie right of 0."""
    if b > 0.0:
        hi = _log_ndtr_numba(-b)
        lo = _log_ndtr_numba(-a)
    else:
        hi = _log_ndtr_numba(a)
        lo = _log_ndtr_numba(b)
    return hi + math.log1p(-math.exp(lo - hi))


@njit(cache=True)
def _box_numba(x, sqrt_ab, var, log_c, lows, highs):
    B, D = x.shape
    K = lows.shape[0]
    log_prob = np.empty(B)
    score = np.empty((B, D))
    laplacian = np.empty(B)
    g = np.empty(D)
    g_mean = np.empty(D)
    for b in range(B):
        sd = math.sqrt(var[b])
        m = -np.inf
        s = 0.0
        v = 0.0
        h = 0.0
        g_mean[:] = 0.0
        for k in range(K):
            # skip a box whose every point is so far that its weight is below e^-50 of the
            # running maximum: log(Phi(a) - Phi(b)) <= -dist^2 / 2 var (Chernoff), so the
            # bound below is >= the exact log-weight
            bound = log_c[k]
            for d in range(D):
                dist = max(0.0, sqrt_ab[b] * lows[k, d] - x[b, d], x[b, d] - sqrt_ab[b] * highs[k, d])
                bound -= 0.5 * dist * dist / var[b]
            if bound < m - _SKIP_LOG_RATIO:
                continue
            ell = log_c[k]
            tr_h = 0.0
            for d in range(D):
                lo = sqrt_ab[b] * lows[k, d]
                hi = sqrt_ab[b] * highs[k, d]
                za = (x[b, d] - lo) / sd
                zb = (x[b, d] - hi) / sd
                log_z = _log_diff_ndtr_numba(za, zb)
                ell += log_z
                ra = math.exp(-0.5 * za * za - 0.5 * LOG_2PI - log_z)  # phi(a) / Z
                rb = math.exp(-0.5 * zb * zb - 0.5 * LOG_2PI - log_z)  # phi(b) / Z
                gd = (ra - rb) / sd
                g[d] = gd
                tr_h += (-za * ra + zb * rb) / var[b] - gd * gd
            m, s, v, h = _accumulate(ell, g, tr_h, m, s, v, h, g_mean)
        log_prob[b] = m + math.log(s) - D * math.log(sqrt_ab[b])
        for d in range(D):
            score[b, d] = g_mean[d]
        laplacian[b] = (h + v) / s
    return log_prob, score, laplacian


def _log_diff_ndtr_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    mirror = b > 0.0
    hi = np.where(mirror, log_ndtr(-b), log_ndtr(a))
    lo = np.where(mirror, log_ndtr(-a), log_ndtr(b))
    return hi + np.log1p(-np.exp(lo - hi))


def _box_numpy(x, sqrt_ab, var, log_c, lows, highs):
    B, D = x.shape
    K = lows.shape[0]
    log_prob = np.empty(B)
    score = np.empty((B, D))
    laplacian = np.empty(B)
    for sl in _chunks(B, K * D):
        c = sl.stop - sl.start
        lo = sqrt_ab[sl, None, None] * lows[None]  # (c, K, D)
        hi = sqrt_ab[sl, None, None] * highs[None]
        xs = x[sl, None, :]
        # the kernel's skip, vectorized: exact log-weights only where the Chernoff bound is
        # within 50 of a lower bound on the row's maximum (the exact value at the best bound)
        dist = np.maximum(0.0, np.maximum(lo - xs, xs - hi))
        bound = log_c[None] - 0.5 * np.sum(dist * dist, axis=2) / var[sl, None]  # (c, K)
        best = np.argmax(bound, axis=1)  # (c,)
        rows, cols = np.nonzero(bound >= _exact_box_terms(x[sl], sqrt_ab[sl], var[sl], log_c, lows, highs,
                                                          np.arange(c), best)[0][:, None] - _SKIP_LOG_RATIO)
        ell, g, tr_h = _exact_box_terms(x[sl], sqrt_ab[sl], var[sl], log_c, lows, highs, rows, cols)
        m = np.full(c, -np.inf)
        np.maximum.at(m, rows, ell)
        w = np.exp(ell - m[rows])  # (n,)
        total = np.bincount(rows, weights=w, minlength=c)
        r = w / total[rows]  # responsibilities of the kept (row, box) pairs
        g_bar = np.stack([np.bincount(rows, weights=r * g[:, d], minlength=c) for d in range(D)], axis=1)  # (c, D)
        spread = np.bincount(rows, weights=r * np.sum((g - g_bar[rows]) ** 2, axis=1), minlength=c)
        log_prob[sl] = m + np.log(total) - D * np.log(sqrt_ab[sl])
        score[sl] = g_bar
        laplacian[sl] = np.bincount(rows, weights=r * tr_h, minlength=c) + spread
    return log_prob, score, laplacian


def _exact_box_terms(x, sqrt_ab, var, log_c, lows, highs, rows, cols):
    r"""Log-weight, gradient (n, D) and Laplacian of box ``cols`` at query ``rows``."""
    sd = np.sqrt(var[rows])[:, None]  # (n, 1)
    za = (x[rows] - sqrt_ab[rows, None] * lows[cols]) / sd  # (n, D)
    zb = (x[rows] - sqrt_ab[rows, None] * highs[cols]) / sd
    log_z = _log_diff_ndtr_numpy(za, zb)
    ra = np.exp(-0.5 * za * za - 0.5 * LOG_2PI - log_z)  # phi(a) / Z
    rb = np.exp(-0.5 * zb * zb - 0.5 * LOG_2PI - log_z)  # phi(b) / Z
    g = (ra - rb) / sd
    tr_h = np.sum((-za * ra + zb * rb) / sd**2 - g * g, axis=1)
    return log_c[cols] + np.sum(log_z, axis=1), g, tr_h


# -- dispatch ---------------------------------------------------------------------------
# With NUMBA_DISABLE_JIT=1 the kernels would run as pure-Python loops; the twins compute
# the same numbers vectorized, so the public API stays usable (and tested) in that mode.

_JIT = not _numba_config.DISABLE_JIT
gmm_eval = _gmm_numba if _JIT else _gmm_numpy
empirical_eval = _empirical_numba if _JIT else _empirical_numpy
box_eval = _box_numba if _JIT else _box_numpy


# -- Hessian-vector products (the Jacobian of eps = -sigma score), in NumPy ----------------------
#
# Differentiating the mixture's score sum_k r_k g_k once more (dr_k = r_k (g_k - g_bar)^T dx):
#
#   H = sum_k r_k H_k + sum_k r_k (g_k - g_bar)(g_k - g_bar)^T,   H_k = d g_k / dx,
#
# so H v = sum_k r_k H_k v + sum_k r_k (g_k - g_bar) <g_k - g_bar, v>, for v (B, T, D), T tangents per
# query. Its trace is the Laplacian the kernels above return. These are only needed for a few
# tangents at a time (a sampler's Jacobian in low dimension), so they are vectorized NumPy in chunks.


def _mixture_hvp(r, g, hk_v, v):
    r"""H v of a mixture (comment above): r (c, K), g (c, K, D), hk_v (c, T, D) = sum_k r_k H_k v, v (c, T, D)."""
    g_bar = np.einsum("ck,ckd->cd", r, g)  # (c, D)
    dg = g - g_bar[:, None, :]  # (c, K, D)
    proj = np.einsum("ckd,ctd->ckt", dg, v)  # (c, K, T)
    return g_bar, hk_v + np.einsum("ck,ckt,ckd->ctd", r, proj, dg)


def _softmax_rows(ell):
    m = ell.max(axis=1, keepdims=True)
    w = np.exp(ell - m)
    return w / w.sum(axis=1, keepdims=True)


def gmm_hvp(x, sqrt_ab, alpha_bar, var, v, log_w, means, rot, eig, rotate):
    r"""Score (B, D) and Hessian-vector products (B, T, D) of the Gaussian mixture (``_gmm_numba``'s inputs).

    Component k: :math:`H_k = -U_k\,\mathrm{diag}(1/d_k)\,U_k^\top` (the comment above ``_gmm_numba``).
    """
    B, D = x.shape
    K, T = means.shape[0], v.shape[1]
    score, hv = np.empty((B, D)), np.empty((B, T, D))
    for sl in _chunks(B, K * (T + 1) * D):
        diff = x[sl, None, :] - sqrt_ab[sl, None, None] * means[None]  # (c, K, D)
        y = np.einsum("ckd,kde->cke", diff, rot) if rotate else diff  # (c, K, D) eigenbasis
        d = alpha_bar[sl, None, None] * eig[None] + var[sl, None, None]  # (c, K, D)
        ell = log_w[None] - 0.5 * (np.sum(y * y / d, axis=2) + np.sum(np.log(d), axis=2))  # (c, K) (up to a constant)
        r = _softmax_rows(ell)
        gy = -y / d
        g = np.einsum("kde,cke->ckd", rot, gy) if rotate else gy  # (c, K, D)
        vs = v[sl]  # (c, T, D)
        vy = np.einsum("ctd,kde->ckte", vs, rot) if rotate else np.broadcast_to(vs[:, None], (vs.shape[0], K, T, D))
        hy = -vy / d[:, :, None, :]  # (c, K, T, D): H_k v in the eigenbasis
        hk_v = np.einsum("kde,ckte,ck->ctd", rot, hy, r) if rotate else np.einsum("cktd,ck->ctd", hy, r)
        score[sl], hv[sl] = _mixture_hvp(r, g, hk_v, vs)
    return score, hv


def empirical_hvp(x, sqrt_ab, var, v, points):
    r"""The posterior mean (B, D) of the points and :math:`\mathrm{Cov}_r[p]\,v` (B, T, D) (``_empirical_numba``'s inputs).

    The caller turns them into the score :math:`(\sqrt{\bar\alpha}\,m - x)/\mathrm{var}` and its
    Hessian :math:`H v = (\bar\alpha/\mathrm{var}^2)\,\mathrm{Cov}_r[p]\,v - v/\mathrm{var}`
    (:math:`\partial m/\partial x = \sqrt{\bar\alpha}\,\mathrm{Cov}_r[p]/\mathrm{var}`).
    """
    B, D = x.shape
    N, T = points.shape[0], v.shape[1]
    mean, cov_v = np.empty((B, D)), np.empty((B, T, D))
    for sl in _chunks(B, N * (D + T)):
        diff = x[sl, None, :] - sqrt_ab[sl, None, None] * points[None]  # (c, N, D)
        r = _softmax_rows(-np.sum(diff * diff, axis=2) / (2.0 * var[sl, None]))  # (c, N)
        m = r @ points  # (c, D)
        dp = points[None] - m[:, None, :]  # (c, N, D)
        proj = np.einsum("cnd,ctd->cnt", dp, v[sl])  # (c, N, T)
        mean[sl], cov_v[sl] = m, np.einsum("cn,cnt,cnd->ctd", r, proj, dp)
    return mean, cov_v


def box_hvp(x, sqrt_ab, var, v, log_c, lows, highs):
    r"""Score (B, D) and Hessian-vector products (B, T, D) of the blurred boxes (``_box_numba``'s inputs).

    Each box is a product over coordinates, so :math:`H_k` is diagonal with the entries
    :math:`(\log f)''` of the comment above ``_box_numba``.
    """
    B, D = x.shape
    K, T = lows.shape[0], v.shape[1]
    score, hv = np.empty((B, D)), np.empty((B, T, D))
    for sl in _chunks(B, K * (T + 4) * D):
        sd = np.sqrt(var[sl])[:, None, None]  # (c, 1, 1)
        za = (x[sl, None, :] - sqrt_ab[sl, None, None] * lows[None]) / sd  # (c, K, D)
        zb = (x[sl, None, :] - sqrt_ab[sl, None, None] * highs[None]) / sd
        log_z = _log_diff_ndtr_numpy(za, zb)
        ra = np.exp(-0.5 * za * za - 0.5 * LOG_2PI - log_z)  # phi(a) / Z
        rb = np.exp(-0.5 * zb * zb - 0.5 * LOG_2PI - log_z)  # phi(b) / Z
        g = (ra - rb) / sd  # (c, K, D)
        h_diag = (-za * ra + zb * rb) / sd**2 - g * g  # (c, K, D) the diagonal of H_k
        r = _softmax_rows(log_c[None] + np.sum(log_z, axis=2))  # (c, K)
        vs = v[sl]
        hk_v = np.einsum("ck,ckd,ctd->ctd", r, h_diag, vs)
        score[sl], hv[sl] = _mixture_hvp(r, g, hk_v, vs)
    return score, hv
