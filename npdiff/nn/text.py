r"""The prompt's encoder and cross-attention, forward beside backward beside tangent, in plain NumPy.

A prompt arrives as token ids (B, L) padded with 0 (:mod:`npdiff.data.prompts`). The **encoder** puts a
learned start token in front (so even the empty prompt has one key to attend to: the unconditional
model), embeds tokens and positions and runs one pre-norm self-attention layer (Vaswani et al. 2017,
Eqs. 1-2; the pre-norm residual of GPT-2), with RMSNorm as the normalization (Zhang & Sennrich 2019)::

    X = E_tok[ids] + E_pos            (B, L + 1, C)  token and position embeddings
    c = X + MHA(RMSNorm(X), RMSNorm(X), mask)        the encoded prompt, the keys and values below

**Multi-head attention** of queries :math:`u` (B, N, C_q) on a context :math:`c` (B, L, C_c), M heads of
d = C / M channels, padded keys masked out (their scores are :math:`-\infty`, their weights exactly 0):

.. math::
    q = u W_q + b_q,\quad k = c W_k + b_k,\quad v = c W_v + b_v,\quad
    P = \mathrm{softmax}_{\text{keys}}\big(q k^\top/\sqrt d\big),\quad
    \mathrm{MHA}(u, c) = (P v) W_o + b_o

**Cross-attention** is :math:`u + \mathrm{MHA}(u, c)`: queries from the denoiser's features, keys and
values from the encoded prompt (Rombach et al. 2022, Eq. 3 and Fig. 3). The softmax and its symmetric
Jacobian are those of the U-Net's self-attention (:func:`npdiff.nn.unet.attention.softmax`,
:func:`npdiff.nn.unet.attention.softmax_adjoint`); the backward is the product rule,
:math:`\bar P = \bar a v^\top`, :math:`\bar v = P^\top\bar a`, :math:`\bar S = P\odot(\bar P - \sum\bar P P)`,
:math:`\bar q = \bar S k/\sqrt d`, :math:`\bar k = \bar S^\top q/\sqrt d`; the tangent along :math:`\dot u`
(the prompt does not move with x, so :math:`\dot c = 0` in the denoiser) is
:math:`\dot S = \dot q k^\top/\sqrt d`, :math:`\dot P = P\odot(\dot S - \sum P\dot S)`, :math:`\dot a = \dot P v`.

**RMSNorm**, :math:`y = g\odot x/r`, :math:`r = \sqrt{\overline{x^2} + \epsilon}` over the channels, has
:math:`\bar x = (g\odot\bar y)/r - x\,\overline{(g\odot\bar y)\odot x}/r^3` and the same rule for tangents.

Parameters are dicts of arrays (views of a flat vector, :mod:`npdiff.nn.prompt_mlp`); the functions
here are the layers, run on checked arrays.
"""

from __future__ import annotations

import numpy as np

from .unet.attention import softmax, softmax_adjoint

__all__ = ["ATTENTION_KEYS", "RMS_EPS", "cross_attention", "cross_attention_backward", "cross_attention_tangent",
           "encode", "encode_backward", "encode_tangent", "key_mask", "mha", "mha_backward", "mha_tangent",
           "rms_norm", "rms_norm_backward", "rms_norm_tangent", "token_embedding", "token_embedding_backward"]

#: the parameters of one multi-head attention: W (in, out) and b (out,) of q, k, v and the output
ATTENTION_KEYS = ("Wq", "bq", "Wk", "bk", "Wv", "bv", "Wo", "bo")
#: RMSNorm's epsilon inside the square root
RMS_EPS = 1e-6


# -- token and position embeddings: X = E_tok[ids] + E_pos ---------------------------------------
def key_mask(ids):
    r"""(B, L + 1) bool, True for the keys attention may read: the start token and every non-padding id."""
    return np.concatenate([np.ones((ids.shape[0], 1), dtype=bool), ids != 0], axis=1)


