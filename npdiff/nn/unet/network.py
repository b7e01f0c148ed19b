r"""The U-Net in plain NumPy: forward pass, hand-written backward pass, forward- and reverse-mode products with x.

The network is :attr:`~npdiff.nn.unet.config.UNetConfig.plan` run in order (the architecture is drawn
in :mod:`npdiff.nn.unet.config`): ``conv_in``, the steps of the plan, then the head GroupNorm, SiLU,
``conv_out``. Each step is one of the layers, which sit with their backward and their tangent in
:mod:`~npdiff.nn.unet.resblock`, :mod:`~npdiff.nn.unet.attention`, :mod:`~npdiff.nn.unet.resample`
(and :mod:`~npdiff.nn.unet.conv`, :mod:`~npdiff.nn.unet.norm` below them), so the three passes here are
three readings of the same list:

* **forward**: run the steps, keeping each one's cache; ``push`` saves the features for a skip,
  ``cat`` concatenates the last saved ones.
* **backward** (reverse mode): run the steps backwards, each turning dL/d(its output) into the
  gradients of its weights and dL/d(its input). A ``cat`` splits the gradient and saves the skip's share;
  the matching ``push`` (met later on the way back, in last-in first-out order) adds it in. Every
  residual block also returns the gradient of the shared embedding e, summed and handed to
  :mod:`~npdiff.nn.unet.time_embedding` at the end. The input gradient that comes out of ``conv_in``
  is the vector-Jacobian product :math:`u^\top\,\partial y/\partial x` for :math:`\bar y = u`.
* **tangent** (forward mode): K tangents :math:`\dot x` (K, B, D) ride through the same steps in one
  batched pass, :math:`\dot y = (\partial y/\partial x)\,\dot x`; the embedding, which does not depend on x,
  contributes nothing. With the D unit tangents the divergence is exact,
  :math:`\mathrm{tr}\,\partial y/\partial x = \sum_d (\partial y/\partial x\; e_d)_d` (the likelihood of
  Song et al. 2021, Eq. 39 needs it), for 64-pixel images 64 tangents per image. They go in blocks of
  at most :data:`TANGENT_IMAGES` images (tangents x rows): small enough that a block's largest im2col
  columns (float64, 64 channels: 9 x 64 x 64 images x 64 pixels x 8 bytes = 19 MB) are reused by the memory
  allocator from layer to layer rather than mapped fresh from the system (and zeroed page by page) every
  time, which made larger blocks slower, not faster.

The functions ending in ``_unchecked`` take the weights as the named views of
:meth:`~npdiff.nn.unet.config.UNetConfig.views` and compute in their dtype (float32 or float64); the
public doors (:func:`forward`, :func:`backward`, :func:`loss_and_grad`, :func:`jvp`, :func:`vjp`,
:func:`divergence`, the signatures of :mod:`npdiff.nn.mlp`) check their arguments once and compute in float64.
"""

from __future__ import annotations

import numpy as np

from ..._check import as_batch, as_float_array, as_times
from ..mlp import mse
from .attention import attention, attention_backward, attention_tangent
from .config import UNetConfig, blocks_of
from .conv import conv3x3, conv3x3_backward, conv3x3_tangent
from .norm_act import PASSES
from .resample import concat, concat_backward, downsample, downsample_backward, upsample, upsample_backward
from .resblock import residual_block, residual_block_backward, residual_block_tangent
from .time_embedding import time_embedding, time_embedding_backward

__all__ = [
    "TANGENT_IMAGES",
    "backward",
    "backward_unchecked",
    "divergence",
    "divergence_unchecked",
    "forward",
    "forward_unchecked",
    "jvp",
    "jvp_unchecked",
    "loss_and_grad",
    "tangent_unchecked",
    "vjp",
]

#: the most images (tangents x rows) one forward-mode block pushes through the network at once
TANGENT_IMAGES = 64

# the head's a = SiLU(GN(h)): the formulas of npdiff.nn.unet.norm_act, or their fused kernels (tested equal)
_norm_silu, _norm_silu_backward, _norm_silu_tangent = PASSES


