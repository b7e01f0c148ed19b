r"""Masks of known coordinates, and the one formula every inpainter shares: keep what is known.

A mask is a (D,) or (N, D) array of bools (or of 0/1 numbers), ``True`` where a coordinate is known; the
known values are a (D,) or (N, D) array whose entries are read only where the mask is ``True`` (they must
be finite everywhere all the same, so a NaN never hides in a coordinate that turns out to be read). A (D,)
mask or row of known values serves every sample. A mask that marks every coordinate known leaves nothing to
fill in and one that marks none is plain sampling: both are refused, with an error naming ``mask``. The
inpainters check masks and known values at their door (:mod:`npdiff.edit._validate`: ``as_mask``,
``as_known``) and hand (N, D) arrays to :func:`keep_known`.

For images there are named masks (:func:`image_mask`: the left half, the bottom half, the centre square, half
of the pixels at random), each naming the part that is missing; :func:`as_image_mask` takes a name or an array
of the images' shape.

With :math:`m \in \{0, 1\}^D` the mask and :math:`y` the known values, the merge of a state with
(a version of) the known values is

.. math:: x \leftarrow m \odot y + (1 - m) \odot x

(Song et al. 2021, App. I.2, the last line of the imputation step; Lugmayr et al. 2022, Eq. 10).
"""

from __future__ import annotations

import numpy as np

from ._validate import as_mask, check_image_mask, check_shape

__all__ = ["IMAGE_MASKS", "as_image_mask", "image_mask", "keep_known"]


def keep_known(x: np.ndarray, known: np.ndarray, mask: np.ndarray) -> np.ndarray:
    r"""Replace the known coordinates of x by the known values: :math:`m \odot y + (1 - m) \odot x`.

    Song et al. 2021, App. I.2; Lugmayr et al. 2022, Eq. 10. The formula the inpainters apply, on arrays
    they checked at their door.

    Parameters
    ----------
    x : (N, D) array
        The states.
    known : (D,) or (N, D) array
        The values to keep where the mask is ``True``.
    mask : (D,) or (N, D) bool array
        ``True`` where a coordinate is known.

    Returns
    -------
    (N, D) array
        x with its known coordinates replaced.

    Examples
    --------
    >>> import numpy as np
    >>> keep_known(np.array([[5.0, 6.0], [7.0, 8.0]]), np.array([1.0, 0.0]), np.array([True, False]))
    array([[1., 6.],
           [1., 8.]])
    """
    return np.where(mask, known, x)  # (N, D)


#: the named masks of an image, each naming the region that is *missing* (to be filled in); the rest is known
IMAGE_MASKS = ("left", "bottom", "centre", "random")


def image_mask(name: str, rng: np.random.Generator | int | None = None, *, shape: tuple[int, int] = (8, 8),
               n: int | None = None) -> np.ndarray:
    r"""A named mask of known pixels for (H, W) images flattened row by row: ``True`` where a pixel is known.

    The name says which part is **missing** (to be filled in):

    * ``"left"``: the left half of the columns, :math:`j < W/2`;
    * ``"bottom"``: the bottom half of the rows, :math:`i \ge H/2`;
    * ``"centre"``: the :math:`H/2 \times W/2` block from row :math:`\lfloor H/4\rfloor` and column
      :math:`\lfloor W/4\rfloor` (the centre 4x4 square of an 8x8 digit);
    * ``"random"``: :math:`\lfloor HW/2 \rfloor` pixels drawn without replacement from ``rng``, a new draw a row.

    Parameters
    ----------
    name : str
        One of :data:`IMAGE_MASKS`.
    rng : np.random.Generator, int or None
        The draw of ``"random"``, a Generator or an int seed (required there; unused by the others).
    shape : (int, int)
        (H, W), both even and at least 2 (default the 8x8 digits).
    n : int or None
        None: one (H*W,) mask; an int: (n, H*W), one row a sample.

    Returns
    -------
    (H*W,) or (n, H*W) bool array
        ``True`` where known; never all known, never all missing.

    Examples
    --------
    >>> image_mask("left", shape=(2, 4)).reshape(2, 4).astype(int)
    array([[0, 0, 1, 1],
           [0, 0, 1, 1]])
    >>> int(image_mask("random", np.random.default_rng(0)).sum())
    32
    """
    name, rng, (h, w), rows = check_image_mask(name, rng, shape, n)
    i, j = np.indices((h, w))  # (H, W) each
    missing = {"left": lambda: j < w // 2, "bottom": lambda: i >= h // 2,
               "centre": lambda: (i >= h // 4) & (i < h // 4 + h // 2) & (j >= w // 4) & (j < w // 4 + w // 2)}
    if name != "random":
        known = ~missing[name]().reshape(-1)  # (H*W,)
        return known if n is None else np.tile(known, (rows, 1))
    known = np.zeros((rows, h * w), dtype=bool)  # (n, H*W)
    for k in range(rows):
        known[k, rng.permutation(h * w)[: (h * w) // 2]] = True
    return known[0] if n is None else known


def as_image_mask(mask: object, shape: tuple[int, int] = (8, 8), rng: np.random.Generator | None = None) -> np.ndarray:
    r"""A mask of known pixels given by name (:func:`image_mask`) or as an array of (H, W), (H*W,) or (B, H*W) bools.

    Parameters
    ----------
    mask : str or array
        A name of :data:`IMAGE_MASKS`, or the mask itself: ``True`` (or 1) where a pixel is known.
    shape : (int, int)
        (H, W) of the images.
    rng : np.random.Generator or None
        The draw of the ``"random"`` mask.

    Returns
    -------
    (H*W,) or (B, H*W) bool array
        Refused with a ValueError naming ``mask`` when its shape is not the images' or it marks every pixel
        known or none.

    Examples
    --------
    >>> as_image_mask(np.eye(2, dtype=bool), shape=(2, 2)).tolist()
    [True, False, False, True]
    """
    if isinstance(mask, str):
        return image_mask(mask, rng, shape=shape)
    h, w = check_shape(shape)
    try:
        m = np.asarray(mask) if isinstance(mask, (np.ndarray, list, tuple)) else mask
    except ValueError as exc:  # ragged lists
        raise TypeError(f"mask must be a name or an array of bools or 0/1 numbers, got a ragged {type(mask).__name__}") from exc
    if isinstance(m, np.ndarray) and m.shape == (h, w):
        m = m.reshape(-1)
    if isinstance(m, np.ndarray) and (m.ndim not in (1, 2) or m.shape[-1] != h * w):
        raise ValueError(f"mask must be ({h}, {w}), ({h * w},) or (B, {h * w}) for {h}x{w} images, got shape {m.shape}")
    return as_mask(m, h * w)
