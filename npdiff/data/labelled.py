r"""Points of one class of a labelled data set, by rejection.

A labelled set (a toy set with labels, :mod:`npdiff.data.toy2d`; the digits,
:mod:`npdiff.data.images`) draws points with their labels, :math:`(x, y) \sim p(x, y)`. Keeping
the draws whose label is y leaves points distributed as :math:`p(x \mid y)`: the test points on
which a conditional model's :math:`\log p_\theta(x \mid y)` is compared with the truth.

>>> import numpy as np
>>> from npdiff.data import toy2d
>>> from npdiff.data.labelled import sample_class
>>> x = sample_class(toy2d.load("8gaussians"), 3, 5, np.random.default_rng(0))
>>> x.shape
(5, 2)
"""

from __future__ import annotations

import numpy as np

from .._check import as_generator, positive_int

__all__ = ["MAX_ROUNDS", "sample_class"]

#: rounds of draws after which :func:`sample_class` gives up: a class that never comes is an error, not a hang
MAX_ROUNDS = 1000


def sample_class(data: object, label: int, n: int, rng: np.random.Generator) -> np.ndarray:
    r"""Draw n points of class ``label``: labelled draws of ``data``, the others rejected.

    Each round draws :math:`\max(n, 64) \cdot C` labelled points (C classes: about
    :math:`\max(n, 64)` of each class when they are balanced) and keeps those of class
    ``label``, until n are kept; the first n are returned, in the order drawn.

    Parameters
    ----------
    data : a labelled data set: ``num_classes`` > 0 and ``sample_labelled(n, rng)`` returning
        ``(n, D)`` points and ``(n,)`` labels.
    label : the class, an int in ``0..num_classes - 1``.
    n : the number of points, >= 1.
    rng : the source of the draws.

    Returns
    -------
    (n, D) float64 points of class ``label``.
    """
    if not callable(getattr(data, "sample_labelled", None)) or not getattr(data, "num_classes", 0):
        raise TypeError(f"data must be a labelled data set (num_classes > 0 and sample_labelled), got {data!r}")
    label = positive_int(label, "label", minimum=0, maximum=data.num_classes - 1)
    n, rng = positive_int(n, "n"), as_generator(rng)
    kept = []
    count = 0
    for _ in range(MAX_ROUNDS):
        xs, ys = data.sample_labelled(max(n, 64) * data.num_classes, rng)
        kept.append(xs[ys == label])
        count += kept[-1].shape[0]
        if count >= n:
            return np.concatenate(kept)[:n]  # (n, D)
    raise ValueError(f"class {label} came {count} times in {MAX_ROUNDS} rounds of labelled draws, fewer than n = {n}")