# -- the three passes ------------------------------------------------------------------------------------
def forward_unchecked(config: UNetConfig, P: dict, x: np.ndarray, t: np.ndarray, rows: np.ndarray | None = None):
    r"""Output (B, D) and cache for flattened images x (B, D) at times t (B,), weights P (:meth:`UNetConfig.views`)."""
    B, c, s = x.shape[0], config.channels, config.image_size
    e, emb_cache = time_embedding(t, P, config.emb_dim, config.time_scale, rows)  # (B, T)
    h, cols_in = conv3x3(x.reshape(B, c, s, s), P["conv_in.W"], P["conv_in.b"])
    caches, skips, blocks = [], [], blocks_of(P)
    for kind, name, *_ in config.plan:
        cache = None
        if kind == "res":
            h, cache = residual_block(h, e, blocks[name], config.groups)
        elif kind == "attn":
            h, cache = attention(h, blocks[name], config.heads, config.groups)
        elif kind == "push":
            skips.append(h)
        elif kind == "cat":
            h = concat(h, skips.pop())
        elif kind == "down":
            h = downsample(h)
        else:  # "up"
            h = upsample(h)
        caches.append(cache)
    a, da, out_norm = _norm_silu(h, P["out.norm.gamma"], P["out.norm.beta"], config.groups)
    y, cols_out = conv3x3(a, P["out.conv.W"], P["out.conv.b"])
    cache = {"x_shape": (B, c, s, s), "e": e, "emb": emb_cache, "cols_in": cols_in, "steps": caches,
             "out_norm": out_norm, "out_da": da, "cols_out": cols_out, "h_shape": h.shape}
    return y.reshape(B, config.dim), cache