def token_embedding(ids, tok, pos):
    r"""X = tok[[start, ids]] + pos[:L + 1], (B, L + 1, C): the start token (id 1) in front of every prompt."""
    full = np.concatenate([np.ones((ids.shape[0], 1), dtype=ids.dtype), ids], axis=1)  # (B, L + 1)
    return tok[full] + pos[: full.shape[1]], full


def token_embedding_backward(dX, full, tok, pos):
    r"""Given dL/dX, the gradients of the tables: each row gathers the rows of dX that read it."""
    dtok = np.zeros(tok.shape)
    np.add.at(dtok, full, dX)  # (V, C)
    dpos = np.zeros(pos.shape)
    dpos[: dX.shape[1]] = dX.sum(axis=0)  # (L_max + 1, C)
    return dtok, dpos


# -- RMSNorm: y = g x / sqrt(mean(x^2) + eps) ------------------------------------------------------
def rms_norm(x, g):
    r"""y = g x / r, r = sqrt(mean over channels of x^2 + eps). Returns y and r (..., 1)."""
    r = np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + RMS_EPS)
    return g * x / r, r


def rms_norm_backward(dy, x, r, g):
    r"""Given dL/dy, the gradients of g and x (module docstring)."""
    gy = g * dy
    dx = gy / r - x * np.mean(gy * x, axis=-1, keepdims=True) / r**3
    dg = (dy * x / r).reshape(-1, x.shape[-1]).sum(axis=0)  # (C,)
    return dg, dx


def rms_norm_tangent(x_dot, x, r, g):
    r"""Tangent of y = g x / r: :math:`\dot y = g\odot(\dot x/r - x\,\overline{x\dot x}/r^3)`."""
    return g * (x_dot / r - x * np.mean(x * x_dot, axis=-1, keepdims=True) / r**3)


