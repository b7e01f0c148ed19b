r"""The MLP's output and exact Jacobian trace, by blocked and fused forward mode.

This is what the likelihood ODE (:mod:`npdiff.likelihood.ode`) evaluates ~200 times, so it
is written for speed; :func:`npdiff.nn.mlp.divergence` computes the same trace the plain way
and the tests hold the two together. The math is the forward-mode Jacobian of
:mod:`npdiff.nn.mlp` with the D unit tangents :math:`\dot x = e_d`:

.. math:: \dot z_0^{(d)} = \partial_{x_d} e\,W_0,\quad
          \dot h_k^{(d)} = \dot h_{k-1}^{(d)} + \mathrm{act}'(z_k) \odot \dot h_{k-1}^{(d)} W_k,\quad
          \mathrm{tr}\,\frac{\partial y}{\partial x} = \sum_d \big(\dot h_L^{(d)} W_{out}\big)_d

Three things make it fast:

- **One array per block.** A block of n points and its D tangents are the row blocks of one
  (1 + D, n, H) array S, so a hidden layer is ONE ((1 + D) n, H) x (H, H) matmul followed
  by ONE kernel (:func:`~npdiff.nn.fast.kernels.act_tangents`) that applies the activation to the
  point rows and :math:`\mathrm{act}'` to the tangent rows; the derivative never touches memory.
- **Blocks that stay in cache.** n is chosen so that S holds ~768 rows (~0.8 MB at H = 128 in
  float64): every elementwise pass reads what the matmul just wrote, from L2 rather than RAM,
  and the tangents of images (D = 64) never need a (D, B, H) array.
- **No embedding tangent.** The derivative of a coordinate's sinusoidal block is the block
  itself with sine and cosine swapped (:mod:`npdiff.nn.embedding`):
  :math:`c f\odot[\cos\phi, -\sin\phi]\,[A; B] = [\sin\phi, \cos\phi]\,[-c f\odot B;\ c f\odot A]`,
  with A, B the rows of :math:`W_0` that read the sines and the cosines. So the first-layer
  tangent is the embedding times "rotated" weights, made once per call, and no tangent of the
  embedding is ever computed. Raw coordinates add their row of :math:`W_0`.

As in :meth:`~npdiff.nn.fast.network.FastMLP.forward`, a batch at one time folds
:math:`\mathrm{emb}(t)\,W_0` into the first layer's bias (the embedding then skips the time
columns), and a conditional network's label row joins it (one label for the batch) or is
added to each point's pre-activation; the label does not move with x, so no tangent changes.
The blocks may be shared by worker threads (:mod:`npdiff.nn.fast.workers`; one by default).
"""

from __future__ import annotations

import numpy as np

from . import kernels as K
from .workers import run_parallel, threads

__all__ = ["BLOCK_ROWS", "one_label", "one_time", "output_and_trace", "rotated_weights"]

#: rows of one block's (1 + D, n, H) array: n = max(1, BLOCK_ROWS // (1 + D))
BLOCK_ROWS = 768


def one_time(t: np.ndarray) -> bool:
    r"""Whether a batch of more than one point shares one time, so emb(t) W_0 can join the first bias."""
    return t.shape[0] > 1 and t[0] == t[-1] and bool(np.all(t == t[0]))


def one_label(y: np.ndarray) -> bool:
    r"""Whether a batch shares one label, so its row of the label table can join the first bias."""
    return y[0] == y[-1] and bool(np.all(y == y[0]))


def rotated_weights(W_block: np.ndarray, cf: np.ndarray) -> np.ndarray:
    r"""Weights that turn a coordinate's embedding into its first-layer tangent (module docstring).

    ``W_block`` (2K, H): the rows of :math:`W_0` reading :math:`[\sin\phi, \cos\phi]`;
    ``cf`` (K,): :math:`c f`. Returns :math:`[-c f\odot B;\ c f\odot A]` (2K, H).
    """
    n_freq = cf.shape[0]
    A, B = W_block[:n_freq], W_block[n_freq:]
    return np.concatenate([-cf[:, None] * B, cf[:, None] * A]).astype(W_block.dtype)  # (2K, H)


