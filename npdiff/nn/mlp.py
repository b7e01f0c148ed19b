r"""The MLP denoiser in plain NumPy: forward pass, hand-written backward pass, forward-mode Jacobian.

This is the network as a learner reads it: every layer is a formula, and its backward pass
(reverse mode) and its tangent (forward mode) sit right below it. The fast path
(:mod:`npdiff.nn.fast`) computes exactly the same numbers with fused kernels and buffers, and
the tests hold the two together to 1e-12 in float64. Architecture (the tiny-diffusion 2D model)::

    e   = [x | emb(x_1) .. emb(x_D) | emb(t)]          (B, E)   npdiff.nn.embedding
    h_0 = act(e W_0 + b_0 (+ E[y]))                     (B, H)   + a label's row, if conditional
    h_k = h_{k-1} + act(h_{k-1} W_k + b_k),  k = 1..L   (B, H)   residual blocks (He et al. 2016)
    y   = h_L W_out + b_out                             (B, D)   eps, x0 or v

**Backward** (Rumelhart et al. 1986): given :math:`\bar y = \partial L/\partial y`, each layer
turns the gradient of its output into the gradients of its weights and of its input,

.. math::
    \bar z_k = \bar h_k \odot \mathrm{act}'(z_k),\quad \bar W_k = h_{k-1}^\top \bar z_k,\quad
    \bar b_k = \textstyle\sum_{rows}\bar z_k,\quad \bar h_{k-1} = \bar h_k + \bar z_k W_k^\top

where :math:`z_k` is the pre-activation the forward pass keeps, and the residual passes
:math:`\bar h_k` straight through.

**Forward mode**: a tangent :math:`\dot x` (a direction in input space) rides along,

.. math:: \dot z_k = \dot h_{k-1} W_k,\quad \dot h_k = \dot h_{k-1} + \mathrm{act}'(z_k) \odot \dot z_k,
          \quad \dot y = \dot h_L W_{out}

(the biases drop out), giving the Jacobian-vector product :math:`\dot y = (\partial y/\partial x)\dot x`.
With the D unit tangents :math:`\dot x = e_d` the divergence is exact,
:math:`\mathrm{tr}\,\partial y/\partial x = \sum_d \dot y^{(d)}_d`: D passes and no Hutchinson noise
(the likelihood of Song et al. 2021, Eq. 39 needs it).

**Reverse mode with respect to the input**: the backward pass above, run from a cotangent
:math:`\bar y = u` down to the embedding and through it, gives the vector-Jacobian product
:math:`u^\top\partial y/\partial x` (:func:`vjp`); the embedding's transpose reads each
coordinate's block back with the same derivative :math:`\partial\,\mathrm{emb}(x_d)/\partial x_d`.

**The label** of a conditional network (``num_classes`` C > 0) is a learned row of a table
:math:`E` (C + 1, H) added to the first layer's pre-activation: label c adds :math:`E_c`, and
row C, "no label", stands for y = None (Ho & Salimans 2022, Alg. 1 train one network for both
by dropping the label, :mod:`npdiff.train`). It is one more bias per class, a one-hot input
times a weight table, so its gradient is the bias's gradient split by label,
:math:`\bar E_c = \sum_{b:\,y_b = c}\bar z_{0,b}`, and since it does not depend on x, its
tangent is 0: the JVP and the exact trace see it only through :math:`z_0`.

Weights are the views of :meth:`npdiff.nn.config.MLPConfig.layers` into one flat vector; the
public functions below take that vector, check their arguments once and compute in float64.
"""

from __future__ import annotations

import numpy as np

from .._check import as_batch, as_float_array, as_times
from .activations import ACTIVATION_FUNCTIONS
from .config import Layers, MLPConfig
from .embedding import embed, embed_tangent

