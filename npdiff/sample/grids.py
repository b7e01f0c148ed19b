r"""Step-time grids: the times at which a fixed-step sampler calls the denoiser.

Every fixed-step sampler of npdiff (DDIM, Euler, Heun, EDM's Heun, DPM-Solver, DPM-Solver++,
UniPC) walks a decreasing grid :math:`t_{\max} = t_0 > t_1 > \dots > t_K = t_{\min}` of K steps,
and all of them take it from one of these small functions:

* ``"uniform"``: uniform in t (DDPM and DDIM's default respacing, Ho et al. 2020; Song, Meng &
  Ermon 2021);
* ``"log_snr"``: uniform in the log-SNR :math:`\lambda(t)`, the step size of the exponential
  integrators (Lu et al. 2022a, Sec. 3.4; their reference code's ``logSNR``, recommended there
  for low-dimensional data);
* ``"karras"``: Karras et al. 2022, Eq. 5 with :math:`\rho = 7`, uniform in
  :math:`\sigma^{1/\rho}` for EDM's noise level :math:`\sigma = \sqrt{(1-\bar\alpha)/\bar\alpha}`
  (the noise of :math:`x / \sqrt{\bar\alpha}`), so the steps crowd near the data;
* ``"quadratic"``: uniform in :math:`\sqrt t` (Song, Meng & Ermon 2021, Appendix D.2, the
  "quadratic" selection; DPM-Solver's ``time_quadratic``).

The grids defined by a noise level become times through the schedule's inverse log-SNR,
:func:`time_of_log_snr` (bisection: the log-SNR decreases strictly in t for every schedule).
:func:`noise_levels` gives the solvers :math:`\alpha = \sqrt{\bar\alpha}`, :math:`\sigma` and
``half_log_snr`` :math:`= \log(\alpha/\sigma) = \lambda/2` at every grid time, computed once per run.
Notation: :math:`\lambda` is npdiff's log-SNR :math:`\log(\bar\alpha/(1-\bar\alpha))` everywhere;
DPM-Solver's and EDM's ":math:`\lambda`" is half of it, ``half_log_snr``
(:mod:`npdiff.sample.exp_integrator`).

``steps`` of a grid builder is the number K of grid steps (K + 1 times); how many denoiser
evaluations a solver spends on them is the solver's business (:func:`npdiff.sample.fast_sample`).
"""

from __future__ import annotations

import numpy as np

from .._check import one_of, real_scalar
from .._validate import check_schedule
from ..schedule import Schedule
from ._checks import check_grid, check_grid_ends, check_log_snr

__all__ = [
    "GRIDS",
    "KARRAS_RHO",
    "check_grid",
    "karras_grid",
    "log_snr_grid",
    "noise_levels",
    "quadratic_grid",
    "time_grid",
    "time_of_log_snr",
    "uniform_grid",
]

#: names accepted by :func:`time_grid`
GRIDS = ("uniform", "log_snr", "karras", "quadratic")
#: Karras et al. 2022's rho (Eq. 5 and Table 1)
KARRAS_RHO = 7.0
# halvings of [0, t_max]: 2^-80 is below float64's resolution of any time the grids use (t >= 1e-12)
_BISECTIONS = 80


def time_of_log_snr(schedule: Schedule, log_snr: object) -> np.ndarray:
    r"""The time at which the schedule's log-SNR takes the given values: :math:`t = \lambda^{-1}(\text{log\_snr})`.

    Parameters
    ----------
    schedule : Schedule
        A continuous schedule; its log-SNR :math:`\lambda(t)` decreases strictly on [0, ``t_max``].
    log_snr : array of any shape
        Values of :math:`\lambda` in :math:`[\lambda(t_{\max}), \lambda(0)]`.

    Returns
    -------
    array of the shape of ``log_snr``
        Times in [0, ``t_max``], to float64 resolution (bisection).

    Examples
    --------
    >>> from npdiff.sample.grids import time_of_log_snr
    >>> from npdiff.schedule import vp_linear
    >>> s = vp_linear()
    >>> t = time_of_log_snr(s, [0.0, -5.0])
    >>> print(t.round(6), s.log_snr(t).round(9))
    [0.25896 0.70435] [ 0. -5.]
    """
    schedule, lam = check_log_snr(schedule, log_snr)
    return _time_of_log_snr(schedule, lam)


def _time_of_log_snr(schedule: Schedule, lam: np.ndarray) -> np.ndarray:
    lo, hi = np.zeros_like(lam), np.full_like(lam, schedule.t_max)  # brackets of t(lambda)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        early = schedule.log_snr(mid) > lam  # lambda(mid) still too high: t(lambda) lies later
        lo, hi = np.where(early, mid, lo), np.where(early, hi, mid)
    return 0.5 * (lo + hi)


def _pin(times: np.ndarray, t_min: float, t_max: float) -> np.ndarray:
    # the ends exactly, whatever the inversion's last bit
    times[0], times[-1] = t_max, t_min
    return times