def backward_unchecked(config: UNetConfig, P: dict, cache: dict, dy: np.ndarray, input_grad: bool = True,
                       overwrite_cache: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Given dL/dy (B, D) and :func:`forward_unchecked`'s cache: the gradient (n_params,) of every weight and dL/dx (B, D).

    ``input_grad=False`` (training: x is data) skips dL/dx, returned as None. ``overwrite_cache=True`` (training:
    the cache dies with the step) lets every convolution's backward write its column gradient over its cached
    columns instead of allocating another array of that size; the cache cannot be read again.
    """
    g = {}
    B = dy.shape[0]
    dy = dy.reshape(B, config.channels, config.image_size, config.image_size)
    g["out.conv.W"], g["out.conv.b"], da = conv3x3_backward(dy, cache["cols_out"], P["out.conv.W"], cache["h_shape"],
                                                            overwrite_cols=overwrite_cache)
    g["out.norm.gamma"], g["out.norm.beta"], dh, _, _ = _norm_silu_backward(da, cache["out_da"], cache["out_norm"],
                                                                           P["out.norm.gamma"], P["out.norm.beta"])
    de = np.zeros_like(cache["e"])  # (B, T): dL/de, summed over the residual blocks
    skip_grads, blocks = [], blocks_of(P)
    for (kind, name, *widths), step in zip(reversed(config.plan), reversed(cache["steps"])):
        if kind == "res":
            gb, dh, de_block = residual_block_backward(dh, step, blocks[name], overwrite_cache)
            de += de_block
        elif kind == "attn":
            gb, dh = attention_backward(dh, step, blocks[name], config.heads)
        else:
            gb = {}
            if kind == "cat":
                dh, dskip = concat_backward(dh, widths[0])
                skip_grads.append(dskip)
            elif kind == "push":
                dh = dh + skip_grads.pop()  # the features went both ways: their gradients add
            elif kind == "down":
                dh = downsample_backward(dh)
            else:  # "up"
                dh = upsample_backward(dh)
        g.update({f"{name}.{k}": v for k, v in gb.items()})
    g["conv_in.W"], g["conv_in.b"], dx = conv3x3_backward(dh, cache["cols_in"], P["conv_in.W"], cache["x_shape"],
                                                          input_grad)
    g.update(time_embedding_backward(de, cache["emb"], P))
    return config.flatten(g), (dx.reshape(B, config.dim) if input_grad else None)


def tangent_unchecked(config: UNetConfig, P: dict, cache: dict, v: np.ndarray) -> np.ndarray:
    r"""The Jacobian-vector products :math:`(\partial y/\partial x)\,v_k` (K, B, D) for K tangents v (K, B, D), at the
    point of :func:`forward_unchecked`'s cache."""
    K = v.shape[0]
    h_dot = conv3x3_tangent(v.reshape(K, *cache["x_shape"]), P["conv_in.W"])
    skips, blocks = [], blocks_of(P)
    for (kind, name, *_), step in zip(config.plan, cache["steps"]):
        if kind == "res":
            h_dot = residual_block_tangent(h_dot, step, blocks[name])
        elif kind == "attn":
            h_dot = attention_tangent(h_dot, step, blocks[name], config.heads)
        elif kind == "push":
            skips.append(h_dot)
        elif kind == "cat":
            h_dot = concat(h_dot, skips.pop())
        elif kind == "down":
            h_dot = downsample(h_dot)
        else:  # "up"
            h_dot = upsample(h_dot)
    a_dot = _norm_silu_tangent(h_dot, cache["out_da"], cache["out_norm"], P["out.norm.gamma"])
    return conv3x3_tangent(a_dot, P["out.conv.W"]).reshape(K, -1, config.dim)


def jvp_unchecked(config: UNetConfig, P: dict, x: np.ndarray, t: np.ndarray, rows: np.ndarray | None,
                  v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Output (B, D) and the products (K, B, D) for K tangents v (K, B, D), in blocks of rows of at most
    :data:`TANGENT_IMAGES` images."""
    K, B = v.shape[:2]
    step = max(1, TANGENT_IMAGES // K)
    out, out_dot = np.empty(x.shape, x.dtype), np.empty(v.shape, x.dtype)
    for i in range(0, B, step):
        block = slice(i, i + step)
        out[block], cache = forward_unchecked(config, P, x[block], t[block], None if rows is None else rows[block])
        out_dot[:, block] = tangent_unchecked(config, P, cache, v[:, block])
    return out, out_dot


def divergence_unchecked(config: UNetConfig, P: dict, x: np.ndarray, t: np.ndarray,
                         rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Output (B, D) and the exact :math:`\mathrm{tr}\,\partial y/\partial x` (B,) from the D unit tangents."""
    B, D = x.shape
    units = np.broadcast_to(np.eye(D, dtype=x.dtype)[:, None, :], (D, B, D))  # tangent d is e_d at every image
    out, out_dot = jvp_unchecked(config, P, x, t, rows, units)
    return out, np.einsum("dbd->b", out_dot)  # sum_d (J e_d)_d


# -- public: checked once, computed in float64 ------------------------------------------------------------
def _door(config: object, params: object, x: object, t: object, y: object):
    if not isinstance(config, UNetConfig):
        raise TypeError(f"config must be a UNetConfig, got {type(config).__name__}")
    params = config.check_params(params).astype(np.float64)
    x, t = config.check_inputs(x, t)
    rows = config.label_index(config.check_labels(y, x.shape[0]), x.shape[0])  # (B,) or None
    return config, config.views(params), x, t, rows


def _tangents(v: object, shape: tuple[int, int], name: str) -> np.ndarray:
    v = as_float_array(v, name)
    vk = v[None] if v.ndim == 2 else v
    if vk.ndim != 3 or vk.shape[1:] != shape or vk.shape[0] == 0:
        raise ValueError(f"{name} must have shape {shape} or (K, *{shape}) with K >= 1, got {v.shape}")
    return vk


def forward(config: UNetConfig, params: np.ndarray, x: object, t: object, y: object = None) -> tuple[np.ndarray, dict]:
    r"""The network's output (B, D) and the cache its backward pass reads.

    Parameters
    ----------
    config : the architecture.
    params : (n_params,) weights (float32 or float64).
    x : (B, D) flattened images, D = channels x image_size^2.
    t : float or (B,) times in [0, 1].
    y : labels of a conditional network (an int or (B,) ints); None: "no label".

    Returns
    -------
    out : (B, D) float64, eps, x0 or v (``config.parameterization``).
    cache : what :func:`backward` reads.
    """
    config, P, x, t, rows = _door(config, params, x, t, y)
    return forward_unchecked(config, P, x, t, rows)


def backward(config: UNetConfig, params: np.ndarray, cache: dict, dy: np.ndarray) -> np.ndarray:
    r"""Gradient of a loss with respect to every parameter, given dL/dy (B, D) and :func:`forward`'s cache.

    Returns a (n_params,) float64 vector in the layout of ``params``.
    """
    if not isinstance(config, UNetConfig):
        raise TypeError(f"config must be a UNetConfig, got {type(config).__name__}")
    P = config.views(config.check_params(params).astype(np.float64))
    return backward_unchecked(config, P, cache, as_batch(dy, "dy", dim=config.dim))[0]


def loss_and_grad(config: UNetConfig, params: np.ndarray, x: object, t: object, target: object,
                  weight: object | None = None, y: object = None) -> tuple[float, np.ndarray]:
    r"""The weighted squared error of :func:`npdiff.nn.mlp.mse` and its gradient (n_params,) with respect to every parameter.

    x, target (B, D); t a float or (B,); weight (B,) per-example weights >= 0 (default 1); y the labels
    of a conditional network (None: "no label").
    """
    config, P, x, t, rows = _door(config, params, x, t, y)
    target = as_batch(target, "target", dim=config.dim)
    if target.shape != x.shape:
        raise ValueError(f"target must have the shape of x {x.shape}, got {target.shape}")
    weight = np.ones(x.shape[0]) if weight is None else as_times(weight, x.shape[0], "weight", lo=0.0, hi=np.inf)
    out, cache = forward_unchecked(config, P, x, t, rows)
    loss, dy = mse(out, target, weight)
    return loss, backward_unchecked(config, P, cache, dy)[0]


def jvp(config: UNetConfig, params: np.ndarray, x: object, t: object, v: object, y: object = None
        ) -> tuple[np.ndarray, np.ndarray]:
    r"""Output (B, D) and the Jacobian-vector products :math:`(\partial y/\partial x)\,v_k`.

    ``v`` is one tangent (B, D) or K stacked tangents (K, B, D), row b the direction for image b; the
    products have the shape of ``v``. ``y``: labels, as in :func:`forward`.
    """
    config, P, x, t, rows = _door(config, params, x, t, y)
    vk = _tangents(v, x.shape, "v")
    out, out_dot = jvp_unchecked(config, P, x, t, rows, vk)
    return out, (out_dot[0] if np.ndim(v) == 2 else out_dot)


def vjp(config: UNetConfig, params: np.ndarray, x: object, t: object, u: object, y: object = None
        ) -> tuple[np.ndarray, np.ndarray]:
    r"""Output (B, D) and the vector-Jacobian products :math:`u_b^\top\,\partial y_b/\partial x_b` (B, D), one backward pass.

    ``u`` (B, D): one cotangent per image. ``y``: labels, as in :func:`forward`.
    """
    config, P, x, t, rows = _door(config, params, x, t, y)
    u = as_batch(u, "u", dim=config.dim)
    if u.shape != x.shape:
        raise ValueError(f"u must have the shape of x {x.shape}, got {u.shape}")
    out, cache = forward_unchecked(config, P, x, t, rows)
    return out, backward_unchecked(config, P, cache, u)[1]


def divergence(config: UNetConfig, params: np.ndarray, x: object, t: object, y: object = None
               ) -> tuple[np.ndarray, np.ndarray]:
    r"""Output (B, D) and the exact trace :math:`\mathrm{tr}\,\partial y/\partial x` (B,) by the D unit tangents."""
    config, P, x, t, rows = _door(config, params, x, t, y)
    return divergence_unchecked(config, P, x, t, rows)
