r"""Convolutions as matrix multiplies: the 3x3 convolution with zero padding, and the 1x1 convolution.

Images are NCHW arrays (B, C, H, W). A 3x3 convolution with one pixel of zero padding keeps H x W:

.. math:: y_{b,o,i,j} = b_o + \sum_{c}\sum_{p,q\in\{0,1,2\}} W_{o,c,p,q}\, \tilde x_{b,c,i+p,j+q}

where :math:`\tilde x` is x padded by one zero on every side (PyTorch's ``Conv2d(C, O, 3, padding=1)``,
weights stored (O, C, 3, 3) as there). **im2col** (cs231n; Chellapilla et al. 2006) lays the 9 shifted
copies of the padded input side by side, one column per output pixel,

.. math:: \mathrm{cols}_{(c,p,q),\,(b,i,j)} = \tilde x_{b,c,i+p,j+q}\qquad (9C,\ BHW)

so the convolution is ONE matrix multiply, :math:`Y = W_{(O, 9C)}\,\mathrm{cols} + b`, and its backward
is two more: :math:`\bar W = \bar Y\,\mathrm{cols}^\top` and :math:`\overline{\mathrm{cols}} = W^\top \bar Y`.
The input gradient is the transpose of im2col, **col2im**: each of the 9 slices of
:math:`\overline{\mathrm{cols}}` is added back at the shift it was read from (9 whole-array additions,
never a scatter with ``np.add.at``, the known slow spot of NumPy im2col code), and the padding is cut off.

The convolution is linear in x, so its tangent (forward mode) is the same convolution without the bias,
applied to a stack of K tangents (K, B, C, H, W) as one batch of K B images.

The 1x1 convolution is a dense layer on the channels of every pixel, :math:`y_{b,o,i,j} = b_o + \sum_c
W_{o,c} x_{b,c,i,j}` (weights (O, C)); it changes the channel count of a residual block's skip path and
makes the queries, keys and values of attention.
"""

from __future__ import annotations

import numba
import numpy as np

from .kernels import col2im_fast, im2col_fast, to_images_fast, to_rows_fast

__all__ = [
    "SHIFTS",
    "col2im",
    "conv1x1",
    "conv1x1_backward",
    "conv1x1_tangent",
    "conv3x3",
    "conv3x3_backward",
    "conv3x3_tangent",
    "im2col",
    "to_images",
    "to_rows",
]

#: the 9 offsets (p, q) of a 3x3 window, in the order of the kernel's last two axes
SHIFTS = tuple((p, q) for p in range(3) for q in range(3))


# -- im2col and its transpose ------------------------------------------------------------------------
def im2col(x):
    r"""The 9 shifted windows of the zero-padded x (B, C, H, W) as columns: (9C, BHW), row (c, p, q), column (b, i, j)."""
    B, C, H, W = x.shape
    padded = np.pad(x.transpose(1, 0, 2, 3), ((0, 0), (0, 0), (1, 1), (1, 1)))  # (C, B, H + 2, W + 2)
    cols = np.stack([padded[:, :, p:p + H, q:q + W] for p, q in SHIFTS], axis=1)  # (C, 9, B, H, W)
    return cols.reshape(C * 9, B * H * W)


def col2im(cols, shape):
    r"""The transpose of :func:`im2col`: columns (9C, BHW) summed back into an image of ``shape`` (B, C, H, W).

    Entry (c, p, q), (b, i, j) of the columns was read from padded pixel (i + p, j + q) of channel c, so
    its gradient is added there: 9 shifted slices, each one whole-array addition.
    """
    B, C, H, W = shape
    slices = cols.reshape(C, 9, B, H, W)
    padded = np.zeros((C, B, H + 2, W + 2), cols.dtype)
    for k, (p, q) in enumerate(SHIFTS):
        padded[:, :, p:p + H, q:q + W] += slices[:, k]
    return padded[:, :, 1:-1, 1:-1].transpose(1, 0, 2, 3)  # (B, C, H, W), the padding cut off


def to_images(Y, b, shape):
    r"""The product's rows (O, BHW), in im2col's column order (b, i, j), plus the bias b (O,): the images (B, O, H, W)."""
    B, O, H, W = shape
    return np.ascontiguousarray((Y + b[:, None]).reshape(O, B, H, W).transpose(1, 0, 2, 3))


