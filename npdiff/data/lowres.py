r"""The digits at two resolutions, for a cascade: 4x4 block sums, nearest up-sampling, the super-resolution context.

**4x4 digits.** Each pixel of a 4x4 digit is the sum of a 2x2 block of the 8x8 digit's levels. Four levels in
0..16 sum to 0..64, so the 4x4 images have :data:`LOWRES_K` = 65 levels, mapped to [-1, 1] by the K-level
convention of :mod:`npdiff.gaussian` (level v -> 2v/64 - 1, bins of width 2/64, uniform dequantization
within a bin). With that mapping the block sum is exactly the block *mean* in data space,

.. math:: \frac{2\sum_{i=1}^4 v_i}{64} - 1 = \frac14\sum_{i=1}^4\Big(\frac{2 v_i}{16} - 1\Big),

so :func:`downsample` (2x2 average pooling of [-1, 1] images) and the block sums agree to the last bit.
Bits/dim of a 4x4 image are per its 16 pixels, of an 8x8 image given its 4x4 per the 64 pixels
(:func:`npdiff.likelihood.dequantized_bpd` with K = 65 or K = 17 and the matching D).

**The super-resolution context** (Ho et al. 2022, CDM, Sec. 3, "conditioning augmentation"; Saharia et al.
2022, Imagen, Sec. 2.5): the low-resolution image z is first noised by the forward process at a level s,
:math:`z_s = \sqrt{\bar\alpha(s)}\,z + \sigma(s)\,\epsilon`, then up-sampled by nearest neighbour to 8x8,
and the network sees :math:`[\mathrm{up}(z_s) \mid s]` (64 + 1 numbers). Training draws s uniformly in
[0, ``aug_max``] (``aug_max = 0`` trains without augmentation), so the model learns not to trust the
low-resolution pixels beyond their noise; sampling fixes one small s (:mod:`npdiff.edit.cascade`).
"""

from __future__ import annotations

import numpy as np

from .._check import as_batch, as_generator, positive_int
from ..forward import q_sample_unchecked
from ..schedule import Schedule
from ._validate import check_square_side, check_sr_context, check_sr_data
from .images import DIGITS_K, ImageSet, digits

__all__ = ["LOWRES_K", "SRData", "digits_4x4", "downsample", "nearest_upsample", "sr_context"]

LOWRES_K = 4 * (DIGITS_K - 1) + 1  # 65 levels: the sum of four levels 0..16


def downsample(x: object) -> np.ndarray:
    r"""2x2 average pooling of square images (B, S*S) -> (B, S*S/4), rows flattened row by row.

    On 8x8 digits in [-1, 1] this is the 4x4 block-sum image on its 65 levels (module docstring).
    """
    x = as_batch(x, "x")
    B, S = x.shape[0], check_square_side(x.shape[1], "x")
    blocks = x.reshape(B, S // 2, 2, S // 2, 2)  # (B, row block, row in block, column block, column in block)
    return blocks.mean(axis=(2, 4)).reshape(B, -1)  # (B, S*S/4)


def nearest_upsample(x: object) -> np.ndarray:
    r"""Nearest-neighbour 2x up-sampling of square images (B, S*S) -> (B, 4*S*S): each pixel becomes a 2x2 block."""
    x = as_batch(x, "x")
    B, S = x.shape[0], check_square_side(x.shape[1], "x", even=False)
    img = x.reshape(B, S, S)
    return np.repeat(np.repeat(img, 2, axis=1), 2, axis=2).reshape(B, -1)  # (B, 4 S S)


def sr_context(low: object, s: object, eps: object, schedule: Schedule) -> np.ndarray:
    r"""The super-resolution network's context :math:`[\mathrm{up}(z_s) \mid s]` (B, 4 d + 1) (module docstring).

    Parameters
    ----------
    low : (B, d) low-resolution images in [-1, 1] (d = 16 for 4x4).
    s : float or (B,) augmentation levels in [0, 1] (0: the clean low-resolution image).
    eps : (B, d) standard normal noise, drawn by the caller from its Generator.
    schedule : the forward process that noises the low-resolution image (the SR model's own).

    Returns
    -------
    (B, 4 d + 1) the up-sampled noised image and the level s in the last column.
    """
    low, s, eps = check_sr_context(low, s, eps, schedule)
    z = q_sample_unchecked(low, s, eps, schedule)  # (B, d) Ho et al. 2020, Eq. 4 at level s
    return np.concatenate([nearest_upsample(z), s[:, None]], axis=1)  # (B, 4 d + 1)


def digits_4x4() -> ImageSet:
    r"""The digits at 4x4: 2x2 block sums of :func:`~npdiff.data.images.digits` on 65 levels, the same split and labels."""
    hi = digits()
    return ImageSet("digits_4x4", downsample(hi.train), downsample(hi.test), hi.train_labels.copy(),
                    hi.test_labels.copy(), LOWRES_K, (4, 4))


class SRData:
    r"""Training pairs of the super-resolution model: 8x8 images and their contexts.

    ``sample(n, rng)`` draws n training digits (with replacement), their 4x4 block means, a level
    :math:`s \sim U(0, \mathrm{aug\_max})` per image and the noise of :func:`sr_context`, then (with
    ``dequantize``) the uniform dequantization of the 8x8 image within its bin of width 2/16, in that order,
    and returns ``(x (n, 64), context (n, 65))``; ``aug_max = 0`` is the model without augmentation. The
    context is computed from the clean levels, so it is exactly the 4x4 image the likelihood conditions on.

    Parameters
    ----------
    images : (N, 64) 8x8 training images in [-1, 1].
    schedule : the SR model's schedule (it noises the low-resolution image).
    aug_max : the largest augmentation level, in [0, 1].
    dequantize : add uniform noise within each 8x8 pixel's bin (as the images recipe trains).
    """

    name = "digits"

    def __init__(self, images: object, schedule: Schedule, aug_max: float = 0.5, dequantize: bool = True) -> None:
        self.images, self.aug_max = check_sr_data(images, schedule, aug_max, dequantize)
        self.schedule = schedule
        self.dequantize = dequantize

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        r"""n images (n, 64) and their contexts (n, 65) (class docstring)."""
        n, rng = positive_int(n, "n"), as_generator(rng)
        x = self.images[rng.integers(0, self.images.shape[0], n)]  # (n, 64)
        low = downsample(x)  # (n, 16)
        s = rng.uniform(0.0, self.aug_max, n) if self.aug_max > 0 else np.zeros(n)  # (n,)
        eps = rng.standard_normal(low.shape)  # (n, 16)
        context = sr_context(low, s, eps, self.schedule)  # (n, 65)
        if self.dequantize:
            delta = 1.0 / (DIGITS_K - 1)
            x = x + rng.uniform(-delta, delta, x.shape)
        return x, context

    def __repr__(self) -> str:
        return f"SRData({self.images.shape[0]} images, aug_max={self.aug_max}, dequantize={self.dequantize})"