# -- multi-head attention of queries u on a context c, padded keys masked --------------------------
def _split(a, heads):
    # (..., N, C) -> (..., M, N, d)
    *lead, N, C = a.shape
    return np.moveaxis(a.reshape(*lead, N, heads, C // heads), -2, -3)


def _merge(a):
    # (..., M, N, d) -> (..., N, C)
    a = np.moveaxis(a, -3, -2)
    return a.reshape(*a.shape[:-2], a.shape[-2] * a.shape[-1])


def mha(u, c, mask, p, heads):
    r"""MHA(u, c) (B, N, C_out) for queries u (B, N, C_q), context c (B, L, C_c), mask (B, L). Returns it and the cache."""
    q = _split(u @ p["Wq"] + p["bq"], heads)  # (B, M, N, d)
    k = _split(c @ p["Wk"] + p["bk"], heads)  # (B, M, L, d)
    v = _split(c @ p["Wv"] + p["bv"], heads)  # (B, M, L, d)
    scale = q.shape[-1] ** -0.5
    S = np.where(mask[:, None, None, :], q @ np.swapaxes(k, -1, -2) * scale, -np.inf)  # (B, M, N, L)
    P = softmax(S)  # a masked key has weight exp(-inf) = 0 exactly
    a = _merge(P @ v)  # (B, N, C)
    return a @ p["Wo"] + p["bo"], {"u": u, "c": c, "q": q, "k": k, "v": v, "P": P, "a": a}


def mha_backward(dout, cache, p, heads):
    r"""Given dL/dMHA (B, N, C_out), the gradients of p (a dict), of u and of c."""
    u, c, q, k, v, P, a = (cache[n] for n in ("u", "c", "q", "k", "v", "P", "a"))
    scale = q.shape[-1] ** -0.5
    g = {"Wo": _flat(a).T @ _flat(dout), "bo": _flat(dout).sum(axis=0)}
    da = _split(dout @ p["Wo"].T, heads)  # (B, M, N, d)
    dP = da @ np.swapaxes(v, -1, -2)  # (B, M, N, L)
    dv = np.swapaxes(P, -1, -2) @ da  # (B, M, L, d)
    dS = softmax_adjoint(P, dP) * scale
    dq, dk = _merge(dS @ k), _merge(np.swapaxes(dS, -1, -2) @ q)  # (B, N, C), (B, L, C)
    dv = _merge(dv)
    for name, dz, inp in (("q", dq, u), ("k", dk, c), ("v", dv, c)):
        g["W" + name], g["b" + name] = _flat(inp).T @ _flat(dz), _flat(dz).sum(axis=0)
    du = dq @ p["Wq"].T
    dc = dk @ p["Wk"].T + dv @ p["Wv"].T
    return g, du, dc


def mha_tangent(u_dot, cache, p, heads, c_dot=None):
    r"""Tangent of MHA(u, c) along u_dot (K, B, N, C_q) (and c_dot (K, B, L, C_c), None: the context is fixed)."""
    q, k, v, P = cache["q"], cache["k"], cache["v"], cache["P"]
    scale = q.shape[-1] ** -0.5
    q_dot = _split(u_dot @ p["Wq"], heads)  # (K, B, M, N, d)
    S_dot = q_dot @ np.swapaxes(k, -1, -2)
    if c_dot is not None:
        k_dot, v_dot = _split(c_dot @ p["Wk"], heads), _split(c_dot @ p["Wv"], heads)
        S_dot = S_dot + q @ np.swapaxes(k_dot, -1, -2)
    P_dot = softmax_adjoint(P, S_dot * scale)  # masked keys: P = 0, so P_dot = 0 there
    a_dot = P_dot @ v if c_dot is None else P_dot @ v + P @ v_dot
    return _merge(a_dot) @ p["Wo"]


def _flat(a):
    return a.reshape(-1, a.shape[-1])


# -- the encoder: c = X + MHA(RMSNorm(X), RMSNorm(X)) -----------------------------------------------
def encode(ids, tok, pos, g, p, heads):
    r"""The encoded prompt c (B, L + 1, C) of ids (B, L), its key mask (B, L + 1) and the cache."""
    X, full = token_embedding(ids, tok, pos)
    mask = key_mask(ids)
    h, r = rms_norm(X, g)
    att, att_cache = mha(h, h, mask, p, heads)
    return X + att, mask, {"X": X, "full": full, "h": h, "r": r, "att": att_cache}


def encode_backward(dc, cache, tok, pos, g, p, heads):
    r"""Given dL/dc (B, L + 1, C), the gradients of tok, pos, g and p (a dict)."""
    gp, dh_q, dh_kv = mha_backward(dc, cache["att"], p, heads)
    dg, dX = rms_norm_backward(dh_q + dh_kv, cache["X"], cache["r"], g)
    dtok, dpos = token_embedding_backward(dc + dX, cache["full"], tok, pos)  # the residual passes dc through
    return dtok, dpos, dg, gp


def encode_tangent(X_dot, cache, g, p, heads):
    r"""Tangent of c along a tangent of the embeddings X_dot (K, B, L + 1, C) (the ids are integers: no tangent)."""
    h_dot = rms_norm_tangent(X_dot, cache["X"], cache["r"], g)
    return X_dot + mha_tangent(h_dot, cache["att"], p, heads, c_dot=h_dot)


# -- cross-attention: z' = z + MHA(z, c) ----------------------------------------------------------
def cross_attention(z, c, mask, p, heads):
    r"""z' = z + MHA(z, c) (B, N, C_q): queries from the denoiser's tokens z, keys and values from c. Returns z' and the cache."""
    att, cache = mha(z, c, mask, p, heads)
    return z + att, cache


def cross_attention_backward(dz_out, cache, p, heads):
    r"""Given dL/dz', the gradients of p, of z (the residual passes dL/dz' through) and of c."""
    gp, dz, dc = mha_backward(dz_out, cache, p, heads)
    return gp, dz_out + dz, dc


def cross_attention_tangent(z_dot, cache, p, heads):
    r"""Tangent of z' along z_dot (K, B, N, C_q); the prompt does not move with x."""
    return z_dot + mha_tangent(z_dot, cache, p, heads)
