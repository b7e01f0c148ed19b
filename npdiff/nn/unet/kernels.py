r"""The 3x3 convolution's column copies as Numba kernels, beside their NumPy twins in :mod:`npdiff.nn.unet.conv`.

:func:`~npdiff.nn.unet.conv.im2col` in NumPy stacks 9 shifted slices of the padded images; on 8x8 images
each slice is a strided copy of rows of 8 numbers, and that copy, not the matrix multiply, was the
largest cost of the exact divergence (64 tangents per image). A loop compiled by Numba writes the
same columns, and its transpose adds them back, at memory speed:

===============  ===================================================================================
``im2col_fast``  x (B, C, H, W) -> columns (9C, BHW), zero outside the image (the padding)
``col2im_fast``  columns (9C, BHW) -> the image gradient (B, C, H, W), each column added where it was read
===============  ===================================================================================

The ``_nb_*`` functions are the kernels (``@njit(cache=True)``, no signatures, so nothing compiles at
import). :mod:`~npdiff.nn.unet.conv` runs them, or its NumPy twins when Numba's JIT is disabled
(``NUMBA_DISABLE_JIT=1``), where element-by-element Python loops would be far slower. The tests check
that each pair agrees exactly (they only copy and add).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["col2im_fast", "im2col_fast"]


@njit(cache=True, nogil=True)
def _nb_im2col_into(x, cols):
    # cols[c, k, b, i, j] = x[b, c, i + p - 1, j + q - 1], k = 3p + q, and 0 where that pixel is padding
    B, C, H, W = x.shape
    for c in range(C):
        for p in range(3):
            for q in range(3):
                k = 3 * p + q
                for b in range(B):
                    for i in range(H):
                        ii = i + p - 1
                        for j in range(W):
                            jj = j + q - 1
                            if 0 <= ii < H and 0 <= jj < W:
                                cols[c, k, b, i, j] = x[b, c, ii, jj]
                            else:
                                cols[c, k, b, i, j] = 0


@njit(cache=True, nogil=True)
def _nb_col2im_into(cols, dx):
    # dx[b, c, i + p - 1, j + q - 1] += cols[c, k, b, i, j] inside the image: the transpose of the copy above
    B, C, H, W = dx.shape
    dx[...] = 0
    for c in range(C):
        for p in range(3):
            for q in range(3):
                k = 3 * p + q
                for b in range(B):
                    for i in range(max(0, 1 - p), min(H, H + 1 - p)):
                        for j in range(max(0, 1 - q), min(W, W + 1 - q)):
                            dx[b, c, i + p - 1, j + q - 1] += cols[c, k, b, i, j]


def im2col_fast(x):
    r"""The columns (9C, BHW) of :func:`npdiff.nn.unet.conv.im2col`, by the kernel."""
    B, C, H, W = x.shape
    cols = np.empty((C, 9, B, H, W), x.dtype)
    _nb_im2col_into(x, cols)
    return cols.reshape(C * 9, B * H * W)


def col2im_fast(cols, shape):
    r"""The image gradient (B, C, H, W) of :func:`npdiff.nn.unet.conv.col2im`, by the kernel."""
    B, C, H, W = shape
    dx = np.empty(shape, cols.dtype)
    _nb_col2im_into(np.ascontiguousarray(cols).reshape(C, 9, B, H, W), dx)
    return dx

