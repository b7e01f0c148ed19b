r"""The 3x3 convolution's copies as Numba kernels, beside their NumPy twins in :mod:`npdiff.nn.unet.conv`.

:func:`~npdiff.nn.unet.conv.im2col` in NumPy stacks 9 shifted slices of the padded images; on 8x8 images
each slice is a strided copy of rows of 8 numbers, and that copy, not the matrix multiply, was the
largest cost of the exact divergence (64 tangents per image). A loop compiled by Numba writes the
same columns, and its transpose adds them back, at memory speed:

=====================  ==============================================================================
``im2col_fast``        x (B, C, H, W) -> columns (9C, BHW), zero outside the image (the padding)
``col2im_fast``        columns (9C, BHW) -> the image gradient (B, C, H, W), each column added where it was read
``to_images_fast``     the product W cols (O, BHW) plus the bias -> the images (B, O, H, W), one pass
``to_rows_fast``       the gradient dL/dy (B, O, H, W) -> its rows (O, BHW) for the products, and the bias gradient
=====================  ==============================================================================

Why the loops run image plane by image plane: one channel of one image (at most 10 x 10 numbers with
its padding) is read once into a small zero-bordered buffer that stays in the L1 cache while its 9
shifted windows are written (im2col) or added up (col2im), so the inner loops have no bounds test and
every array is swept once; the channel is the outer loop, so the 9 rows of columns of that channel are
written as 9 sequential streams. (With the shifts outermost and a bounds test per element, the copy cost
as much as the matrix multiply it feeds.)

The ``_nb_*`` functions are the kernels (``@njit(cache=True)``, no signatures, so nothing compiles at
import). :mod:`~npdiff.nn.unet.conv` runs them, or its NumPy twins when Numba's JIT is disabled
(``NUMBA_DISABLE_JIT=1``), where element-by-element Python loops would be far slower. The tests check
that each pair agrees (exactly, where they only copy).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["col2im_fast", "im2col_fast", "to_images_fast", "to_rows_fast"]

_OPTS = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_OPTS)
def _nb_im2col_into(x, cols):
    # cols[c, k, b, i, j] = padded[i + p, j + q], k = 3p + q, padded = x[b, c] with a border of zeros
    B, C, H, W = x.shape
    padded = np.zeros((H + 2, W + 2), x.dtype)  # its border stays 0; the inside is overwritten per plane
    for c in range(C):
        for b in range(B):
            for i in range(H):
                for j in range(W):
                    padded[i + 1, j + 1] = x[b, c, i, j]
            for p in range(3):
                for q in range(3):
                    out = cols[c, 3 * p + q, b]
                    for i in range(H):
                        for j in range(W):
                            out[i, j] = padded[i + p, j + q]


@njit(**_OPTS)
def _nb_col2im_into(cols, dx):
    # dx[b, c] = the inside of padded, padded[i + p, j + q] += cols[c, k, b, i, j]: the transpose of the copy above
    B, C, H, W = dx.shape
    padded = np.empty((H + 2, W + 2), dx.dtype)
    for c in range(C):
        for b in range(B):
            padded[...] = 0
            for p in range(3):
                for q in range(3):
                    src = cols[c, 3 * p + q, b]
                    for i in range(H):
                        for j in range(W):
                            padded[i + p, j + q] += src[i, j]
            for i in range(H):
                for j in range(W):
                    dx[b, c, i, j] = padded[i + 1, j + 1]


@njit(**_OPTS)
def _nb_to_images(Y, bias, y):
    # y[b, o, :] = Y[o, b, :] + bias[o]: the product's rows back in image order, the bias added on the way
    O, B, N = Y.shape
    for b in range(B):
        for o in range(O):
            bo = bias[o]
            for n in range(N):
                y[b, o, n] = Y[o, b, n] + bo


@njit(**_OPTS)
def _nb_to_rows(dy, dY, db):
    # dY[o, b, :] = dy[b, o, :] and db[o] = sum over b and the pixels, summed in float64
    B, O, N = dy.shape
    acc = np.zeros(O)
    for b in range(B):
        for o in range(O):
            total = 0.0
            for n in range(N):
                v = dy[b, o, n]
                dY[o, b, n] = v
                total += v
            acc[o] += total
    for o in range(O):
        db[o] = acc[o]


def im2col_fast(x):
    r"""The columns (9C, BHW) of :func:`npdiff.nn.unet.conv.im2col`, by the kernel."""
    B, C, H, W = x.shape
    cols = np.empty((C, 9, B, H, W), x.dtype)
    _nb_im2col_into(np.ascontiguousarray(x), cols)
    return cols.reshape(C * 9, B * H * W)


def col2im_fast(cols, shape):
    r"""The image gradient (B, C, H, W) of :func:`npdiff.nn.unet.conv.col2im`, by the kernel."""
    B, C, H, W = shape
    dx = np.empty(shape, cols.dtype)
    _nb_col2im_into(np.ascontiguousarray(cols).reshape(C, 9, B, H, W), dx)
    return dx


def to_images_fast(Y, b, shape):
    r"""The images (B, O, H, W) of :func:`npdiff.nn.unet.conv.to_images`, contiguous, by the kernel."""
    B, O, H, W = shape
    y = np.empty(shape, Y.dtype)
    _nb_to_images(np.ascontiguousarray(Y).reshape(O, B, H * W), b, y.reshape(B, O, H * W))
    return y


def to_rows_fast(dy):
    r"""The rows (O, BHW) and the bias gradient (O,) of :func:`npdiff.nn.unet.conv.to_rows`, by the kernel."""
    B, O, H, W = dy.shape
    dY = np.empty((O, B, H * W), dy.dtype)
    db = np.empty(O, dy.dtype)
    _nb_to_rows(np.ascontiguousarray(dy).reshape(B, O, H * W), dY, db)
    return dY.reshape(O, B * H * W), db