def output_and_trace(mlp, layers: list, x: np.ndarray, t: np.ndarray, dtype: np.dtype, y: np.ndarray | None = None,
                     table: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Network output y (B, D) and :math:`\mathrm{tr}\,\partial y/\partial x` (B,) in ``dtype``.

    ``mlp`` is the :class:`~npdiff.nn.fast.network.FastMLP`, ``layers`` the (W, b) views of the
    weights (in ``dtype``), x (B, D) and t (B,) already checked; a conditional network's label
    table (C + 1, H) and the row y (B,) of each point. Nothing is validated here.
    """
    cfg = mlp.config
    B, D = x.shape
    H, E, emb_dim = cfg.width, cfg.input_width, cfg.emb_dim
    W0, b0 = layers[0]
    no_tan = np.empty((0, 0, 0), dtype)  # the embed kernel's placeholder: no embedding tangent wanted
    folded = one_time(t)
    if folded:  # one time for the batch: emb(t) W_0 joins the bias
        n_x = E - emb_dim
        emb_t = np.empty((1, emb_dim), dtype)  # (1, emb_dim)
        K.embed(x[:1], t[:1], mlp.freq, cfg.time_scale, cfg.coord_scale, False, False, emb_t, no_tan, False)
        b0 = b0 + emb_t[0] @ W0[n_x:]  # (H,)
        W_in = W0[:n_x]
    else:
        n_x = E
        W_in = W0
    u = None  # (B, H) label rows, when the batch has more than one label
    if table is not None:
        if one_label(y):
            b0 = b0 + table[y[0]]
        else:
            u = table[y]
    col = D if cfg.raw else 0  # first coordinate-embedding column
    tb = np.ascontiguousarray(W0[:D]) if cfg.raw else np.zeros((D, H), dtype)  # (D, H) raw part of the tangent
    if cfg.sinusoidal:
        cf = cfg.coord_scale * mlp.freq
        W_rot = [rotated_weights(W0[col + d * emb_dim:col + (d + 1) * emb_dim], cf) for d in range(D)]
    W_out_t = np.ascontiguousarray(layers[-1][0].T)  # (D, H)
    b_out = layers[-1][1]
    n = max(1, BLOCK_ROWS // (1 + D))
    y = np.empty((B, D), dtype)  # (B, D)
    tr = np.empty(B, dtype)  # (B,)

    def run(starts: list[int]) -> None:
        eb = sb = zb = None
        for start in starts:
            stop = min(start + n, B)
            m = stop - start
            if eb is None or m != eb.shape[0]:  # contiguous buffers, so (1 + D, m, H) reshapes to rows in place
                eb = np.empty((m, n_x), dtype)  # (m, E_x) embedding of the block
                sb = np.empty((1 + D, m, H), dtype)  # (1 + D, m, H) the points and their tangents
                zb = np.empty_like(sb)  # (1 + D, m, H) pre-activations
            K.embed(x[start:stop], t[start:stop], mlp.freq, cfg.time_scale, cfg.coord_scale, cfg.raw,
                    cfg.sinusoidal, eb, no_tan, False, not folded)
            np.matmul(eb, W_in, out=zb[0])
            if u is not None:
                zb[0] += u[start:stop]
            if cfg.sinusoidal:
                for d in range(D):
                    np.matmul(eb[:, col + d * emb_dim:col + (d + 1) * emb_dim], W_rot[d], out=zb[1 + d])
            K.act_tangents(zb, b0, tb, True, cfg.sinusoidal, mlp.act, sb)
            for k in range(1, cfg.depth + 1):
                W, b = layers[k]
                np.matmul(sb.reshape(-1, H), W, out=zb.reshape(-1, H))
                K.act_tangents(zb, b, tb, False, True, mlp.act, sb)
            np.matmul(sb[0], layers[-1][0], out=y[start:stop])
            K.trace_out(sb, W_out_t, tr[start:stop])

    starts = list(range(0, B, n))
    workers = min(threads(), len(starts))  # the blocks are independent:
    run_parallel(run, [starts[i::workers] for i in range(workers)])  # any worker count, the same bits
    y += b_out
    return y, tr