__all__ = [
    "backward",
    "dense",
    "dense_backward",
    "dense_tangent",
    "divergence",
    "forward",
    "hidden",
    "hidden_backward",
    "hidden_tangent",
    "input_cotangent",
    "input_tangent",
    "jvp",
    "label_rows",
    "label_rows_backward",
    "loss_and_grad",
    "mse",
    "residual_block",
    "residual_block_backward",
    "residual_block_tangent",
    "trunk",
    "trunk_backward",
    "trunk_tangent",
    "vjp",
]



# -- the label of a conditional network: u = E[y], added to the first layer's pre-activation ------
def label_rows(y, E):
    r"""u = E[y]: row y_b of the label table E (C + 1, H) for each point, (B, H); y_b = C is "no label"."""
    return E[y]  # (B, H)


def label_rows_backward(dz, y, E):
    r"""Given dL/dz_0 of z_0 = e W_0 + b_0 + E[y], the table's gradient :math:`\bar E_c = \sum_{b: y_b = c} \bar z_{0,b}`."""
    dE = np.zeros(E.shape)  # (C + 1, H)
    np.add.at(dE, y, dz)  # row y_b of dE gathers dz_b
    return dE


# -- the first layer: h = act(e W + b (+ u)) ----------------------------------------------------
def hidden(e, W, b, act, u=None):
    r"""h = act(e W + b + u), u the label rows (B, H) if any. Returns h and the pre-activation z, which the backward needs."""
    z = e @ W + b  # (B, H)
    if u is not None:
        z = z + u
    return act(z)[0], z


def hidden_backward(dh, e, z, W, act):
    r"""Given dL/dh of h = act(e W + b), the gradients of W, b and e."""
    dz = dh * act(z)[1]  # (B, H)
    dW = e.T @ dz  # (E, H)
    db = dz.sum(axis=0)  # (H,)
    de = dz @ W.T  # (B, E)
    return dW, db, de


def hidden_tangent(e_dot, z, W, act):
    r"""Tangent of h = act(e W + b): :math:`\dot h = \mathrm{act}'(z) \odot \dot e W`."""
    return act(z)[1] * (e_dot @ W)  # (K, B, H)


# -- a residual block: h' = h + act(h W + b) ----------------------------------------------------
def residual_block(h, W, b, act):
    r"""h' = h + act(h W + b) (He et al. 2016). Returns h' and the pre-activation z."""
    z = h @ W + b  # (B, H)
    return h + act(z)[0], z


def residual_block_backward(dh_out, h, z, W, act):
    r"""Given dL/dh', the gradients of W, b and h (the residual passes dL/dh' straight through)."""
    dz = dh_out * act(z)[1]  # (B, H)
    dW = h.T @ dz  # (H, H)
    db = dz.sum(axis=0)  # (H,)
    dh = dh_out + dz @ W.T  # (B, H)
    return dW, db, dh


def residual_block_tangent(h_dot, z, W, act):
    r"""Tangent of h' = h + act(h W + b): :math:`\dot h' = \dot h + \mathrm{act}'(z) \odot \dot h W`."""
    return h_dot + act(z)[1] * (h_dot @ W)  # (K, B, H)


# -- the output layer: y = h W + b --------------------------------------------------------------
def dense(h, W, b):
    r"""y = h W + b."""
    return h @ W + b  # (B, D)


def dense_backward(dy, h, W):
    r"""Given dL/dy of y = h W + b, the gradients of W, b and h."""
    dW = h.T @ dy  # (H, D)
    db = dy.sum(axis=0)  # (D,)
    dh = dy @ W.T  # (B, H)
    return dW, db, dh


def dense_tangent(h_dot, W):
    r"""Tangent of y = h W + b: :math:`\dot y = \dot h W`."""
    return h_dot @ W  # (K, B, D)


# -- the loss -----------------------------------------------------------------------------------
def mse(y, target, weight):
    r"""Weighted squared error and its gradient with respect to y.

    .. math:: L = \frac{1}{BD}\sum_{b,d} w_b\,(y_{bd} - \mathrm{target}_{bd})^2,\qquad
              \frac{\partial L}{\partial y_{bd}} = \frac{2 w_b (y_{bd} - \mathrm{target}_{bd})}{BD}
    """
    r = y - target  # (B, D)
    return float(np.mean(weight[:, None] * r * r)), 2.0 * weight[:, None] * r / r.size


