r"""The eight standard 2-D toy sets of FFJORD, with their true densities and entropies.

>>> import numpy as np
>>> from npdiff.data import toy2d
>>> d = toy2d.load("8gaussians")
>>> x = d.sample(1000, np.random.default_rng(0))    # (1000, 2)
>>> d.log_prob(x).mean(), -d.entropy                 # close: the samples come from the density
>>> oracle = d.oracle()                              # a denoiser with the exact score of q_t

Sampling follows FFJORD's toy data generator (Grathwohl et al. 2019, ``lib/toy_data.py``)
with the same scale and noise, except that where FFJORD spaces points evenly (angles of
rings and circles, arc positions of moons, equal counts per ring, moon, spiral or arm),
npdiff draws them i.i.d., so samples are i.i.d. from the stated density. The densities and
how exact they are (see :mod:`npdiff.data._toy_sets` for the formulas):

==============  ============================================  ======================
name            density                                       oracle(schedule)
==============  ============================================  ======================
8gaussians      Gaussian mixture (exact)                      GaussianMixture
checkerboard    uniform on 8 squares, 1/32 inside (exact)     BoxMixture (exact)
rings           4 blurred circles, Bessel I0 (exact)          RingMixture (exact)
circles         2 blurred circles, Bessel I0 (exact)          RingMixture (exact)
moons           quadrature over the arcs (quadrature-exact)   GaussianMixture
swissroll       quadrature over the roll (quadrature-exact)   GaussianMixture
2spirals        quadrature over the spirals (quad.-exact)     BoxMixture
pinwheel        change of variables, root finding (exact)     NotImplementedError
==============  ============================================  ======================

Seven sets come with labels, the discrete choice of their generator (which component, ring,
moon, spiral, blade, or upper/lower square; swissroll has none): ``sample_labelled(n, rng)``
returns the points with their labels by the same draws as ``sample``, ``log_prob(x, y)`` is the
class-conditional density and the oracle is labelled (a conditional denoiser).

``entropy`` is the true differential entropy :math:`H = -\int p\log p` in nats, the floor
of every model's expected test NLL (the expected gap NLL - H is the KL from the data to
the model). It is computed by the midpoint rule on a uniform grid over a box holding all
but a negligible fraction of the mass (the grid's total mass is 1 within 2e-10). For the
smooth densities the integrand is analytic near the real plane and decays like a
Gaussian, so the rule converges geometrically as the spacing shrinks (the grids of
``_SPECS`` change H by less than 1e-6 when halved); for the checkerboard the cells tile
the squares and the rule is exact (:math:`\ln 32`). Computed on first use and cached for
the session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._check import as_batch, as_generator, as_labels, positive_int
from ..analytic import AnalyticOracle
from ..schedule import Schedule
from . import _toy_sets as sets

__all__ = ["NAMES", "Toy2D", "load"]


@dataclass(frozen=True)
class _Spec:
    sample_labelled: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]] | None  # None: no labels
    oracle: Callable[[Schedule | None], AnalyticOracle]
    half_width: float  # the entropy grid covers [-half_width, half_width]^2 ...
    spacing: float  # ... with cells of this side
    num_classes: int = 0
    exact_log_prob: Callable[..., np.ndarray] | None = None  # log_prob(x, y=None) when there is no oracle
    sample: Callable[[int, np.random.Generator], np.ndarray] | None = None  # for a set without labels


_SPECS: dict[str, _Spec] = {
    "8gaussians": _Spec(sets.sample_8gaussians_labelled, sets.oracle_8gaussians, 6.5, 0.1, 8),
    "checkerboard": _Spec(sets.sample_checkerboard_labelled, sets.oracle_checkerboard, 4.0, 0.5, 2),
    "rings": _Spec(sets.sample_rings_labelled, sets.oracle_rings, 4.0, 0.04, 4),
    "circles": _Spec(sets.sample_circles_labelled, sets.oracle_circles, 5.5, 0.1, 2),
    "moons": _Spec(sets.sample_moons_labelled, sets.oracle_moons, 4.5, 0.1, 2),
    "swissroll": _Spec(None, sets.oracle_swissroll, 5.0, 0.1, sample=sets.sample_swissroll),
    "pinwheel": _Spec(sets.sample_pinwheel_labelled, sets.oracle_pinwheel, 6.0, 0.05, 5, sets.pinwheel_log_prob),
    "2spirals": _Spec(sets.sample_2spirals_labelled, sets.oracle_2spirals, 4.5, 0.075, 2),
}

#: Names accepted by :func:`load`, in FFJORD's usual order.
NAMES: tuple[str, ...] = ("8gaussians", "checkerboard", "rings", "circles", "moons", "swissroll", "pinwheel",
                          "2spirals")

_ENTROPY_CACHE: dict[str, float] = {}


def grid_points(half_width: float, spacing: float) -> np.ndarray:
    r"""Centres of the square cells of side ``spacing`` tiling :math:`[-w, w]^2`, (G^2, 2)."""
    n = round(2 * half_width / spacing)
    c = -half_width + (np.arange(n) + 0.5) * (2 * half_width / n)  # (G,)
    xx, yy = np.meshgrid(c, c, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


class Toy2D:
    r"""One 2-D toy set: sampler, exact log-density, true entropy and (where it exists) oracle.

    Build it with :func:`load`. Attributes: ``name`` (str), ``dim`` (2), ``num_classes``
    (the number of labels, 0 for swissroll).
    """

    dim = 2

    def __init__(self, name: str, spec: _Spec) -> None:
        self.name = name
        self.num_classes = spec.num_classes
        self._spec = spec
        self._clean = None if spec.exact_log_prob else spec.oracle(None)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        r"""Draw n i.i.d. points with FFJORD's generative process, (n, 2) float64."""
        n = positive_int(n, "n")
        rng = as_generator(rng)
        if self._spec.sample_labelled is None:
            return self._spec.sample(n, rng)
        return self._spec.sample_labelled(n, rng)[0]

    def sample_labelled(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        r"""Draw n points and their labels, (n, 2) float64 and (n,) int64, by the same draws as :meth:`sample`."""
        n = positive_int(n, "n")
        rng = as_generator(rng)
        if self._spec.sample_labelled is None:
            raise ValueError(f"{self.name} has no labels (its generator makes no discrete choice)")
        x, y = self._spec.sample_labelled(n, rng)
        return x, y.astype(np.int64)

    def log_prob(self, x: object, y: object = None) -> np.ndarray:
        r"""Exact (or quadrature-exact: see the module table) log-density in nats, (B,).

        Parameters
        ----------
        x : (B, 2) points. Outside the checkerboard's squares the density is 0 and
            ``log_prob`` is ``-inf``; every other set has a positive density everywhere
            (pinwheel returns ``-inf`` beyond ``|x| = 16``, where its f-density is below e^-270).
        y : None, or labels (an int or (B,) ints): the class-conditional density :math:`\log p(x \mid y)`.
        """
        x = as_batch(x, "x", dim=2)
        y = as_labels(y, x.shape[0], self.num_classes)
        if self._clean is None:
            return self._spec.exact_log_prob(x, y)
        return self._clean.log_prob(x, 0.0, y)  # t = 0, where sigma(t) = 0: the clean data

    @property
    def entropy(self) -> float:
        r"""True differential entropy :math:`-\int p \log p` in nats (grid integral, cached)."""
        if self.name not in _ENTROPY_CACHE:
            h, _ = self._grid_integrals(self._spec.spacing)
            _ENTROPY_CACHE[self.name] = h
        return _ENTROPY_CACHE[self.name]

    def _grid_integrals(self, spacing: float) -> tuple[float, float]:
        r"""Midpoint-rule entropy and total mass on the grid of the given spacing."""
        pts = grid_points(self._spec.half_width, spacing)
        log_p = np.concatenate([self.log_prob(pts[i:i + 20000]) for i in range(0, pts.shape[0], 20000)])
        p = np.exp(log_p)
        cell = (2 * self._spec.half_width / round(2 * self._spec.half_width / spacing)) ** 2
        inside = p > 0.0
        return float(-np.sum(p[inside] * log_p[inside]) * cell), float(np.sum(p) * cell)

    def oracle(self, schedule: Schedule | None = None) -> AnalyticOracle:
        r"""The exact denoiser of this set diffusing under ``schedule`` (``vp_linear()`` if None).

        Raises ``NotImplementedError`` for pinwheel, whose noised marginal has no closed form.
        """
        return self._spec.oracle(schedule)

    def __repr__(self) -> str:
        return f"Toy2D({self.name!r})"


def load(name: str) -> Toy2D:
    r"""The toy set called ``name``, one of :data:`NAMES`."""
    if not isinstance(name, str) or name not in _SPECS:
        raise ValueError(f"unknown toy2d dataset {name!r}; valid names are {', '.join(NAMES)}")
    return Toy2D(name, _SPECS[name])