def uniform_grid(schedule: Schedule, steps: int, t_min: float, t_max: float | None = None) -> np.ndarray:
    r"""K = ``steps`` steps uniform in t: :math:`t_i = t_{\max} + \tfrac iK (t_{\min} - t_{\max})`.

    Parameters
    ----------
    schedule : Schedule
        The continuous schedule of the denoiser.
    steps : int
        The number K of grid steps (the grid holds K + 1 times).
    t_min : float
        The last time, in (0, ``schedule.t_max``).
    t_max : float or None
        The first time, above ``t_min``; None for ``schedule.t_max``.

    Returns
    -------
    (K + 1,) array
        The times, strictly decreasing from ``t_max`` to ``t_min``.

    Examples
    --------
    >>> from npdiff.sample.grids import uniform_grid
    >>> from npdiff.schedule import vp_linear
    >>> uniform_grid(vp_linear(), 4, 0.2)
    array([1. , 0.8, 0.6, 0.4, 0.2])
    """
    schedule, steps, t_min, t_max = check_grid_ends(schedule, steps, t_min, t_max)
    return _pin(np.linspace(t_max, t_min, steps + 1), t_min, t_max)


def log_snr_grid(schedule: Schedule, steps: int, t_min: float, t_max: float | None = None) -> np.ndarray:
    r"""K = ``steps`` steps uniform in the log-SNR (Lu et al. 2022a, Sec. 3.4).

    .. math:: \lambda(t_i) = \lambda(t_{\max}) + \tfrac iK\big(\lambda(t_{\min}) - \lambda(t_{\max})\big)

    Parameters
    ----------
    schedule : Schedule
        The continuous schedule of the denoiser.
    steps : int
        The number K of grid steps (the grid holds K + 1 times).
    t_min : float
        The last time, in (0, ``schedule.t_max``).
    t_max : float or None
        The first time, above ``t_min``; None for ``schedule.t_max``.

    Returns
    -------
    (K + 1,) array
        The times, strictly decreasing from ``t_max`` to ``t_min``.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.sample.grids import log_snr_grid
    >>> from npdiff.schedule import vp_linear
    >>> s = vp_linear()
    >>> t = log_snr_grid(s, 4, 1e-3)
    >>> print(np.diff(s.log_snr(t)).round(6))
    [4.791347 4.791347 4.791347 4.791347]
    """
    schedule, steps, t_min, t_max = check_grid_ends(schedule, steps, t_min, t_max)
    lam = np.linspace(float(schedule.log_snr(t_max)), float(schedule.log_snr(t_min)), steps + 1)  # (K+1,)
    return _pin(_time_of_log_snr(schedule, lam), t_min, t_max)


def karras_grid(schedule: Schedule, steps: int, t_min: float, t_max: float | None = None, *,
                rho: float = KARRAS_RHO) -> np.ndarray:
    r"""K = ``steps`` steps uniform in :math:`\sigma^{1/\rho}` (Karras et al. 2022, Eq. 5).

    .. math::
        \sigma_i = \Big(\sigma_{\max}^{1/\rho} + \tfrac iK\big(\sigma_{\min}^{1/\rho} - \sigma_{\max}^{1/\rho}\big)\Big)^\rho,
        \qquad \sigma(t) = \sqrt{\frac{1-\bar\alpha(t)}{\bar\alpha(t)}} = e^{-\lambda(t)/2}

    with :math:`\sigma_{\max} = \sigma(t_{\max})`, :math:`\sigma_{\min} = \sigma(t_{\min})` and
    :math:`\lambda` the log-SNR. Eq. 5 appends :math:`\sigma_N = 0`; here the grid ends at ``t_min``
    like every other. ``rho`` (keyword, > 0) is Eq. 5's :math:`\rho`, :data:`KARRAS_RHO` by default.

    Parameters
    ----------
    schedule : Schedule
        The continuous schedule of the denoiser.
    steps : int
        The number K of grid steps (the grid holds K + 1 times).
    t_min : float
        The last time, in (0, ``schedule.t_max``).
    t_max : float or None
        The first time, above ``t_min``; None for ``schedule.t_max``.

    Returns
    -------
    (K + 1,) array
        The times, strictly decreasing from ``t_max`` to ``t_min``.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.sample.grids import karras_grid
    >>> from npdiff.schedule import vp_linear
    >>> s = vp_linear()
    >>> edm_sigma = np.exp(-0.5 * s.log_snr(karras_grid(s, 4, 1e-3)))
    >>> print(np.diff(edm_sigma ** (1 / 7)).round(6))
    [-0.38214 -0.38214 -0.38214 -0.38214]
    """
    schedule, steps, t_min, t_max = check_grid_ends(schedule, steps, t_min, t_max)
    rho = real_scalar(rho, "rho", lo=0.0, lo_open=True)
    # sigma^(1/rho) = exp(-lambda / (2 rho)) through the log-SNR lambda: no sigma is formed, so none overflows
    u = np.linspace(np.exp(-float(schedule.log_snr(t_max)) / (2 * rho)), np.exp(-float(schedule.log_snr(t_min)) / (2 * rho)),
                    steps + 1)  # (K+1,) sigma_i^(1/rho)
    return _pin(_time_of_log_snr(schedule, -2.0 * rho * np.log(u)), t_min, t_max)


