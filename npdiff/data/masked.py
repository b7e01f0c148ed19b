r"""Training pairs of a mask-conditioned inpainting model: points, and their context [known values * mask | mask].

GLIDE's inpainting model (Nichol et al. 2022, Sec. 3.3) is trained on images with a random region erased and
sees the erased image and the mask as extra input channels. Here a point x (D,) gets a random mask m of known
coordinates: the number k of known coordinates is uniform in 0..D-1 (never all of them: nothing would be left
to fill in; k = 0 is the unconditional model), their positions uniform among the :math:`\binom{D}{k}`, and the
network's context is :math:`[x \odot m \mid m]` (2 D numbers), :func:`mask_context`.
"""

from __future__ import annotations

import numpy as np

from .._check import as_batch, as_generator, positive_int
from ._validate import as_mask_and_known, check_masked_data

__all__ = ["MaskedPairs", "mask_context"]


def mask_context(known: object, mask: object) -> np.ndarray:
    r"""The context :math:`[y \odot m \mid m]` (N, 2 D) of known values y (N, D) and a mask m (N, D) of 0/1 or bools."""
    return _mask_context_unchecked(*as_mask_and_known(known, mask))


def _mask_context_unchecked(y: np.ndarray, m: np.ndarray) -> np.ndarray:
    return np.concatenate([y * m, m], axis=1)  # (N, 2 D)


class MaskedPairs:
    r"""``sample(n, rng)``: n points of ``data`` and their contexts (module docstring), ``(x (n, D), c (n, 2 D))``.

    Parameters
    ----------
    data : a sampler ``sample(n, rng)`` or an object with ``.sample(n, rng)`` returning (n, D) points.
    dim : D.

    The draws, in order: the points, then per point k, then the positions.
    """

    def __init__(self, data: object, dim: int) -> None:
        self._sample, self.dim = check_masked_data(data, dim)
        self.name = getattr(data, "name", None)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        r"""n points (n, D) and their contexts (n, 2 D)."""
        n, rng = positive_int(n, "n"), as_generator(rng)
        x = as_batch(self._sample(n, rng), "the data's points", dim=self.dim)  # (n, D)
        k = rng.integers(0, self.dim, n)  # (n,) known coordinates per point, 0..D-1
        order = np.argsort(rng.random((n, self.dim)), axis=1)  # (n, D) a uniform permutation per point
        mask = np.argsort(order, axis=1) < k[:, None]  # (n, D) the first k of each permutation are known
        return x, _mask_context_unchecked(x, mask.astype(np.float64))

    def __repr__(self) -> str:
        return f"MaskedPairs(D={self.dim}, data={self.name!r})"