# -- the layers after the embedding: hidden, residual blocks, output ------------------------------------
def trunk(e, layers, act, u=None):
    r"""The layers after the embedding on e (B, E): the output (B, D) and the cache (hs, zs) of every layer.

    ``u`` (B, H), if given, enters the first pre-activation as a per-row bias (:func:`hidden`). Every network built
    on the MLP's layers (the label-conditioned MLP here, the context MLP of :mod:`npdiff.nn.context_mlp`) runs it.
    """
    h, z = hidden(e, *layers[0], act, u)
    hs, zs = [h], [z]
    for W, b in layers[1:-1]:
        h, z = residual_block(h, W, b, act)
        hs.append(h)
        zs.append(z)
    return dense(h, *layers[-1]), hs, zs


def trunk_backward(dy, e, hs, zs, layers, act):
    r""":func:`trunk`'s backward from dL/dout (B, D): [(dW, db)] per layer, dL/dh_0 (B, H) and dL/de (B, E)."""
    grads = [None] * len(layers)
    dW, db, dh = dense_backward(dy, hs[-1], layers[-1][0])
    grads[-1] = (dW, db)
    for k in range(len(layers) - 2, 0, -1):
        dW, db, dh = residual_block_backward(dh, hs[k - 1], zs[k], layers[k][0], act)
        grads[k] = (dW, db)
    dW, db, de = hidden_backward(dh, e, zs[0], layers[0][0], act)
    grads[0] = (dW, db)
    return grads, dh, de


def trunk_tangent(e_dot, zs, layers, act):
    r""":func:`trunk`'s forward-mode tangents: e_dot (K, B, E) -> out_dot (K, B, D), given the forward's zs."""
    h_dot = hidden_tangent(e_dot, zs[0], layers[0][0], act)  # (K, B, H)
    for k in range(1, len(layers) - 1):
        h_dot = residual_block_tangent(h_dot, zs[k], layers[k][0], act)
    return dense_tangent(h_dot, layers[-1][0])


