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
  summed over all preimages, each bracketed on a monotone piece of the map and refined by
  safeguarded Newton (exact to rounding error, see :func:`pinwheel_log_prob`). No
  closed-form noised marginal.

**Labels.** Where the generator makes a discrete choice, that choice is the point's label and
``sample_NAME_labelled`` returns it beside the point, by exactly the draws of ``sample_NAME``
(which returns the points alone): 8gaussians the component (8 classes), checkerboard whether
the point is in the upper or the lower square of its column (2), rings and circles the ring
(4, 2), moons the moon (2), 2spirals the spiral (2), pinwheel the blade (5). The oracles carry
the same label on each of their components, so the class-conditional density
:math:`p(x \mid y)` is that label's share of the mixture. Swissroll has no discrete choice.
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


def sample_8gaussians_labelled(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    noise = rng.standard_normal((n, 2))
    y = rng.integers(0, 8, size=n)  # the component
    return (noise * 0.5 + _CENTERS_8G[y]) / 1.414, y


def oracle_8gaussians(schedule: Schedule | None) -> GaussianMixture:
    return GaussianMixture(np.full(8, 1 / 8), _CENTERS_8G / 1.414, (0.5 / 1.414) ** 2, schedule, labels=np.arange(8))


# -- checkerboard -------------------------------------------------------------------------
# x1 ~ U[-2, 2); x2 ~ U[0, 1) or U[-2, -1), shifted up by 1 where floor(x1) is odd; times 2:
# 8 squares of side 2, density 1/32 on each.


def sample_checkerboard_labelled(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x1 = rng.random(n) * 4 - 2
    u = rng.random(n)
    y = rng.integers(0, 2, size=n)  # 0: the upper square of the column, 1: the lower
    x2 = u - y * 2 + (np.floor(x1) % 2)
    return np.stack([x1, x2], axis=1) * 2, y


def _checkerboard_boxes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lows, labels = [], []
    for i in range(-2, 2):  # unit cells of x1 before the factor 2
        for label, j in enumerate((0, -2) if i % 2 == 0 else (1, -1)):
            lows.append((i, j))
            labels.append(label)
    lows = 2.0 * np.array(lows, dtype=np.float64)  # (8, 2)
    return lows, lows + 2.0, np.array(labels)


def oracle_checkerboard(schedule: Schedule | None) -> BoxMixture:
    lows, highs, labels = _checkerboard_boxes()
    return BoxMixture(np.full(8, 1 / 8), lows, highs, 0.0, schedule, labels=labels)


# -- rings and circles --------------------------------------------------------------------
# rings: radii 3 x (1, 3/4, 1/2, 1/4), noise 0.08. circles: make_circles(factor=.5, noise=.08)
# times 3, i.e. radii 3 and 1.5 with noise 0.24.

_RINGS_RADII = 3.0 * np.array([1.0, 0.75, 0.5, 0.25])
_CIRCLES_RADII = np.array([3.0, 1.5])


def _sample_rings(n: int, rng: np.random.Generator, radii: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    k = rng.integers(0, radii.size, size=n)  # the ring
    theta = rng.uniform(0.0, 2.0 * np.pi, size=n)
    x = radii[k, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return x + rng.normal(scale=noise, size=(n, 2)), k


def sample_rings_labelled(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _sample_rings(n, rng, _RINGS_RADII, 0.08)


def oracle_rings(schedule: Schedule | None) -> RingMixture:
    return RingMixture(np.full(4, 0.25), _RINGS_RADII, 0.08, schedule, labels=np.arange(4))


def sample_circles_labelled(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _sample_rings(n, rng, _CIRCLES_RADII, 0.24)


def oracle_circles(schedule: Schedule | None) -> RingMixture:
    return RingMixture(np.full(2, 0.5), _CIRCLES_RADII, 0.24, schedule, labels=np.arange(2))


# -- moons --------------------------------------------------------------------------------
# make_moons(noise=0.1) times 2 plus (-1, -0.2): an upper half circle of radius 2 about
# (-1, -0.2) and a lower one about (1, 0.8), theta ~ U[0, pi], noise 0.2.

_MOON_CENTERS = np.array([(-1.0, -0.2), (1.0, 0.8)])
_MOON_SIGNS = np.array([1.0, -1.0])


def sample_moons_labelled(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    k = rng.integers(0, 2, size=n)  # the moon
    theta = rng.uniform(0.0, np.pi, size=n)
    x = _MOON_CENTERS[k] + 2.0 * _MOON_SIGNS[k, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return x + rng.normal(scale=0.2, size=(n, 2)), k


def oracle_moons(schedule: Schedule | None, panels: int = 24, order: int = 12) -> GaussianMixture:
    theta, w = _gauss_legendre(0.0, np.pi, panels, order)  # p(theta) = 1/pi on [0, pi]
    arc = np.stack([np.cos(theta), np.sin(theta)], axis=1)  # (J, 2)
    means = np.concatenate([_MOON_CENTERS[k] + 2.0 * _MOON_SIGNS[k] * arc for k in range(2)])
    weights = np.concatenate([0.5 * w / np.pi] * 2)
    labels = np.repeat([0, 1], theta.size)
    return GaussianMixture(weights / weights.sum(), means, 0.2**2, schedule, labels=labels)


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


def sample_2spirals_labelled(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m = np.sqrt(rng.random(n)) * 540 * (2 * np.pi) / 360
    d = np.stack([-np.cos(m) * m, np.sin(m) * m], axis=1) + rng.random((n, 2)) * 0.5
    y = rng.integers(0, 2, size=n)  # the spiral: 0 as drawn, 1 flipped through the origin
    sign = np.where(y == 0, 1.0, -1.0)
    return sign[:, None] * d / 3 + rng.standard_normal((n, 2)) * 0.1, y


def oracle_2spirals(schedule: Schedule | None, panels: int = 96, order: int = 10) -> BoxMixture:
    m, w = _gauss_legendre(0.0, 3 * np.pi, panels, order)
    w = w * 2 * m / (3 * np.pi) ** 2  # times the density of n
    corner = np.stack([-np.cos(m) * m, np.sin(m) * m], axis=1) / 3  # (J, 2)
    side = 0.5 / 3
    lows = np.concatenate([corner, -corner - side])
    weights = np.concatenate([0.5 * w, 0.5 * w])
    labels = np.repeat([0, 1], m.size)
    return BoxMixture(weights / weights.sum(), lows, lows + side, 0.1, schedule, labels=labels)


# -- pinwheel -----------------------------------------------------------------------------
# f = (f0, f1) ~ N((1, 0), diag(0.3^2, 0.1^2)); arm k ~ U{0..4}; a = 2 pi k / 5 + 0.25 exp(f0);
# x = 2 (f0 cos a + f1 sin a, -f0 sin a + f1 cos a), i.e. f rotated by -a, times 2.

_PW_RADIAL, _PW_TANGENTIAL, _PW_ARMS, _PW_RATE = 0.3, 0.1, 5, 0.25
_PW_NEWTON_STEPS = 60  # safeguarded Newton: quadratic near the root, bisection otherwise


def sample_pinwheel_labelled(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    rads = np.linspace(0, 2 * np.pi, _PW_ARMS, endpoint=False)
    features = rng.standard_normal((n, 2)) * np.array([_PW_RADIAL, _PW_TANGENTIAL])
    features[:, 0] += 1.0
    labels = rng.integers(0, _PW_ARMS, size=n)  # the blade
    angles = rads[labels] + _PW_RATE * np.exp(features[:, 0])
    c, s = np.cos(angles), np.sin(angles)
    x = 2 * np.stack([features[:, 0] * c + features[:, 1] * s, -features[:, 0] * s + features[:, 1] * c], axis=1)
    return x, labels


def _pw_phase(psi: np.ndarray, s: np.ndarray, offset: np.ndarray) -> np.ndarray:
    # F(psi) = psi - 0.25 exp(s cos psi) - offset; a preimage solves F = 0 mod 2 pi
    return psi - _PW_RATE * np.exp(s * np.cos(psi)) - offset


def _pw_slope(psi: np.ndarray, s: np.ndarray) -> np.ndarray:
    # F'(psi) = 1 + 0.25 s sin(psi) exp(s cos psi)
    return 1.0 + _PW_RATE * s * np.sin(psi) * np.exp(s * np.cos(psi))


def _solve(lo, hi, s, offset, fun, slope, steps):
    r"""Vectorized root of fun in [lo, hi] (one sign change), Newton safeguarded by bisection.

    Rows leave the loop once a step moves them by less than 4 ulp.
    """
    rising = fun(lo, s, offset) < 0.0
    x = 0.5 * (lo + hi)
    active = np.arange(x.size)
    for _ in range(steps):
        xa, sa, oa = x[active], s[active], offset[active]
        f = fun(xa, sa, oa)
        below = (f < 0.0) == rising[active]
        lo[active] = np.where(below, xa, lo[active])
        hi[active] = np.where(below, hi[active], xa)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = xa - f / slope(xa, sa)
        x_new = np.where((newton >= lo[active]) & (newton <= hi[active]), newton, 0.5 * (lo[active] + hi[active]))
        x[active] = x_new
        active = active[np.abs(x_new - xa) > 4e-16 * np.maximum(1.0, np.abs(xa))]
        if active.size == 0:
            break
    return x


#: s = |x| / 2 beyond which log_prob is -inf: the preimages number ~ s e^s / 8 pi per arm (thousands per point at
#: s = 8, and they exhaust memory by s ~ 20), while |f| = s puts every root's f-density below e^{-270}
_PW_FAR = 8.0


def _pw_roots(s: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Every preimage angle of the points (s, phi) under every arm: (point index, arm, psi) per root.

    :math:`F'(\psi) = 1 + \tfrac{s}{4} h(\psi)` with :math:`h = \sin\psi\, e^{s\cos\psi}`, whose
    only critical points are :math:`\cos\psi = c(s) = (\sqrt{1 + 4s^2} - 1)/2s`: a maximum at
    :math:`\psi = \arccos c` and a minimum at :math:`2\pi - \arccos c`. If
    :math:`1 + \tfrac s4 h_{\min} \ge 0`, F increases by exactly :math:`2\pi` over a period and
    has one preimage. Otherwise F' has exactly one zero on each monotone branch of h (found
    by bisection), F is monotone on the two pieces between them, and each multiple of
    :math:`2\pi` that a piece's range covers gives one bracketed preimage.
    """
    rads = np.linspace(0, 2 * np.pi, _PW_ARMS, endpoint=False)
    B = s.size
    point = np.repeat(np.arange(B), _PW_ARMS)
    arm = np.tile(np.arange(_PW_ARMS), B)
    s_r, off = s[point], phi[point] + rads[arm]  # (R,) one row per (point, arm)
    safe_s = np.maximum(s_r, 1e-300)
    c = (np.sqrt(1.0 + 4.0 * s_r**2) - 1.0) / (2.0 * safe_s)
    a = np.arccos(np.clip(c, -1.0, 1.0))  # argmax of h
    folded = 1.0 + _PW_RATE * s_r * (-np.sqrt(1.0 - c**2) * np.exp(s_r * c)) < 0.0

    # unfolded rows: one root on [0, 2 pi], where F rises from F(0) to F(0) + 2 pi
    u = ~folded
    f0 = _pw_phase(np.zeros(u.sum()), s_r[u], off[u])
    lows, highs, rows, targets = [np.zeros(u.sum())], [np.full(u.sum(), 2 * np.pi)], [np.flatnonzero(u)], [
        2 * np.pi * (np.floor(f0 / (2 * np.pi)) + 1.0)]

    # folded rows: zeros of F' on each monotone branch of h, then the two monotone pieces of F
    f = np.flatnonzero(folded)
    if f.size:
        sf, of, af = s_r[f], off[f], a[f]
        slope_as_fun = lambda x, s_, o_: _pw_slope(x, s_)  # noqa: E731
        curvature = lambda x, s_: _PW_RATE * s_ * np.exp(s_ * np.cos(x)) * (np.cos(x) - s_ * np.sin(x) ** 2)  # noqa: E731
        z_down = _solve(af.copy(), 2 * np.pi - af, sf, of, slope_as_fun, curvature, _PW_NEWTON_STEPS)  # F' + -> -
        z_up = _solve(2 * np.pi - af, 2 * np.pi + af, sf, of, slope_as_fun, curvature, _PW_NEWTON_STEPS)  # - -> +
        F_down, F_up = _pw_phase(z_down, sf, of), _pw_phase(z_up, sf, of)
        two_pi = 2 * np.pi
        # decreasing piece [z_down, z_up]: multiples 2 pi m in [F_up, F_down)
        m_lo, m_hi = np.ceil(F_up / two_pi), np.ceil(F_down / two_pi) - 1
        # increasing piece [z_up, z_down + 2 pi]: multiples in (F_up, F_down + 2 pi]
        n_lo, n_hi = np.floor(F_up / two_pi) + 1, np.floor((F_down + two_pi) / two_pi)
        for start, stop, first, last in ((z_down, z_up, m_lo, m_hi), (z_up, z_down + two_pi, n_lo, n_hi)):
            count = np.maximum(last - first + 1, 0).astype(np.int64)
            idx = np.repeat(np.arange(f.size), count)
            rank = np.arange(idx.size) - np.repeat(np.cumsum(count) - count, count)
            lows.append(start[idx])
            highs.append(stop[idx])
            rows.append(f[idx])
            targets.append(two_pi * (first[idx] + rank))
    lo, hi, row, target = (np.concatenate(v) for v in (lows, highs, rows, targets))
    psi = _solve(lo.copy(), hi.copy(), s_r[row], off[row] + target, _pw_phase, _pw_slope, _PW_NEWTON_STEPS)
    return point[row], arm[row], psi


def pinwheel_log_prob(x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    r"""Exact log-density of the pinwheel set by the change of variables (of blade y_b, given labels y (B,)).

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

    The preimages are found exactly: F is split into its monotone pieces (between the zeros
    of F', see :func:`_pw_roots`), each multiple of :math:`2\pi` in a piece's range brackets
    one root, and safeguarded Newton refines it to rounding error (the tests check the
    residual and that every root maps back onto x). Folds (three or more preimages) need
    :math:`|f_1| > 4e^{-f_0}`, which keeps :math:`p_f` below :math:`e^{-17}` of its peak, but
    they are handled exactly all the same. Points beyond :math:`\lVert x\rVert = 16` (s > 8), where the
    preimages number thousands per point and grow as :math:`s e^{s}` while :math:`\lVert f\rVert = s` keeps
    :math:`p_f` below :math:`e^{-270}`, get ``-inf``.

    Given the blade, :math:`p(x \mid k)` keeps the roots of arm k alone, without the 1/5.
    """
    B = x.shape[0]
    s = np.hypot(x[:, 0], x[:, 1]) / 2  # (B,) hypot: no overflow of x * x beyond 1e154
    phi = np.arctan2(x[:, 1], x[:, 0])
    near = np.flatnonzero(s <= _PW_FAR)  # beyond, the roots are too many to enumerate and the density negligible
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        point, arm, psi = _pw_roots(s[near], phi[near])
        point = near[point]
        if y is not None:  # p(x | k) = 5 p(x, k): the roots of blade k only
            mine = arm == y[point]
            point, psi = point[mine], psi[mine]
        s_r = s[point]
        f0, f1 = s_r * np.cos(psi), s_r * np.sin(psi)
        dphase = 1.0 + _PW_RATE * s_r * np.sin(psi) * np.exp(f0)
        log_pf = (-0.5 * ((f0 - 1.0) / _PW_RADIAL) ** 2 - 0.5 * (f1 / _PW_TANGENTIAL) ** 2
                  - np.log(2 * np.pi * _PW_RADIAL * _PW_TANGENTIAL))
        log_term = log_pf - np.log(4.0 * np.abs(dphase)) - (np.log(_PW_ARMS) if y is None else 0.0)  # (roots,)
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
