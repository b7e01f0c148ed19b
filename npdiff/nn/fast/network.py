r"""The fast path of the MLP: the reference network of :mod:`npdiff.nn.mlp`, into preallocated buffers.

The same forward and backward passes as the reference, with everything between two matmuls
fused into one Numba kernel (:mod:`npdiff.nn.fast.kernels`) and every intermediate written
into buffers that are allocated once per batch size, so a training step allocates nothing.
The tests hold each result equal to the reference to 1e-12 in float64. Nothing here checks
its inputs: the trainer and :class:`~npdiff.nn.model.DiffusionMLP` check them at their door.

What the buffers hold, for a batch of B rows (the reference names in brackets)::

    emb   (B, E)   network input                     [e]
    h[k]  (B, H)   output of layer k                 [h_k]
    d[k]  (B, H)   act'(z_k), kept for the backward  [act(z_k)[1]]
    out   (B, D)   h_L W_out, the output without its bias
    g     (B, H)   dL/dh_k, overwritten layer by layer on the way down
    dz    (B, H)   dL/dz_k

One speed-up the reference does not need: a batch that shares one time (every sampler and
ODE step) has the same :math:`\mathrm{emb}(t)\,W_0` in every row, so that product is computed
once, folded into the first layer's bias, and the first matmul reads only the x columns.

The label of a conditional network is a row of the table E added to :math:`z_0`: a per-row
bias, or, when the whole batch shares one label (a guided sampler), one more term folded
into the bias. The table's gradient is :math:`z_0`'s gradient gathered by label, the column
sums :math:`\bar b_0` split into rows (:func:`npdiff.nn.mlp.label_rows_backward`).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ..activations import ACTIVATIONS
from ..config import Layers, MLPConfig
from ..embedding import frequencies
from . import kernels as K
from .trace import one_label, one_time, output_and_trace

__all__ = ["Buffers", "FastMLP"]


class Buffers:
    r"""Preallocated arrays for one batch size and dtype (module docstring)."""

    def __init__(self, B: int, config: MLPConfig, dtype: np.dtype) -> None:
        H, L = config.width, config.depth
        self.emb = np.empty((B, config.input_width), dtype)  # (B, E)
        self.z = np.empty((B, H), dtype)  # pre-activation scratch
        self.h = [np.empty((B, H), dtype) for _ in range(L + 1)]  # h_0 .. h_L
        self.d = [np.empty((B, H), dtype) for _ in range(L + 1)]  # act'(z_0) .. act'(z_L)
        self.out = np.empty((B, config.dim), dtype)  # h_L W_out, without b_out
        self.dout = np.empty((B, config.dim), dtype)  # dL/dy
        self.g = np.empty((B, H), dtype)  # dL/dh_k
        self.dz = np.empty((B, H), dtype)  # dL/dz_k
        self.tmp = np.empty((B, H), dtype)
        self.no_tan = np.empty((0, 0, 0), dtype)  # the embed kernel's placeholder: no embedding tangent wanted


class FastMLP:
    r"""The network of ``config``, computed fast on weights given as :meth:`MLPConfig.layers` views.

    It owns no weights, only reusable buffers: the same ``FastMLP`` serves the float32 training
    weights and a float64 copy used for likelihoods (the dtype of the weights is the compute dtype).
    """

    def __init__(self, config: MLPConfig) -> None:
        self.config = config
        self.act = ACTIVATIONS[config.activation]  # the kernels' code for the activation
        self.freq = frequencies(config.emb_dim)  # (emb_dim / 2,)
        self._buffers: OrderedDict[tuple[int, str], Buffers] = OrderedDict()

    def buffers(self, B: int, dtype: np.dtype) -> Buffers:
        r"""The buffers for batch size B and ``dtype`` (the last few sizes are kept)."""
        key = (B, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = Buffers(B, self.config, np.dtype(dtype))
            while len(self._buffers) > 4:
                self._buffers.popitem(last=False)
        else:
            self._buffers.move_to_end(key)
        return buf

    def forward(self, layers: Layers, x: np.ndarray, t: np.ndarray, buf: Buffers, y: np.ndarray | None = None,
                table: np.ndarray | None = None) -> None:
        r"""The reference ``forward`` into ``buf``: fills ``emb``, ``h``, ``d`` and ``out`` = h_L W_out (no bias).

        A conditional network also takes its label table (C + 1, H) and the row y (B,) of each point.
        """
        cfg = self.config
        K.embed(x, t, self.freq, cfg.time_scale, cfg.coord_scale, cfg.raw, cfg.sinusoidal, buf.emb, buf.no_tan, False)
        W, b = layers[0]
        if one_time(t):  # emb(t) W_0 is one row: fold it into the bias (module docstring)
            n_x = cfg.input_width - cfg.emb_dim
            np.matmul(buf.emb[:, :n_x], W[:n_x], out=buf.z)
            b = b + buf.emb[0, n_x:] @ W[n_x:]  # (H,)
        else:
            np.matmul(buf.emb, W, out=buf.z)
        if table is not None:
            if one_label(y):  # one row for the batch: it joins the bias too
                b = b + table[y[0]]
            else:
                buf.z += table[y]  # (B, H) a bias per row
        K.bias_act(buf.z, b, buf.z, self.act, False, buf.h[0], buf.d[0])  # h_0 = act(z_0), d_0 = act'(z_0)
        for k in range(1, cfg.depth + 1):
            W, b = layers[k]
            np.matmul(buf.h[k - 1], W, out=buf.z)
            K.bias_act(buf.z, b, buf.h[k - 1], self.act, True, buf.h[k], buf.d[k])  # h_k = h_{k-1} + act(z_k)
        np.matmul(buf.h[-1], layers[-1][0], out=buf.out)

    def output(self, layers: Layers, x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None,
               table: np.ndarray | None = None) -> np.ndarray:
        r"""The network output y (B, D), a new array in the dtype of the weights."""
        buf = self.buffers(x.shape[0], layers[0][0].dtype)
        self.forward(layers, x, t, buf, y, table)
        return buf.out + layers[-1][1]

    def loss_and_grad(self, layers: Layers, grads: Layers, x: np.ndarray, t: np.ndarray, target: np.ndarray,
                      weight: np.ndarray, y: np.ndarray | None = None, table: np.ndarray | None = None,
                      table_grad: np.ndarray | None = None) -> float:
        r"""The reference ``loss_and_grad``: returns L, writes dL/dW and dL/db into the views ``grads``.

        A conditional network also writes dL/dE into ``table_grad`` (C + 1, H).
        """
        L = self.config.depth
        buf = self.buffers(x.shape[0], layers[0][0].dtype)
        self.forward(layers, x, t, buf, y, table)
        loss = K.mse_loss(buf.out, layers[-1][1], target, weight, buf.dout, grads[-1][1])  # dL/dy, db_out
        np.matmul(buf.h[L].T, buf.dout, out=grads[-1][0])  # dW_out = h_L^T dy
        np.matmul(buf.dout, layers[-1][0].T, out=buf.g)  # dh_L = dy W_out^T
        K.act_backward(buf.g, buf.tmp, buf.d[L], False, buf.dz, grads[L][1])  # dz_L = dh_L * d_L, db_L
        for k in range(L, 0, -1):
            np.matmul(buf.h[k - 1].T, buf.dz, out=grads[k][0])  # dW_k = h_{k-1}^T dz_k
            np.matmul(buf.dz, layers[k][0].T, out=buf.tmp)  # dz_k W_k^T
            # dh_{k-1} = dh_k + dz_k W_k^T (the residual), then dz_{k-1} = dh_{k-1} * d_{k-1}, db_{k-1}
            K.act_backward(buf.g, buf.tmp, buf.d[k - 1], True, buf.dz, grads[k - 1][1])
        np.matmul(buf.emb.T, buf.dz, out=grads[0][0])  # dW_0 = e^T dz_0
        if table_grad is not None:  # dE_c = the rows of dz_0 with label c, summed
            table_grad[...] = 0.0
            np.add.at(table_grad, y, buf.dz)
        return loss

    def output_and_trace(self, layers: Layers, x: np.ndarray, t: np.ndarray, y: np.ndarray | None = None,
                         table: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        r"""Output y (B, D) and the exact :math:`\mathrm{tr}\,\partial y/\partial x` (B,): :mod:`npdiff.nn.fast.trace`."""
        return output_and_trace(self, layers, x, t, layers[0][0].dtype, y, table)
