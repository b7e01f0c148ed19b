r"""The MLP's elementwise work as fused Numba kernels, each beside its plain-NumPy twin.

Matmuls stay in BLAS (``np.matmul(..., out=...)``); everything between two matmuls is one
kernel call, so a training step is a short, fixed sequence of calls on preallocated buffers
(:mod:`npdiff.nn.fast.network`):

==================  ===================================================================
``embed``           network input [x | emb(x_1..x_D) | emb(t)] (and, if asked, the
                    derivative of each coordinate block), :mod:`npdiff.nn.embedding`
``bias_act``        ``h = act(z + b) (+ residual)`` and ``d = act'(z + b)`` in one pass
``act_backward``    ``g += tmp`` (residual), ``dz = g * d``, ``db = sum_rows dz``
``mse_loss``        weighted squared error, its gradient and the output bias gradient
``act_tangents``    one layer of the blocked exact trace: a point and its D tangents
                    (:mod:`npdiff.nn.fast.trace`)
``trace_out``       the output layer's Jacobian diagonal, summed: the trace
``adamw_ema``       global-norm clip, AdamW with bias correction, EMA: one pass
==================  ===================================================================

The ``_nb_*`` functions are the kernels (``@njit(cache=True)``, no signatures, so nothing
compiles at import); the ``_np_*`` functions are their NumPy twins, written from the
formulas of :mod:`npdiff.nn.activations` and :mod:`npdiff.nn.embedding`, and the tests
check that each pair agrees. The public names (``embed``, ``bias_act``, ...) point at the
kernels, or at the twins when Numba's JIT is disabled (``NUMBA_DISABLE_JIT=1``), where
element-by-element Python loops would be a thousand times slower; :func:`set_backend`
switches by hand. Kernels never validate their inputs.

Every kernel is serial, so the cores go to OpenBLAS inside the matmuls (why row-parallel
kernels were dropped: ``docs/measurements/speed.md``), and releases the GIL (``nogil``), so the worker
threads of the exact trace (:mod:`npdiff.nn.fast.workers`) run them side by side.

Why the kernels are written the way they are: constants are float32 scalars so a float32
kernel stays in float32 arithmetic (a float64 literal would promote every operation);
``error_model="numpy"`` removes Python's zero-division branch, which would block
vectorization; ``fastmath`` lets LLVM vectorize the reductions (except in ``embed``, whose
Cody-Waite range reduction must not be reassociated: it only allows fused multiply-adds).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit

from .. import activations as _act
from .. import embedding as _emb

__all__ = ["act_backward", "act_tangents", "adamw_ema", "adamw_hyper", "backend", "bias_act", "embed", "mse_loss", "set_backend",
           "trace_out"]

_FAST = dict(cache=True, fastmath=True, error_model="numpy", nogil=True)

# -- float32 constants (see the module docstring for why float32) --------------------------
_ZERO, _HALF, _QUARTER, _TWO = np.float32(0.0), np.float32(0.5), np.float32(0.25), np.float32(2.0)
_INV_SQRT2 = np.float32(_act.INV_SQRT2)
_HALF_INV_SQRT2 = np.float32(0.5 * _act.INV_SQRT2)
_EP0, _EP1, _EP2, _EP3, _EP4, _EP5, _EP6 = (np.float32(c) for c in _act.ERF_P)
_EQ0, _EQ1, _EQ2, _EQ3, _EQ4 = (np.float32(c) for c in _act.ERF_Q)
_ECLAMP = np.float32(_act.ERF_CLAMP)
_TP0, _TP1, _TP2, _TP3, _TP4, _TP5, _TP6 = (np.float32(c) for c in _act.TANH_P)
_TQ0, _TQ1, _TQ2, _TQ3 = (np.float32(c) for c in _act.TANH_Q)
_TCLAMP = np.float32(_act.TANH_CLAMP)


# -- scalar building blocks (inlined into the kernels) -------------------------------------
@njit(inline="always")
def _erf_pair(x):
    # erf(x) ~ x P(u)/Q(u), u = x^2, and its derivative by the quotient rule (activations.py)
    xc = np.minimum(np.maximum(x, -_ECLAMP), _ECLAMP)  # ufuncs keep x's precision, also with the JIT off
    u = xc * xc
    p = _EP6
    dp = _ZERO
    dp = dp * u + p
    p = p * u + _EP5
    dp = dp * u + p
    p = p * u + _EP4
    dp = dp * u + p
    p = p * u + _EP3
    dp = dp * u + p
    p = p * u + _EP2
    dp = dp * u + p
    p = p * u + _EP1
    dp = dp * u + p
    p = p * u + _EP0
    q = _EQ4
    dq = _ZERO
    dq = dq * u + q
    q = q * u + _EQ3
    dq = dq * u + q
    q = q * u + _EQ2
    dq = dq * u + q
    q = q * u + _EQ1
    dq = dq * u + q
    q = q * u + _EQ0
    value = xc * p / q
    grad = (p * q + _TWO * u * (dp * q - p * dq)) / (q * q)
    return value, (grad if x == xc else _ZERO)


@njit(inline="always")
def _tanh_pair(y):
    # tanh(y) ~ y R(u)/S(u), u = y^2, and its derivative (activations.py)
    yc = np.minimum(np.maximum(y, -_TCLAMP), _TCLAMP)  # ufuncs keep y's precision, also with the JIT off
    u = yc * yc
    p = _TP6
    dp = _ZERO
    dp = dp * u + p
    p = p * u + _TP5
    dp = dp * u + p
    p = p * u + _TP4
    dp = dp * u + p
    p = p * u + _TP3
    dp = dp * u + p
    p = p * u + _TP2
    dp = dp * u + p
    p = p * u + _TP1
    dp = dp * u + p
    p = p * u + _TP0
    q = _TQ3
    dq = _ZERO
    dq = dq * u + q
    q = q * u + _TQ2
    dq = dq * u + q
    q = q * u + _TQ1
    dq = dq * u + q
    q = q * u + _TQ0
    value = yc * p / q
    grad = (p * q + _TWO * u * (dp * q - p * dq)) / (q * q)
    return value, (grad if y == yc else _ZERO)


@njit(inline="always")
def _gelu_pair(z):
    # gelu(z) = z Phi(z), gelu'(z) = Phi(z) + z Phi'(z), Phi(z) = (1 + erf(z / sqrt 2)) / 2
    e, de = _erf_pair(z * _INV_SQRT2)
    cdf = _HALF + _HALF * e
    return z * cdf, cdf + z * _HALF_INV_SQRT2 * de


@njit(inline="always")
def silu_pair(z):
    # silu(z) = z sig(z), silu'(z) = sig(z) + z sig'(z), sig(z) = (1 + tanh(z / 2)) / 2
    th, dth = _tanh_pair(z * _HALF)
    sig = _HALF + _HALF * th
    return z * sig, sig + z * _QUARTER * dth


# sin and cos by Cody-Waite reduction to |r| <= pi/4 and Taylor series to r^17 / r^16
# (truncation error < 1e-17 there), in float64: vectorizable, unlike libm's sin/cos. Accurate to
# ~1e-16 for phases below ~1e6 (|k| < 2^20 keeps k * _PIO2_1 exact); the embeddings see at most
# 1000 t and 25 x_d.
_TWO_OVER_PI = 0.636619772367581382433
_PIO2_1 = 1.57079632673412561417  # first 33 bits of pi/2: k * _PIO2_1 is exact for |k| < 2^20
_PIO2_2 = 6.07710050630396597660e-11  # next 33 bits
_PIO2_2T = 2.02226624879595063154e-21  # pi/2 - _PIO2_1 - _PIO2_2
_S1, _S2, _S3, _S4, _S5, _S6, _S7, _S8 = ((-1.0) ** n / math.factorial(2 * n + 1) for n in range(1, 9))
_C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8 = ((-1.0) ** n / math.factorial(2 * n) for n in range(1, 9))


@njit(inline="always")
def _sincos(a):
    k = np.floor(a * _TWO_OVER_PI + 0.5)  # np.floor stays a float (math.floor is an int)
    r = ((a - k * _PIO2_1) - k * _PIO2_2) - k * _PIO2_2T  # a = k pi/2 + r
    r2 = r * r
    s = r + r * r2 * (_S1 + r2 * (_S2 + r2 * (_S3 + r2 * (_S4 + r2 * (_S5 + r2 * (_S6 + r2 * (_S7 + r2 * _S8)))))))
    c = 1.0 + r2 * (_C1 + r2 * (_C2 + r2 * (_C3 + r2 * (_C4 + r2 * (_C5 + r2 * (_C6 + r2 * (_C7 + r2 * _C8)))))))
    q = np.int32(k) & 3  # quadrant: sin(r + q pi/2) is s, c, -s, -c; int32, as AVX2 has no vector int64 conversion
    swap = q & 1
    sin_sign = 1 - (q & 2)
    cos_sign = 1 - ((q + 1) & 2)
    return sin_sign * (c if swap else s), cos_sign * (s if swap else c)


# -- embed -----------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy", fastmath={"contract"}, nogil=True)  # FMA only: no reassociation of the reduction
def _nb_embed(x, t, freq, time_scale, coord_scale, raw, coord, out, tan, want_tan, with_time=True):
    B, D = x.shape
    K = freq.shape[0]
    for i in range(B):
        col = 0
        if raw:
            for d in range(D):
                out[i, d] = x[i, d]
            col = D
        if coord:
            for d in range(D):
                s = coord_scale * x[i, d]
                sin_row = out[i, col:col + K]  # row slices, not 2-D indexing: this is what LLVM vectorizes
                cos_row = out[i, col + K:col + 2 * K]
                for k in range(K):
                    sin_row[k], cos_row[k] = _sincos(s * freq[k])
                if want_tan:
                    dsin, dcos = tan[d, i, :K], tan[d, i, K:]
                    for k in range(K):
                        cf = coord_scale * freq[k]
                        dsin[k] = cf * cos_row[k]
                        dcos[k] = -cf * sin_row[k]
                col += 2 * K
        if with_time:
            s = time_scale * t[i]
            sin_row = out[i, col:col + K]
            cos_row = out[i, col + K:col + 2 * K]
            for k in range(K):
                sin_row[k], cos_row[k] = _sincos(s * freq[k])


def _np_embed(x, t, freq, time_scale, coord_scale, raw, coord, out, tan, want_tan, with_time=True):
    emb_dim = 2 * freq.shape[0]
    e = _emb.embed(x, t, emb_dim=emb_dim, time_scale=time_scale, coord_scale=coord_scale, raw=raw, coord=coord)
    out[...] = e if with_time else e[:, :-emb_dim]
    if want_tan:
        tan[...] = _emb.embed_tangent(x, emb_dim=emb_dim, coord_scale=coord_scale)


# -- bias + activation (+ residual), forward ------------------------------------------------
@njit(**_FAST)
def _nb_bias_act(z, b, res, act, residual, h, d):
    B, H = z.shape
    if act == 0:
        for i in range(B):
            for j in range(H):
                hv, dv = _gelu_pair(z[i, j] + b[j])
                h[i, j] = hv + res[i, j] if residual else hv
                d[i, j] = dv
    else:
        for i in range(B):
            for j in range(H):
                hv, dv = silu_pair(z[i, j] + b[j])
                h[i, j] = hv + res[i, j] if residual else hv
                d[i, j] = dv


def _np_bias_act(z, b, res, act, residual, h, d):
    value, deriv = (_act.gelu if act == 0 else _act.silu)(z + b)
    h[...] = value + res if residual else value
    d[...] = deriv


# -- activation, backward -------------------------------------------------------------------
@njit(**_FAST)
def _nb_act_backward(g, tmp, d, accumulate, dz, db):
    B, H = g.shape
    acc = np.zeros(H)  # float64 column sums whatever the dtype
    for i in range(B):
        for j in range(H):
            gv = g[i, j]
            if accumulate:
                gv += tmp[i, j]  # residual: the gradient reaching h_{k-1} through both paths
                g[i, j] = gv
            v = gv * d[i, j]
            dz[i, j] = v
            acc[j] += v
    for j in range(H):
        db[j] = acc[j]


def _np_act_backward(g, tmp, d, accumulate, dz, db):
    if accumulate:
        g += tmp
    dz[...] = g * d
    db[...] = dz.sum(axis=0, dtype=np.float64)


# -- loss -----------------------------------------------------------------------------------
@njit(**_FAST)
def _nb_mse_loss(out, bias, target, weight, dout, db):
    B, D = out.shape
    scale = 1.0 / (B * D)
    loss = 0.0
    acc = np.zeros(D)
    for i in range(B):
        w = weight[i]
        for j in range(D):
            r = out[i, j] + bias[j] - target[i, j]
            loss += w * r * r
            gv = 2.0 * scale * w * r
            dout[i, j] = gv
            acc[j] += gv
    for j in range(D):
        db[j] = acc[j]
    return loss * scale


def _np_mse_loss(out, bias, target, weight, dout, db):
    r = out.astype(np.float64) + bias - target  # (B, D)
    w = weight[:, None]
    dout[...] = 2.0 * w * r / r.size
    db[...] = dout.sum(axis=0, dtype=np.float64)
    return float(np.mean(w * r * r))


# -- a layer of the blocked exact trace: the point and its D tangents in one array (npdiff.nn.fast.trace) ----
@njit(**_FAST)
def _nb_act_tangents(z, b, tb, first, tan_z, act, s):
    # z, s (1 + D, n, H): row block 0 is the point, block k its tangent along x_k.
    # first layer: s_0 = act(z_0 + b), s_k = act' * (z_k + tb_k) (z_k ignored unless tan_z);
    # residual block: s_0 += act(z_0 + b), s_k += act' * z_k
    nT, n, H = z.shape
    dv = np.empty(H, z.dtype)  # act'(z_0 + b) of one row, shared by its D tangents
    for i in range(n):
        if act == 0:
            for j in range(H):
                hv, dv[j] = _gelu_pair(z[0, i, j] + b[j])
                s[0, i, j] = hv if first else s[0, i, j] + hv
        else:
            for j in range(H):
                hv, dv[j] = silu_pair(z[0, i, j] + b[j])
                s[0, i, j] = hv if first else s[0, i, j] + hv
        for k in range(1, nT):
            if not first:
                for j in range(H):
                    s[k, i, j] += dv[j] * z[k, i, j]
            elif tan_z:
                for j in range(H):
                    s[k, i, j] = dv[j] * (z[k, i, j] + tb[k - 1, j])
            else:
                for j in range(H):
                    s[k, i, j] = dv[j] * tb[k - 1, j]


def _np_act_tangents(z, b, tb, first, tan_z, act, s):
    value, deriv = (_act.gelu if act == 0 else _act.silu)(z[0] + b)
    if first:
        s[0] = value
        s[1:] = deriv[None] * ((z[1:] if tan_z else 0.0) + tb[:, None, :])
    else:
        s[0] += value
        s[1:] += deriv[None] * z[1:]


@njit(**_FAST)
def _nb_trace_out(s, w_out_t, tr):
    # tr_i = sum_k (s_k W_out)_{i, k}: only the diagonal of the output Jacobian, w_out_t = W_out^T (D, H)
    nT, n, H = s.shape
    for i in range(n):
        acc = 0.0
        for k in range(1, nT):
            w = w_out_t[k - 1]
            for j in range(H):
                acc += s[k, i, j] * w[j]
        tr[i] = acc


def _np_trace_out(s, w_out_t, tr):
    tr[...] = np.einsum("kij,kj->i", s[1:], w_out_t)


# -- optimizer: clip, AdamW, EMA --------------------------------------------------------------
@njit(**_FAST)
def _nb_adamw_ema(p, g, m, v, ema, hyper, clip_norm):
    # hyper (dtype of p): beta1, 1 - beta1, beta2, 1 - beta2, lr / (1 - beta1^s), 1 / sqrt(1 - beta2^s),
    # eps, 1 - lr * weight_decay, ema decay, 1 - ema decay; in p's dtype so the loop stays float32
    n = p.shape[0]
    sq = 0.0
    for i in range(n):
        gi = np.float64(g[i])
        sq += gi * gi
    norm = math.sqrt(sq)
    cast = np.empty(1, p.dtype)
    cast[0] = min(clip_norm / (norm + 1e-6), 1.0) if clip_norm > 0.0 else 1.0
    coef = cast[0]
    beta1, one_m_beta1, beta2, one_m_beta2 = hyper[0], hyper[1], hyper[2], hyper[3]
    step_size, inv_sqrt_bc2, eps, shrink, decay, one_m_decay = hyper[4], hyper[5], hyper[6], hyper[7], hyper[8], hyper[9]
    for i in range(n):
        gi = g[i] * coef
        mi = beta1 * m[i] + one_m_beta1 * gi
        vi = beta2 * v[i] + one_m_beta2 * gi * gi
        m[i] = mi
        v[i] = vi
        pi = p[i] * shrink - step_size * mi / (math.sqrt(vi) * inv_sqrt_bc2 + eps)
        p[i] = pi
        ema[i] = decay * ema[i] + one_m_decay * pi
    return norm


def _np_adamw_ema(p, g, m, v, ema, hyper, clip_norm):
    beta1, one_m_beta1, beta2, one_m_beta2, step_size, inv_sqrt_bc2, eps, shrink, decay, one_m_decay = hyper
    norm = float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))
    coef = min(clip_norm / (norm + 1e-6), 1.0) if clip_norm > 0.0 else 1.0
    gc = g * p.dtype.type(coef)
    m[...] = beta1 * m + one_m_beta1 * gc
    v[...] = beta2 * v + one_m_beta2 * gc * gc
    p[...] = p * shrink - step_size * m / (np.sqrt(v) * inv_sqrt_bc2 + eps)
    ema[...] = decay * ema + one_m_decay * p
    return norm


def adamw_hyper(dtype, lr, beta1, beta2, eps, weight_decay, step, ema_decay):
    r"""The ``hyper`` vector of ``adamw_ema`` for update number ``step`` (bias corrections of Kingma & Ba 2015)."""
    return np.array([beta1, 1.0 - beta1, beta2, 1.0 - beta2, lr / (1.0 - beta1**step), 1.0 / math.sqrt(1.0 - beta2**step),
                     eps, 1.0 - lr * weight_decay, ema_decay, 1.0 - ema_decay], dtype=dtype)


# -- dispatch -------------------------------------------------------------------------------
_NAMES = ("embed", "bias_act", "act_backward", "mse_loss", "act_tangents", "trace_out", "adamw_ema")
backend = ""


def set_backend(name: str) -> None:
    r"""Point the public kernel names at the Numba kernels (``"numba"``) or their twins (``"numpy"``)."""
    global backend
    if name not in ("numba", "numpy"):
        raise ValueError(f"backend must be 'numba' or 'numpy', got {name!r}")
    prefix = "_nb_" if name == "numba" else "_np_"
    for n in _NAMES:
        globals()[n] = globals()[prefix + n]
    backend = name


embed = bias_act = act_backward = mse_loss = act_tangents = trace_out = adamw_ema = None  # bound just below
set_backend("numpy" if numba.config.DISABLE_JIT else "numba")
