r"""The exact conditional of one coordinate of a 2D set given the other, by 1-D quadrature of its density.

For a density :math:`p(x_1, x_2)` known in closed form (:mod:`npdiff.data.toy2d`, the oracles of
:mod:`npdiff.analytic`) and a value a of the known coordinate,

.. math::
    p(x_2 \mid x_1 = a) = \frac{p(a, x_2)}{p_1(a)},\qquad p_1(a) = \int p(a, x_2)\,dx_2,
    \qquad F(x_2) = \int_{-\infty}^{x_2} p(x_2' \mid x_1 = a)\,dx_2'

(Bayes' rule). The integrals are the trapezoid rule on a uniform grid of the free coordinate that holds all
but a negligible part of the mass: :math:`F` is tabulated at the grid points and linear between them,
which makes it the exact CDF of a density constant on each cell, within :math:`O(h^2)` of the true one for a
smooth density and :math:`O(h)` at a jump (the checkerboard's edges), with h the spacing (1e-3 by default).
Draws are exact draws of that F by inversion, and the Wasserstein-1 distance of samples to it is exact
(:func:`npdiff.metrics.wasserstein1_to_cdf`). This is the truth every inpainting method is measured against
in ``benchmarks/inpaint_2d.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._check import as_float_array, as_generator, positive_int
from ..metrics import wasserstein1_to_cdf
from ._validate import check_conditional

__all__ = ["ExactConditional", "exact_conditional"]


@dataclass(frozen=True)
class ExactConditional:
    r"""The conditional :math:`p(x_{\text{free}} \mid x_{\text{known}} = a)` on a grid (:func:`exact_conditional`).

    Attributes
    ----------
    a : float
        The value of the known coordinate.
    known : int
        Which coordinate is known (0 or 1); the other is free.
    grid : (G,) array
        The free coordinate's grid, uniform.
    density : (G,) array
        :math:`p(x_{\text{free}} \mid x_{\text{known}} = a)` at the grid, integrating to 1 by the trapezoid rule.
    cdf : (G,) array
        F at the grid, from 0 to 1.
    log_marginal : float
        :math:`\log p_{\text{known}}(a)`, the log-density of the known coordinate at a (how far into a tail a is).
    """

    a: float
    known: int
    grid: np.ndarray
    density: np.ndarray
    cdf: np.ndarray
    log_marginal: float

    def cdf_at(self, x: object) -> np.ndarray:
        r"""F at the points x (any shape), linear between grid points, 0 and 1 beyond."""
        return np.interp(as_float_array(x, "x"), self.grid, self.cdf)

    def sample(self, n: int, rng: np.random.Generator | int) -> np.ndarray:
        r"""n exact draws of F by inversion, :math:`x = F^{-1}(u)`, :math:`u \sim U(0, 1)`; (n,) array."""
        n, rng = positive_int(n, "n"), as_generator(rng)
        u = rng.random(n)  # (n,) in [0, 1)
        # the last grid index k with F_k <= u: the cell [x_k, x_k+1] where F rises past u (flat cells skipped)
        k = np.clip(np.searchsorted(self.cdf, u, side="right") - 1, 0, self.grid.size - 2)
        rise = self.cdf[k + 1] - self.cdf[k]
        frac = np.divide(u - self.cdf[k], rise, out=np.zeros_like(u), where=rise > 0.0)
        return self.grid[k] + frac * (self.grid[k + 1] - self.grid[k])

    def wasserstein1(self, samples: object) -> float:
        r""":math:`W_1` of 1-D samples of the free coordinate to this conditional, :math:`\int|F_n - F|`, exact."""
        return wasserstein1_to_cdf(samples, self.grid, self.cdf)


def exact_conditional(dataset: object, a: float, *, known: int = 0, lo: float = -8.0, hi: float = 8.0,
                      points: int = 16001) -> ExactConditional:
    r"""The conditional of the free coordinate of a 2D density given the known one, by quadrature.

    .. math::
        p(x_2 \mid x_1 = a) = \frac{p(a, x_2)}{\int p(a, x_2')\,dx_2'}

    (Bayes' rule; the trapezoid rule on ``points`` uniform points of [lo, hi]).

    Parameters
    ----------
    dataset : object
        Anything with ``log_prob(x) -> (N,)`` on (N, 2) points: a :class:`~npdiff.data.toy2d.Toy2D` set.
    a : float
        The value of the known coordinate.
    known : int
        The known coordinate, 0 (condition on x_1, the default) or 1.
    lo : float
        The grid's lower end for the free coordinate.
    hi : float
        Its upper end; the density there must be negligible (below 1e-12 of its largest value).
    points : int
        The grid's size, >= 3.

    Returns
    -------
    ExactConditional
        The grid, density, CDF and :math:`\log p_{\text{known}}(a)`.

    Examples
    --------
    The 8 Gaussians at :math:`x_1 = 0`: the two components on the vertical axis, at :math:`\pm 4/1.414`.

    >>> import numpy as np
    >>> from npdiff.data import toy2d
    >>> cond = exact_conditional(toy2d.load("8gaussians"), 0.0)
    >>> x = cond.sample(20000, np.random.default_rng(0))
    >>> print(round(float(np.mean(np.abs(x))), 2), round(float(cond.cdf_at(0.0)), 3))
    2.83 0.5
    """
    a, lo, hi, points, known = check_conditional(dataset, a, lo, hi, points, known)
    grid = np.linspace(lo, hi, points)  # (G,)
    xy = np.empty((points, 2))
    xy[:, known], xy[:, 1 - known] = a, grid
    log_p = np.asarray(dataset.log_prob(xy), dtype=np.float64)  # (G,) log p(a, x_free)
    top = np.max(log_p)
    if not np.isfinite(top):
        raise ValueError(f"a = {a} has zero density at every point of the grid on [lo, hi] = [{lo}, {hi}]: "
                         f"p(x_known = a) = 0 there (outside the support, or a grid too coarse to see it)")
    p = np.exp(log_p - top)  # (G,) scaled by the largest value, so a far tail does not underflow
    if max(p[0], p[-1]) > 1e-12:
        raise ValueError(f"the grid [lo, hi] = [{lo}, {hi}] cuts off mass of the conditional at a = {a}: widen it")
    h = grid[1] - grid[0]
    cells = 0.5 * (p[:-1] + p[1:]) * h  # (G-1,) the trapezoid rule's mass per cell
    mass = np.sum(cells)
    cdf = np.minimum(np.concatenate([[0.0], np.cumsum(cells) / mass]), 1.0)  # (G,) round-off may pass 1 at the end
    cdf[-1] = 1.0
    return ExactConditional(a, known, grid, p / mass, cdf, float(top + np.log(mass)))