def to_rows(dy):
    r"""The gradient dL/dy (B, O, H, W) as rows (O, BHW) in im2col's column order, and its sum per row (the bias gradient)."""
    dY = dy.transpose(1, 0, 2, 3).reshape(dy.shape[1], -1)  # (O, BHW)
    return dY, dY.sum(axis=1)


# the compiled copies when Numba's JIT is on (npdiff.nn.unet.kernels, tested equal to the four functions above)
_COLUMNS, _ADD_COLUMNS, _TO_IMAGES, _TO_ROWS = ((im2col, col2im, to_images, to_rows) if numba.config.DISABLE_JIT
                                               else (im2col_fast, col2im_fast, to_images_fast, to_rows_fast))


# -- 3x3 convolution, zero padding 1 ---------------------------------------------------------------
def conv3x3(x, W, b):
    r"""y = W * x + b (module docstring): x (B, C, H, W), W (O, C, 3, 3), b (O,). Returns y (B, O, H, W) and the columns."""
    B, C, H, Wd = x.shape
    O = W.shape[0]
    cols = _COLUMNS(x)  # (9C, BHW)
    y = _TO_IMAGES(W.reshape(O, C * 9) @ cols, b, (B, O, H, Wd))  # the one matrix multiply (O, BHW), as images
    return y, cols


def conv3x3_backward(dy, cols, W, x_shape, input_grad=True, overwrite_cols=False):
    r"""Given dL/dy (B, O, H, W) and the forward's columns, the gradients of W (O, C, 3, 3), b (O,) and x (B, C, H, W).

    .. math:: \bar W = \bar Y\,\mathrm{cols}^\top,\qquad \bar b_o = \textstyle\sum_{b,i,j}\bar y_{b,o,i,j},
              \qquad \bar x = \mathrm{col2im}(W^\top \bar Y)

    ``input_grad=False`` skips :math:`\bar x` (returned as None): the first convolution of a network in
    training, whose input is data. ``overwrite_cols=True`` writes :math:`W^\top\bar Y`, which has the columns'
    shape, into ``cols`` once :math:`\bar W` has read them: a training step, whose cache dies with it, then
    allocates (and the system zeroes) one large array fewer per convolution.
    """
    O = W.shape[0]
    dY, db = _TO_ROWS(dy)  # (O, BHW), columns in im2col's order, and (O,)
    dW = (cols @ dY.T).T.reshape(W.shape)  # (dY cols^T) as (cols dY^T)^T: BLAS runs this shape ~1.4x faster here
    if not input_grad:
        return dW, db, None
    dcols = np.matmul(W.reshape(O, -1).T, dY, out=cols if overwrite_cols else None)  # (9C, BHW)
    return dW, db, _ADD_COLUMNS(dcols, x_shape)  # (B, C, H, W)


def conv3x3_tangent(x_dot, W):
    r"""Tangent of the (linear) convolution: :math:`\dot y = W * \dot x`, for K tangents (K, B, C, H, W) at once."""
    K, B, C, H, Wd = x_dot.shape
    y, _ = conv3x3(x_dot.reshape(K * B, C, H, Wd), W, np.zeros(W.shape[0], W.dtype))
    return y.reshape(K, B, W.shape[0], H, Wd)


# -- 1x1 convolution: a dense layer on every pixel's channels ---------------------------------------
def conv1x1(x, W, b):
    r"""y = W x + b per pixel: x (..., C, H, W), W (O, C), b (O,). Returns y (..., O, H, W)."""
    y = conv1x1_tangent(x, W)
    y += b[:, None, None]
    return y


def conv1x1_backward(dy, x, W):
    r"""Given dL/dy (B, O, H, W) of y = W x + b, the gradients of W (O, C), b (O,) and x (B, C, H, W)."""
    B, O, H, Wd = dy.shape
    dW = np.tensordot(dy, x, axes=([0, 2, 3], [0, 2, 3]))  # sum over images and pixels of dy x^T
    db = dy.reshape(B, O, H * Wd).sum(axis=2).sum(axis=0)
    dx = np.matmul(W.T, dy.reshape(B, O, H * Wd)).reshape(x.shape)  # W^T dy, image by image
    return dW, db, dx


def conv1x1_tangent(x_dot, W):
    r"""Tangent of y = W x + b: :math:`\dot y = W \dot x`, for any leading axes (K, B, C, H, W)."""
    *lead, C, H, Wd = x_dot.shape
    return np.matmul(W, x_dot.reshape(*lead, C, H * Wd)).reshape(*lead, W.shape[0], H, Wd)  # (..., O, H, W)
