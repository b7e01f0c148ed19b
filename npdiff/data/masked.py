r"""Training pairs of a mask-conditioned inpainting model: points, and their context [known values * mask | mask].

GLIDE's inpainting model (Nichol et al. 2022, Sec. 3.3) is trained on images with a random region erased and
sees the erased image and the mask as extra input channels. Here a point x (D,) gets a random mask m of known
coordinates: the number k of known coordinates is uniform in 0..D-1 (never all of them: nothing would be left
to fill in; k = 0 is the unconditional model), their positions uniform among the :math:`\binom{D}{k}`, and the
network's context is :math:`[x \odot m \mid m]` (2 D numbers), :func:`mask_context`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .._check import as_batch, as_float_array, as_generator, positive_int

__all__ = ["MaskedPairs", "mask_context"]


def mask_context(known: object, mask: object) -> np.ndarray:
    r"""The context :math:`[y \odot m \mid m]` (N, 2 D) of known values y (N, D) and a mask m (N, D) of 0/1 or bools."""
    y = as_batch(known, "known")
    try:
        arr = np.asarray(mask)
    except ValueError as exc:  # ragged lists
        raise TypeError(f"mask must be an array of 0/1 or bools, got {type(mask).__name__}") from exc
    m = arr.astype(np.float64) if arr.dtype == bool else as_float_array(arr, "mask")
    if m.shape != y.shape:
        raise ValueError(f"mask must have the shape of known {y.shape}, got {m.shape}")
    if not np.all((m == 0.0) | (m == 1.0)):
        raise ValueError(f"mask must hold only 0 and 1 (or bools), got values {np.unique(m)[:6]}")
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
        sample = getattr(data, "sample", data)
        if not callable(sample):
            raise TypeError(f"data must be a sampler sample(n, rng) or have a .sample(n, rng), got {type(data).__name__}")
        self._sample: Callable = sample
        self.dim = positive_int(dim, "dim", minimum=2)
        self.name = getattr(data, "name", None)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        r"""n points (n, D) and their contexts (n, 2 D)."""
        n, rng = positive_int(n, "n"), as_generator(rng)
        x = as_batch(self._sample(n, rng), "the data's points", dim=self.dim)  # (n, D)
        k = rng.integers(0, self.dim, n)  # (n,) known coordinates per point, 0..D-1
        order = np.argsort(rng.random((n, self.dim)), axis=1)  # (n, D) a uniform permutation per point
        mask = np.argsort(order, axis=1) < k[:, None]  # (n, D) the first k of each permutation are known
        return x, mask_context(x, mask)

    def __repr__(self) -> str:
        return f"MaskedPairs(D={self.dim}, data={self.name!r})"
