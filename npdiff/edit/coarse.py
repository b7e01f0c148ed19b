r"""Coarse inputs for image to image: rules that turn a digit into the rough picture a user would give SDEdit.

SDEdit (:mod:`npdiff.edit.sdedit`) starts from a guide that is not an image of the data, only like one: a
stroke painting, a thumbnail (Meng et al. 2022, Sec. 4). These rules make such guides from real digits, so
that the edit can be scored against the digit the guide came from. Images are (N, H*W) rows in [-1, 1]
(ink +1, paper -1, :func:`npdiff.data.images.digits`); every rule returns the same shape, in [-1, 1].

* ``"blur"``: a Gaussian blur of fixed width :data:`BLUR_SIGMA` = 1 pixel, separable, 5 taps a side
  (:math:`k_m \propto e^{-m^2/2\sigma^2}`, m = -2..2, normalized), the image padded with paper (-1) beyond
  its border;
* ``"block"``: the mean of each 2x2 block, drawn back at full size (each block one flat value), a thumbnail
  at half the resolution;
* ``"strokes"``: a marker drawing: a pixel is full ink (+1) where the digit's ink is above half
  (:math:`x > 0`), or where it carries some ink (:math:`x > -1/2`, a quarter of the full level) and touches a
  half-inked pixel by a side; every other pixel is paper (-1). Thin faint strokes are dropped, the strong ones
  thickened into flat binary strokes with no grey levels.
"""

from __future__ import annotations

import numpy as np

from ._validate import check_coarse, check_kernel

__all__ = ["BLUR_SIGMA", "COARSE_KINDS", "coarse_digits", "gaussian_kernel"]

#: the rules of :func:`coarse_digits`
COARSE_KINDS = ("blur", "block", "strokes")
#: the width of ``"blur"``, in pixels
BLUR_SIGMA = 1.0
_PAPER = -1.0


def gaussian_kernel(sigma: float = BLUR_SIGMA, radius: int = 2) -> np.ndarray:
    r"""The normalized 1-D Gaussian taps :math:`k_m = e^{-m^2/2\sigma^2} / \sum_{m'} e^{-m'^2/2\sigma^2}`, m = -radius..radius.

    Examples
    --------
    >>> k = gaussian_kernel(1.0, 2)
    >>> k.shape, round(float(k.sum()), 12), bool(k[2] > k[1] > k[0])
    ((5,), 1.0, True)
    """
    sigma, radius = check_kernel(sigma, radius)
    m = np.arange(-radius, radius + 1)  # (2r+1,)
    k = np.exp(-0.5 * (m / sigma) ** 2)
    return k / k.sum()


def coarse_digits(x: object, kind: str, *, shape: tuple[int, int] = (8, 8)) -> np.ndarray:
    r"""Coarse versions of images by rule ``kind`` (module docstring): ``"blur"``, ``"block"`` or ``"strokes"``.

    Parameters
    ----------
    x : (N, H*W) array
        Images flattened row by row, in [-1, 1].
    kind : str
        One of :data:`COARSE_KINDS`.
    shape : (int, int)
        (H, W), both even (the blocks are 2x2).

    Returns
    -------
    (N, H*W) array
        The coarse images, in [-1, 1].

    Examples
    --------
    A lone full-ink pixel is spread by the blur, averaged into its block and kept as a stroke; a lone faint one
    (a quarter-level, -0.25) is dropped from the strokes, since no half-inked pixel touches it:

    >>> x = -np.ones((1, 16)); x[0, 5] = 1.0
    >>> [round(float(coarse_digits(x, k, shape=(4, 4)).max()), 3) for k in COARSE_KINDS]
    [-0.676, -0.5, 1.0]
    >>> x[0, 5] = -0.25
    >>> float(coarse_digits(x, "strokes", shape=(4, 4)).max())
    -1.0
    """
    x, kind, (h, w) = check_coarse(x, kind, shape, COARSE_KINDS)
    img = x.reshape(-1, h, w)  # (N, H, W)
    out = {"blur": _blur, "block": _block, "strokes": _strokes}[kind](img)
    return out.reshape(x.shape[0], h * w)


def _blur(img: np.ndarray) -> np.ndarray:
    k = gaussian_kernel()
    r = k.size // 2
    pad = np.pad(img, ((0, 0), (r, r), (r, r)), constant_values=_PAPER)  # (N, H+2r, W+2r) paper beyond the border
    h, w = img.shape[1:]
    rows = sum(k[m] * pad[:, m:m + h, :] for m in range(k.size))  # (N, H, W+2r) along the columns
    return sum(k[m] * rows[:, :, m:m + w] for m in range(k.size))  # (N, H, W)


def _block(img: np.ndarray) -> np.ndarray:
    n, h, w = img.shape
    means = img.reshape(n, h // 2, 2, w // 2, 2).mean(axis=(2, 4))  # (N, H/2, W/2)
    return np.repeat(np.repeat(means, 2, axis=1), 2, axis=2)  # (N, H, W)


def _strokes(img: np.ndarray) -> np.ndarray:
    strong = img > 0.0  # (N, H, W) ink above half
    some = img > -0.5  # a quarter of the full level or more
    p = np.pad(strong, ((0, 0), (1, 1), (1, 1)))
    touches = p[:, :-2, 1:-1] | p[:, 2:, 1:-1] | p[:, 1:-1, :-2] | p[:, 1:-1, 2:]  # a side neighbour is strong
    return np.where(strong | (some & touches), 1.0, _PAPER)
