r"""Masks of known coordinates, and the one formula every inpainter shares: keep what is known.

A mask is a (D,) or (N, D) array of bools (or of 0/1 numbers), ``True`` where a coordinate is known; the
known values are a (D,) or (N, D) array whose entries are read only where the mask is ``True`` (they must
be finite everywhere all the same, so a NaN never hides in a coordinate that turns out to be read). A (D,)
mask or row of known values serves every sample. A mask that marks every coordinate known leaves nothing to
fill in and one that marks none is plain sampling: both are refused, with an error naming ``mask``. The
inpainters check masks and known values at their door (:mod:`npdiff.edit._validate`: ``as_mask``,
``as_known``) and hand (N, D) arrays to :func:`keep_known`.

With :math:`m \in \{0, 1\}^D` the mask and :math:`y` the known values, the merge of a state with
(a version of) the known values is

.. math:: x \leftarrow m \odot y + (1 - m) \odot x

(Song et al. 2021, App. I.2, the last line of the imputation step; Lugmayr et al. 2022, Eq. 10).
"""

from __future__ import annotations

import numpy as np

__all__ = ["keep_known"]


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