# -- the whole network ----------------------------------------------------------------------------
def _embed(config: MLPConfig, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    return embed(x, t, emb_dim=config.emb_dim, time_scale=config.time_scale, coord_scale=config.coord_scale,
                 raw=config.raw, coord=config.sinusoidal)  # (B, E)


def _forward(config: MLPConfig, layers: Layers, x: np.ndarray, t: np.ndarray, table=None, y=None):
    e = _embed(config, x, t)  # (B, E)
    u = None if table is None else label_rows(y, table)  # (B, H)
    out, hs, zs = trunk(e, layers, ACTIVATION_FUNCTIONS[config.activation], u)
    return out, (e, hs, zs, table, y)


def _backward(config: MLPConfig, layers: Layers, cache: tuple, dy: np.ndarray) -> np.ndarray:
    act = ACTIVATION_FUNCTIONS[config.activation]
    e, hs, zs, table, y = cache
    grads, dh, _ = trunk_backward(dy, e, hs, zs, layers, act)
    flat = [np.concatenate([dW.ravel(), db]) for dW, db in grads]
    if table is not None:  # u enters z_0 as b_0 does, row by row: dL/du = dL/dz_0 = dh_0 * act'(z_0)
        flat.append(label_rows_backward(dh * act(zs[0])[1], y, table).ravel())
    return np.concatenate(flat)  # (n_params,) the layout of params


def _jvp(config: MLPConfig, layers: Layers, x: np.ndarray, t: np.ndarray, v: np.ndarray, table=None, y=None):
    out, (_, _, zs, _, _) = _forward(config, layers, x, t, table, y)
    e_dot = _input_tangent(config, x, v)  # (K, B, E); the label rows do not move with x
    return out, trunk_tangent(e_dot, zs, layers, ACTIVATION_FUNCTIONS[config.activation])


def _input_tangent(config: MLPConfig, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    # de/dx v: the raw columns copy v, each coordinate's embedding block moves by v_d d emb(x_d)/dx_d, emb(t) not at all
    K, (B, D) = v.shape[0], x.shape
    parts = [v] if config.raw else []
    if config.sinusoidal:
        d_emb = embed_tangent(x, emb_dim=config.emb_dim, coord_scale=config.coord_scale)  # (D, B, emb_dim)
        parts += [v[:, :, d, None] * d_emb[d] for d in range(D)]
    parts.append(np.zeros((K, B, config.emb_dim)))
    return np.concatenate(parts, axis=2)  # (K, B, E)


def _vjp(config: MLPConfig, layers: Layers, x: np.ndarray, t: np.ndarray, u: np.ndarray, table=None, y=None):
    out, (e, hs, zs, _, _) = _forward(config, layers, x, t, table, y)
    de = trunk_backward(u, e, hs, zs, layers, ACTIVATION_FUNCTIONS[config.activation])[2]  # (B, E)
    return out, _input_cotangent(config, x, de)


def _input_cotangent(config: MLPConfig, x: np.ndarray, de: np.ndarray) -> np.ndarray:
    # the transpose of _input_tangent: (de/dx)^T de, each coordinate collecting its raw column and its embedding block
    B, D = x.shape
    dx = de[:, :D].copy() if config.raw else np.zeros((B, D))
    if config.sinusoidal:
        start, w = (D if config.raw else 0), config.emb_dim
        d_emb = embed_tangent(x, emb_dim=w, coord_scale=config.coord_scale)  # (D, B, emb_dim)
        for d in range(D):
            dx[:, d] += np.sum(de[:, start + d * w : start + (d + 1) * w] * d_emb[d], axis=1)
    return dx  # (B, D); emb(t) does not move with x


def input_tangent(config: MLPConfig, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    r"""Tangent (K, B, E) of the network's input e = emb(x, t) along K tangents v (K, B, D) of x; emb(t) does not move."""
    return _input_tangent(config, x, v)


def input_cotangent(config: MLPConfig, x: np.ndarray, de: np.ndarray) -> np.ndarray:
    r"""The transpose of :func:`input_tangent`: dL/dx (B, D) from dL/de (B, E)."""
    return _input_cotangent(config, x, de)


# -- public: checked once, computed in float64 ------------------------------------------------------
def _door(config: object, params: object, x: object, t: object, y: object):
    if not isinstance(config, MLPConfig):
        raise TypeError(f"config must be an MLPConfig, got {type(config).__name__}")
    params = config.check_params(params).astype(np.float64)
    x, t = config.check_inputs(x, t)
    rows = config.label_index(config.check_labels(y, x.shape[0]), x.shape[0])  # (B,) or None
    return config, config.layers(params), x, t, config.label_table(params), rows


def forward(config: MLPConfig, params: np.ndarray, x: object, t: object, y: object = None) -> tuple[np.ndarray, tuple]:
    r"""The network's output y (B, D) and the cache its backward pass reads.

    Parameters
    ----------
    config : the architecture. params : (n_params,) weights (float32 or float64).
    x : (B, D) network inputs. t : float or (B,) times in [0, 1].
    y : labels of a conditional network (an int or (B,) ints); None: "no label".

    Returns
    -------
    y : (B, D) float64, eps, x0 or v (``config.parameterization``).
    cache : (e (B, E), [h_0 .. h_L] (B, H) each, [z_0 .. z_L] (B, H) each, the label table, the label rows),
        for :func:`backward`.
    """
    config, layers, x, t, table, rows = _door(config, params, x, t, y)
    return _forward(config, layers, x, t, table, rows)


def backward(config: MLPConfig, params: np.ndarray, cache: tuple, dy: np.ndarray) -> np.ndarray:
    r"""Gradient of a loss with respect to every parameter, given dL/dy (B, D) and :func:`forward`'s cache.

    Returns a (n_params,) float64 vector in the layout of ``params``.
    """
    if not isinstance(config, MLPConfig):
        raise TypeError(f"config must be an MLPConfig, got {type(config).__name__}")
    return _backward(config, config.layers(config.check_params(params).astype(np.float64)), cache, dy)  # cache: forward's


def loss_and_grad(config: MLPConfig, params: np.ndarray, x: object, t: object, target: object,
                  weight: object | None = None, y: object = None) -> tuple[float, np.ndarray]:
    r"""The weighted squared error of :func:`mse` and its gradient (n_params,) with respect to every parameter.

    x, target (B, D); t a float or (B,); weight (B,) per-example weights >= 0 (default 1); y the labels
    of a conditional network (None: "no label").
    """
    config, layers, x, t, table, rows = _door(config, params, x, t, y)
    target = as_batch(target, "target", dim=config.dim)
    if target.shape != x.shape:
        raise ValueError(f"target must have the shape of x {x.shape}, got {target.shape}")
    weight = np.ones(x.shape[0]) if weight is None else as_times(weight, x.shape[0], "weight", lo=0.0, hi=np.inf)
    out, cache = _forward(config, layers, x, t, table, rows)
    loss, dy = mse(out, target, weight)
    return loss, _backward(config, layers, cache, dy)


def jvp(config: MLPConfig, params: np.ndarray, x: object, t: object, v: object, y: object = None
        ) -> tuple[np.ndarray, np.ndarray]:
    r"""Output y (B, D) and the Jacobian-vector products :math:`(\partial y/\partial x)\,v_k`.

    ``v`` is one tangent (B, D) or K stacked tangents (K, B, D); each tangent row is the
    direction for the matching point of x. The products have the shape of ``v``. ``y``: labels, as in :func:`forward`.
    """
    config, layers, x, t, table, rows = _door(config, params, x, t, y)
    v = as_float_array(v, "v")
    vk = v[None] if v.ndim == 2 else v
    if vk.ndim != 3 or vk.shape[1:] != x.shape:
        raise ValueError(f"v must have shape {x.shape} or (K, *{x.shape}), got {v.shape}")
    out, out_dot = _jvp(config, layers, x, t, vk, table, rows)
    return out, (out_dot[0] if v.ndim == 2 else out_dot)


def vjp(config: MLPConfig, params: np.ndarray, x: object, t: object, u: object, y: object = None
        ) -> tuple[np.ndarray, np.ndarray]:
    r"""Output y (B, D) and the vector-Jacobian products :math:`u_b^\top\,\partial y_b/\partial x_b` (B, D).

    ``u`` is one cotangent (B, D) per point of x; ``y``: labels, as in :func:`forward`. The backward
    pass with respect to the input (module docstring).
    """
    config, layers, x, t, table, rows = _door(config, params, x, t, y)
    u = as_float_array(u, "u")
    if u.shape != x.shape:
        raise ValueError(f"u must have the shape of x {x.shape}, got {u.shape}")
    return _vjp(config, layers, x, t, u, table, rows)


def divergence(config: MLPConfig, params: np.ndarray, x: object, t: object, y: object = None
               ) -> tuple[np.ndarray, np.ndarray]:
    r"""Output y (B, D) and the exact trace :math:`\mathrm{tr}\,\partial y/\partial x` (B,) by the D unit tangents."""
    config, layers, x, t, table, rows = _door(config, params, x, t, y)
    B, D = x.shape
    units = np.broadcast_to(np.eye(D)[:, None, :], (D, B, D))  # (D, B, D): tangent d is e_d at every point
    out, out_dot = _jvp(config, layers, x, t, units, table, rows)
    return out, np.einsum("dbd->b", out_dot)  # sum_d (J e_d)_d
