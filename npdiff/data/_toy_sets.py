r"""The eight FFJORD 2-D sets: their generative processes and their exact densities.

Each sampler follows FFJORD's ``lib/toy_data.py`` (Grathwohl et al. 2019) with the same
scale and noise (``make_moons``, ``make_circles`` and ``make_swiss_roll`` reimplemented from
scikit-learn's ``datasets/_samples_generator.py``), except that every discrete choice
(which ring, moon, spiral or pinwheel arm) and every angle or arc position is drawn i.i.d.
where FFJORD spaces them evenly, so the samples are i.i.d. from the stated density.

The densities are mixtures the analytic oracles already know:

* ``8gaussians``: a :class:`~npdiff.analytic.GaussianMixture` (exact);
* ``checkerboard``: a :class:`~npdiff.analytic.BoxMixture` of 8 squares (exact);
* ``rings``, ``circles``: a :class:`~npdiff.analytic.RingMixture` (exact, Bessel I0);
* ``moons``, ``swissroll``: a curve :math:`c(\theta)` with a density on its parameter,
  blurred by isotropic noise, :math:`p(x) = \int p(\theta)\,\mathcal N(x; c(\theta), s^2 I)\,d\theta`;
  the integral is a composite Gauss-Legendre rule, so the density is a
  :class:`~npdiff.analytic.GaussianMixture` with one component per node (quadrature-exact:
  wherever log p > -20, doubling the nodes of the rules below changes log p by less than
  1e-9; far out in the tails the relative error grows, as the blurred curve's Gaussian
  tails narrow there);
* ``2spirals``: the same with a uniform offset in a box of side 1/6 before the blur, a
  :class:`~npdiff.analytic.BoxMixture` with one box per node (quadrature-exact, likewise);
* ``pinwheel``: a nonlinear map of a Gaussian; its density is the change of variables
  summed over the preimages, found by bracketing and bisection (exact up to the root
  tolerance, see :func:`pinwheel_log_prob`). No closed-form noised marginal.
"""

from __future__ import annotations

import numpy as np

from ..analytic import BoxMixture, GaussianMixture, RingMixture
from ..schedule import Schedule

# -- quadrature -------------------------------------------------------------------------


