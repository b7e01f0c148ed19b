r"""The tilted target that classifier-free guidance is said to sample, by quadrature in 2-D.

For a labelled oracle (:mod:`npdiff.analytic._base`, "Labels") with class-conditional density
:math:`p(x \mid y)` and marginal :math:`p(x)` at time t (t = 0: the data), guidance weight w
"sharpens" the conditional to

.. math::
    p_w(x \mid y) = \frac{p(x \mid y)^{1+w}\,p(x)^{-w}}{Z_w},\qquad
    Z_w = \int p(x \mid y)^{1+w}\,p(x)^{-w}\,dx
        = \int p(x \mid y)\,p(y \mid x)^{w}\,dx\;\pi_y^{-w}

(Ho & Salimans 2022, Sec. 3.2; the integrand is at most :math:`\pi_y^{-w} p(x\mid y)`, so
:math:`Z_w` is finite). :math:`\log p_w` is closed-form up to :math:`\log Z_w`, which is the
midpoint rule on a uniform grid over :math:`[-h, h]^2` (the scheme of
:mod:`npdiff.data.toy2d`'s entropies: geometric convergence for the smooth mixtures, so the grid
must resolve the sharpest feature of :math:`p_w` and hold all but a negligible part of its
mass, which :attr:`TiltedTarget.edge_mass` reports). The grid also gives the entropy
:math:`H(p_w)`, the value :math:`-\mathbb E_{p_w}[\log p_w]` that samples from :math:`p_w` would
average to. This is the reference against which :mod:`npdiff.guidance` measures what guided
samplers actually draw.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from .._check import as_batch, as_generator, as_labels, positive_int, real_scalar
from ._base import AnalyticOracle

__all__ = ["TiltedTarget"]


class TiltedTarget:
    r"""The tilted density :math:`p_w(x \mid y)` of a labelled 2-D oracle (module docstring).

    Parameters
    ----------
    oracle : a labelled :class:`~npdiff.analytic.AnalyticOracle` of dimension 2.
    y : int
        The label.
    w : float
        The guidance weight, >= 0 (w = 0 is :math:`p(x \mid y)`).
    half_width : float
        The quadrature grid tiles :math:`[-h, h]^2`, h = ``half_width``.
    spacing : float
        Its cells' side, about.
    t : the time of the marginals that are tilted (default 0: the data).

    Attributes
    ----------
    log_normalizer : float
        :math:`\log Z_w`.
    entropy : float
        :math:`H(p_w)` in nats.
    edge_mass : the share of :math:`p_w`'s grid mass in the outermost ring of cells (small: the grid holds it).
    grid : (G^2, 2) array
        Cell centres.
    grid_log_prob : (G^2,) array
        :math:`\log p_w` at the centres.
    cell : the side of a cell.
    """

    def __init__(self, oracle: AnalyticOracle, y: int, w: float, *, half_width: float, spacing: float,
                 t: float = 0.0) -> None:
        if not isinstance(oracle, AnalyticOracle) or oracle.dim != 2 or oracle.num_classes == 0:
            raise TypeError(f"oracle must be a labelled 2-D analytic oracle, got {oracle!r}")
        self.oracle = oracle
        self.y = int(as_labels(y, None, oracle.num_classes))
        self.w = real_scalar(w, "w", lo=0.0)
        self.t = real_scalar(t, "t", lo=0.0, hi=1.0)
        h = real_scalar(half_width, "half_width", lo=0.0, lo_open=True)
        spacing = real_scalar(spacing, "spacing", lo=0.0, lo_open=True)
        if not 1.0 <= 2 * h / spacing <= 4000.0:  # at least one cell, at most 16 million
            raise ValueError(f"half_width / spacing must lie in [0.5, 2000] (cells per side of the grid), got "
                             f"half_width = {h:g} and spacing = {spacing:g}")
        G = round(2 * h / spacing)
        c = -h + (np.arange(G) + 0.5) * (2 * h / G)  # (G,) cell centres
        xx, yy = np.meshgrid(c, c, indexing="ij")
        self.grid = np.stack([xx.ravel(), yy.ravel()], axis=1)  # (G^2, 2)
        self.cell = 2 * h / G
        log_cell = 2.0 * np.log(self.cell)
        unnormalized = np.concatenate([self._unnormalized(self.grid[i:i + 20000])
                                       for i in range(0, self.grid.shape[0], 20000)])  # (G^2,)
        self.log_normalizer = float(logsumexp(unnormalized) + log_cell)
        self.grid_log_prob = unnormalized - self.log_normalizer
        p = np.exp(self.grid_log_prob + log_cell)  # (G^2,) the mass of each cell
        inside = p > 0.0
        self.entropy = float(-np.sum(p[inside] * self.grid_log_prob[inside]))
        ring = (np.abs(xx.ravel()) > c[-2]) | (np.abs(yy.ravel()) > c[-2])
        self.edge_mass = float(p[ring].sum() / p.sum())

    def _unnormalized(self, x: np.ndarray) -> np.ndarray:
        # (1 + w) log p(x | y) - w log p(x); where p(x | y) = 0 the tilt is 0 (never -inf + inf)
        log_c = self.oracle.log_prob(x, self.t, self.y)  # (B,)
        if self.w == 0.0:
            return log_c
        log_u = self.oracle.log_prob(x, self.t)
        with np.errstate(invalid="ignore"):
            return np.where(np.isfinite(log_c), (1.0 + self.w) * log_c - self.w * log_u, -np.inf)

    def log_prob(self, x: object) -> np.ndarray:
        r""":math:`\log p_w(x \mid y) = (1 + w)\log p(x \mid y) - w\log p(x) - \log Z_w` at points x (B, 2), (B,)."""
        return self._unnormalized(as_batch(x, "x", dim=2)) - self.log_normalizer

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        r"""n points from the grid's histogram of :math:`p_w`: a cell by its mass, then uniform in the cell, (n, 2).

        Exact in distribution for the piecewise-constant approximation of :math:`p_w` on the grid, so a
        reference sample for two-sample statistics at the grid's resolution, not beyond it.
        """
        n, rng = positive_int(n, "n"), as_generator(rng)
        p = np.exp(self.grid_log_prob - logsumexp(self.grid_log_prob))  # (G^2,) cell probabilities
        k = rng.choice(p.size, size=n, p=p)  # (n,)
        return self.grid[k] + self.cell * (rng.random((n, 2)) - 0.5)

    def __repr__(self) -> str:
        return f"TiltedTarget(y={self.y}, w={self.w:g}, log Z = {self.log_normalizer:.6g}, {self.oracle!r})"