def quadratic_grid(schedule: Schedule, steps: int, t_min: float, t_max: float | None = None) -> np.ndarray:
    r"""K = ``steps`` steps uniform in :math:`\sqrt t` (Song, Meng & Ermon 2021, Appendix D.2).

    .. math:: t_i = \Big(\sqrt{t_{\max}} + \tfrac iK\big(\sqrt{t_{\min}} - \sqrt{t_{\max}}\big)\Big)^2

    Parameters
    ----------
    schedule : Schedule
        The continuous schedule of the denoiser.
    steps : int
        The number K of grid steps (the grid holds K + 1 times).
    t_min : float
        The last time, in (0, ``schedule.t_max``).
    t_max : float or None
        The first time, above ``t_min``; None for ``schedule.t_max``.

    Returns
    -------
    (K + 1,) array
        The times, strictly decreasing from ``t_max`` to ``t_min``.

    Examples
    --------
    >>> from npdiff.sample.grids import quadratic_grid
    >>> from npdiff.schedule import vp_linear
    >>> quadratic_grid(vp_linear(), 2, 0.25)
    array([1.    , 0.5625, 0.25  ])
    """
    schedule, steps, t_min, t_max = check_grid_ends(schedule, steps, t_min, t_max)
    return _pin(np.linspace(np.sqrt(t_max), np.sqrt(t_min), steps + 1) ** 2, t_min, t_max)


_BUILDERS = {"uniform": uniform_grid, "log_snr": log_snr_grid, "karras": karras_grid, "quadratic": quadratic_grid}


def time_grid(schedule: Schedule, steps: int, grid: str, t_min: float, t_max: float | None = None) -> np.ndarray:
    r"""The grid named ``grid``: K = ``steps`` steps from ``t_max`` down to ``t_min``.

    Parameters
    ----------
    schedule : Schedule
        The continuous schedule of the denoiser.
    steps : int
        The number K of grid steps (the grid holds K + 1 times).
    grid : str
        One of :data:`GRIDS`.
    t_min : float
        The last time, in (0, ``schedule.t_max``).
    t_max : float or None
        The first time, above ``t_min``; None for ``schedule.t_max``.

    Returns
    -------
    (K + 1,) array
        The times, strictly decreasing from ``t_max`` to ``t_min``.

    Examples
    --------
    >>> from npdiff.sample.grids import time_grid
    >>> from npdiff.schedule import vp_linear
    >>> time_grid(vp_linear(), 4, "uniform", 0.2)
    array([1. , 0.8, 0.6, 0.4, 0.2])
    >>> time_grid(vp_linear(), 3, "log_snr", 1e-3).round(4)
    array([1.    , 0.6037, 0.0749, 0.001 ])
    """
    return _BUILDERS[one_of(grid, "grid", GRIDS)](schedule, steps, t_min, t_max)


def noise_levels(schedule: Schedule, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The exponential integrators' noise levels at each time.

    :math:`\alpha = \sqrt{\bar\alpha(t)}`, :math:`\sigma = \sqrt{1 - \bar\alpha(t)}` and
    ``half_log_snr`` :math:`= \log(\alpha/\sigma) = \lambda(t)/2`, HALF npdiff's log-SNR
    :math:`\lambda = \log(\bar\alpha/(1-\bar\alpha))`: the variable DPM-Solver calls :math:`\lambda`
    (Lu et al. 2022a, Sec. 3.1), in which the solvers' steps :math:`h` are measured.

    Parameters
    ----------
    schedule : Schedule
        The continuous schedule of the denoiser.
    times : array of any shape
        Times in [0, 1] (a grid (K + 1,)); they are checked by the schedule's own methods.

    Returns
    -------
    alpha : array of the shape of ``times``
        :math:`\sqrt{\bar\alpha}`.
    sigma : array of the shape of ``times``
        :math:`\sqrt{1-\bar\alpha}`.
    half_log_snr : array of the shape of ``times``
        :math:`\log(\alpha/\sigma)` (``+inf`` at t = 0).

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.sample.grids import noise_levels
    >>> from npdiff.schedule import vp_linear
    >>> alpha, sigma, half_log_snr = noise_levels(vp_linear(), np.array([0.5]))
    >>> print(np.round(alpha**2 + sigma**2, 12), np.round(half_log_snr - np.log(alpha / sigma), 12))
    [1.] [0.]
    """
    schedule = check_schedule(schedule)
    alpha = np.exp(0.5 * schedule.log_alpha_bar(times))  # (K+1,)
    return alpha, schedule.sigma(times), 0.5 * schedule.log_snr(times)