def _gauss_legendre(a: float, b: float, panels: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Composite Gauss-Legendre rule on [a, b]: ``panels`` equal panels of ``order`` nodes each."""
    u, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(a, b, panels + 1)
    half = 0.5 * np.diff(edges)[:, None]  # (panels, 1)
    nodes = (0.5 * (edges[:-1] + edges[1:]))[:, None] + half * u[None]  # (panels, order)
    return nodes.ravel(), (half * w[None]).ravel()


# -- 8gaussians ---------------------------------------------------------------------------
# Centres 4 (cos, sin) of multiples of 45 degrees, std 0.5, everything divided by 1.414.

_SQ = 1.0 / np.sqrt(2.0)
_CENTERS_8G = 4.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (_SQ, _SQ), (_SQ, -_SQ), (-_SQ, _SQ), (-_SQ, -_SQ)])


def sample_8gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    point = rng.standard_normal((n, 2)) * 0.5 + _CENTERS_8G[rng.integers(0, 8, size=n)]
    return point / 1.414


def oracle_8gaussians(schedule: Schedule | None) -> GaussianMixture:
    return GaussianMixture(np.full(8, 1 / 8), _CENTERS_8G / 1.414, (0.5 / 1.414) ** 2, schedule)


# -- checkerboard -------------------------------------------------------------------------
# x1 ~ U[-2, 2); x2 ~ U[0, 1) or U[-2, -1), shifted up by 1 where floor(x1) is odd; times 2:
# 8 squares of side 2, density 1/32 on each.


def sample_checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    x1 = rng.random(n) * 4 - 2
    x2_ = rng.random(n) - rng.integers(0, 2, size=n) * 2
    x2 = x2_ + (np.floor(x1) % 2)
    return np.stack([x1, x2], axis=1) * 2


def _checkerboard_boxes() -> tuple[np.ndarray, np.ndarray]:
    lows = []
    for i in range(-2, 2):  # unit cells of x1 before the factor 2
        for j in ((0, -2) if i % 2 == 0 else (1, -1)):
            lows.append((i, j))
    lows = 2.0 * np.array(lows, dtype=np.float64)  # (8, 2)
    return lows, lows + 2.0


def oracle_checkerboard(schedule: Schedule | None) -> BoxMixture:
    lows, highs = _checkerboard_boxes()
    return BoxMixture(np.full(8, 1 / 8), lows, highs, 0.0, schedule)


# -- rings and circles --------------------------------------------------------------------
# rings: radii 3 x (1, 3/4, 1/2, 1/4), noise 0.08. circles: make_circles(factor=.5, noise=.08)
# times 3, i.e. radii 3 and 1.5 with noise 0.24.

_RINGS_RADII = 3.0 * np.array([1.0, 0.75, 0.5, 0.25])
_CIRCLES_RADII = np.array([3.0, 1.5])


def _sample_rings(n: int, rng: np.random.Generator, radii: np.ndarray, noise: float) -> np.ndarray:
    k = rng.integers(0, radii.size, size=n)
    theta = rng.uniform(0.0, 2.0 * np.pi, size=n)
    x = radii[k, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return x + rng.normal(scale=noise, size=(n, 2))


def sample_rings(n: int, rng: np.random.Generator) -> np.ndarray:
    return _sample_rings(n, rng, _RINGS_RADII, 0.08)


def oracle_rings(schedule: Schedule | None) -> RingMixture:
    return RingMixture(np.full(4, 0.25), _RINGS_RADII, 0.08, schedule)


def sample_circles(n: int, rng: np.random.Generator) -> np.ndarray:
    return _sample_rings(n, rng, _CIRCLES_RADII, 0.24)


def oracle_circles(schedule: Schedule | None) -> RingMixture:
    return RingMixture(np.full(2, 0.5), _CIRCLES_RADII, 0.24, schedule)


# -- moons --------------------------------------------------------------------------------
# make_moons(noise=0.1) times 2 plus (-1, -0.2): an upper half circle of radius 2 about
# (-1, -0.2) and a lower one about (1, 0.8), theta ~ U[0, pi], noise 0.2.

_MOON_CENTERS = np.array([(-1.0, -0.2), (1.0, 0.8)])
_MOON_SIGNS = np.array([1.0, -1.0])


def sample_moons(n: int, rng: np.random.Generator) -> np.ndarray:
    k = rng.integers(0, 2, size=n)
    theta = rng.uniform(0.0, np.pi, size=n)
    x = _MOON_CENTERS[k] + 2.0 * _MOON_SIGNS[k, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return x + rng.normal(scale=0.2, size=(n, 2))


def oracle_moons(schedule: Schedule | None, panels: int = 24, order: int = 12) -> GaussianMixture:
    theta, w = _gauss_legendre(0.0, np.pi, panels, order)  # p(theta) = 1/pi on [0, pi]
    arc = np.stack([np.cos(theta), np.sin(theta)], axis=1)  # (J, 2)
    means = np.concatenate([_MOON_CENTERS[k] + 2.0 * _MOON_SIGNS[k] * arc for k in range(2)])
    weights = np.concatenate([0.5 * w / np.pi] * 2)
    return GaussianMixture(weights / weights.sum(), means, 0.2**2, schedule)


# -- swissroll ----------------------------------------------------------------------------
# make_swiss_roll(noise=1.0), coordinates (x, z), divided by 5: t ~ U[1.5 pi, 4.5 pi],
# x = (t cos t, t sin t) / 5 + N(0, 0.2^2 I).


def sample_swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) + rng.standard_normal((n, 2))
    return x / 5


def oracle_swissroll(schedule: Schedule | None, panels: int = 64, order: int = 12) -> GaussianMixture:
    t, w = _gauss_legendre(1.5 * np.pi, 4.5 * np.pi, panels, order)  # p(t) = 1/(3 pi)
    means = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / 5  # (J, 2)
    weights = w / (3 * np.pi)
    return GaussianMixture(weights / weights.sum(), means, 0.2**2, schedule)


# -- 2spirals -----------------------------------------------------------------------------
# n = sqrt(U) 3 pi (density 2n / (3 pi)^2 on [0, 3 pi]); d = (-n cos n, n sin n) + U[0, 0.5]^2;
# x = +-d / 3 + N(0, 0.1^2 I). The uniform offset is flipped with the spiral.


def sample_2spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    m = np.sqrt(rng.random(n)) * 540 * (2 * np.pi) / 360
    d = np.stack([-np.cos(m) * m, np.sin(m) * m], axis=1) + rng.random((n, 2)) * 0.5
    sign = np.where(rng.integers(0, 2, size=n) == 0, 1.0, -1.0)
    return sign[:, None] * d / 3 + rng.standard_normal((n, 2)) * 0.1


def oracle_2spirals(schedule: Schedule | None, panels: int = 96, order: int = 10) -> BoxMixture:
    m, w = _gauss_legendre(0.0, 3 * np.pi, panels, order)
    w = w * 2 * m / (3 * np.pi) ** 2  # times the density of n
    corner = np.stack([-np.cos(m) * m, np.sin(m) * m], axis=1) / 3  # (J, 2)
    side = 0.5 / 3
    lows = np.concatenate([corner, -corner - side])
    weights = np.concatenate([0.5 * w, 0.5 * w])
    return BoxMixture(weights / weights.sum(), lows, lows + side, 0.1, schedule)


# -- pinwheel -----------------------------------------------------------------------------
# f = (f0, f1) ~ N((1, 0), diag(0.3^2, 0.1^2)); arm k ~ U{0..4}; a = 2 pi k / 5 + 0.25 exp(f0);
# x = 2 (f0 cos a + f1 sin a, -f0 sin a + f1 cos a), i.e. f rotated by -a, times 2.

_PW_RADIAL, _PW_TANGENTIAL, _PW_ARMS, _PW_RATE = 0.3, 0.1, 5, 0.25
# F' = 1 + 0.25 s sin(psi) exp(s cos psi) > 0 for every psi while s < 1.69 (the minimum over
# psi crosses 0 near s = 1.697): there the preimage is unique and any grid brackets it.
_PW_MONOTONE_S, _PW_GRID_MONOTONE, _PW_GRID_FOLDED = 1.6, 8, 512
_PW_NEWTON_STEPS = 16


def sample_pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    rads = np.linspace(0, 2 * np.pi, _PW_ARMS, endpoint=False)
    features = rng.standard_normal((n, 2)) * np.array([_PW_RADIAL, _PW_TANGENTIAL])
    features[:, 0] += 1.0
    labels = rng.integers(0, _PW_ARMS, size=n)
    angles = rads[labels] + _PW_RATE * np.exp(features[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    return 2 * np.stack([features[:, 0] * c + features[:, 1] * s, -features[:, 0] * s + features[:, 1] * c], axis=1)


def _pw_phase(psi: np.ndarray, s: np.ndarray, offset: np.ndarray) -> np.ndarray:
    # F(psi) = psi - 0.25 exp(s cos psi) - offset; a preimage solves F = 0 mod 2 pi
    return psi - _PW_RATE * np.exp(s * np.cos(psi)) - offset


def _pw_roots(s: np.ndarray, phi: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""All preimage angles of points (s, phi), every arm: (point index, arm, psi) per root."""
    psi_grid = np.linspace(0.0, 2 * np.pi, grid + 1)  # (G+1,)
    rads = np.linspace(0, 2 * np.pi, _PW_ARMS, endpoint=False)
    points, arms, cells, targets = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
    step = max(1, (1 << 20) // (grid + 1))
    for start in range(0, s.size, step):  # chunks bound the (P, G+1) temporaries
        sl = slice(start, start + step)
        base = _pw_phase(psi_grid[None], s[sl, None], phi[sl, None])  # (P, G+1), arm 0
        for k in range(_PW_ARMS):
            level = np.floor((base - rads[k]) / (2 * np.pi))
            row, cell = np.nonzero(level[:, 1:] != level[:, :-1])  # one bracket per crossing
            points.append(start + row)
            arms.append(np.full(row.size, k))
            cells.append(cell)
            targets.append(2 * np.pi * np.maximum(level[row, cell], level[row, cell + 1]))  # the multiple crossed
    point, arm, cell = np.concatenate(points), np.concatenate(arms), np.concatenate(cells)
    lo, hi = psi_grid[cell], psi_grid[cell + 1]
    s_r, off_r = s[point], phi[point] + rads[arm] + np.concatenate(targets)
    rising = _pw_phase(lo, s_r, off_r) < 0.0  # F < 0 at lo: the bracket's sign pattern
    psi = 0.5 * (lo + hi)
    for _ in range(_PW_NEWTON_STEPS):  # Newton, safeguarded by bisection of the bracket
        e = _PW_RATE * np.exp(s_r * np.cos(psi))
        f = psi - e - off_r
        below = (f < 0.0) == rising
        lo, hi = np.where(below, psi, lo), np.where(below, hi, psi)
        newton = psi - f / (1.0 + s_r * np.sin(psi) * e)
        psi = np.where((newton >= lo) & (newton <= hi), newton, 0.5 * (lo + hi))
    return point, arm, psi


def pinwheel_log_prob(x: np.ndarray) -> np.ndarray:
    r"""Exact log-density of the pinwheel set by the change of variables.

    In polar coordinates :math:`x = \rho(\cos\varphi, \sin\varphi)` and
    :math:`f = s(\cos\psi, \sin\psi)`, the map of arm k is :math:`\rho = 2s`,
    :math:`\varphi = \psi - a_k(s\cos\psi)` with :math:`a_k(f_0) = 2\pi k/5 + 0.25 e^{f_0}`.
    Its Jacobian determinant is :math:`2F'(\psi)` with
    :math:`F'(\psi) = 1 + 0.25\,s\sin\psi\,e^{s\cos\psi}`, and the area elements are
    :math:`s\,ds\,d\psi` and :math:`\rho\,d\rho\,d\varphi`, so

    .. math::
        p(x) = \frac15\sum_k \sum_{\psi:\ F_k(\psi) \equiv 0 \ (2\pi)}
               \frac{p_f(s\cos\psi, s\sin\psi)}{4\,\lvert F'(\psi)\rvert},
        \qquad F_k(\psi) = \psi - a_k(s\cos\psi) - \varphi .

    Each crossing of a multiple of :math:`2\pi` by the unwrapped :math:`F_k` is bracketed on
    a grid of angles and refined by 16 Newton steps safeguarded by bisection (to rounding
    error: the test suite checks the residual). For
    :math:`s < 1.6`, :math:`F' > 0`: the preimage is unique and an 8-cell grid brackets it.
    Beyond, folds can create three preimages; a 512-cell grid then misses only two roots
    closer than 0.012 rad to each other (next to a fold). Folds need :math:`|f_1| > 1`,
    10 tangential stds, where the density is below 1e-21. Points beyond
    :math:`\lVert x\rVert \approx 1400` (where :math:`e^{s}` overflows) get ``-inf``.
    """
    B = x.shape[0]
    s = np.sqrt(np.sum(x * x, axis=1)) / 2  # (B,)
    phi = np.arctan2(x[:, 1], x[:, 0])
    points, psis = [], []
    with np.errstate(over="ignore", invalid="ignore"):
        for sel, grid in ((s < _PW_MONOTONE_S, _PW_GRID_MONOTONE), (s >= _PW_MONOTONE_S, _PW_GRID_FOLDED)):
            idx = np.flatnonzero(sel)
            point, _, psi = _pw_roots(s[idx], phi[idx], grid)
            points.append(idx[point])
            psis.append(psi)
        point, psi = np.concatenate(points), np.concatenate(psis)
        s_r = s[point]
        f0, f1 = s_r * np.cos(psi), s_r * np.sin(psi)
        dphase = 1.0 + _PW_RATE * s_r * np.sin(psi) * np.exp(f0)
        log_pf = (-0.5 * ((f0 - 1.0) / _PW_RADIAL) ** 2 - 0.5 * (f1 / _PW_TANGENTIAL) ** 2
                  - np.log(2 * np.pi * _PW_RADIAL * _PW_TANGENTIAL))
        log_term = log_pf - np.log(4.0 * np.abs(dphase)) - np.log(_PW_ARMS)  # (roots,)
        m = np.full(B, -np.inf)
        np.maximum.at(m, point, log_term)
        total = np.zeros(B)
        np.add.at(total, point, np.exp(log_term - m[point]))
        out = m + np.log(total)
    return np.where(np.isfinite(out), out, -np.inf)


def oracle_pinwheel(schedule: Schedule | None):
    raise NotImplementedError(
        "pinwheel has no closed-form noised marginal: its noise enters through a nonlinear map "
        "(a rotation by an angle that depends on the noise), so q_t is not a mixture of Gaussians; "
        "use pinwheel's log_prob at t = 0, or a trained denoiser"
    )
