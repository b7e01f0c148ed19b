r"""Changing resolution and joining the two paths: average-pool down, nearest-neighbour up, skip concatenation.

**Down-sampling** averages each 2x2 block, :math:`y_{i,j} = \tfrac14\sum_{p,q\in\{0,1\}} x_{2i+p,\,2j+q}`;
**up-sampling** copies each pixel into a 2x2 block, :math:`y_{2i+p,\,2j+q} = x_{i,j}` (ADM's ``Downsample``
and ``Upsample`` with ``conv_resample=False``, Dhariwal & Nichol 2021). Why these and not a strided or a
transposed convolution: they have no weights (the residual blocks around them already carry the 3x3
convolutions), each is the other's transpose up to a factor (pool's backward is up-sampling / 4,
up-sampling's backward is 4 x pooling), which makes the backward a one-line reading of the forward, and
nearest up-sampling has none of the checkerboard artifacts of a transposed convolution whose kernel
size is not a multiple of its stride (Odena et al. 2016). Both are linear, so their tangents are
themselves, applied to K tangents (K, B, C, H, W) through the leading axes.

**Skip concatenation** (Ronneberger et al. 2015) stacks the up path's features and the down path's saved
features of the same resolution along the channel axis; its backward splits the gradient back.
"""

from __future__ import annotations

import numpy as np

__all__ = ["concat", "concat_backward", "downsample", "downsample_backward", "upsample", "upsample_backward"]


def downsample(x):
    r"""2x2 average pooling of x (..., C, H, W) -> (..., C, H/2, W/2); linear, so also its own tangent."""
    return 0.25 * (x[..., 0::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 0::2] + x[..., 1::2, 1::2])


def downsample_backward(dy):
    r"""Given dL/dy (B, C, H/2, W/2), dL/dx: each gradient spread evenly over its 2x2 block."""
    return 0.25 * upsample(dy)


def upsample(x):
    r"""Nearest-neighbour up-sampling of x (..., C, H, W) -> (..., C, 2H, 2W); linear, so also its own tangent."""
    return x.repeat(2, axis=-2).repeat(2, axis=-1)


def upsample_backward(dy):
    r"""Given dL/dy (B, C, 2H, 2W), dL/dx: the sum over each 2x2 block."""
    return 4.0 * downsample(dy)


def concat(h, skip):
    r"""[h | skip] along the channel axis: (..., C1, H, W) and (..., C2, H, W) -> (..., C1 + C2, H, W); also its tangent."""
    return np.concatenate([h, skip], axis=-3)


def concat_backward(dy, c1):
    r"""Given dL/d[h | skip], the gradients of h (its first ``c1`` channels) and of skip (the rest)."""
    return dy[..., :c1, :, :], dy[..., c1:, :, :]
