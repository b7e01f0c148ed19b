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
DPM-Solver's :math:`\lambda = \log(\alpha/\sigma)` (half npdiff's log-SNR) at every grid time,
computed once per run.
"""

from __future__ import annotations

import numpy as np

from .._check import as_float_array, flow_time, one_of, positive_int, real_scalar
from .._validate import check_schedule
from ..schedule import Schedule

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
    schedule : a continuous schedule; its log-SNR decreases strictly on [0, ``t_max``].
    log_snr : values (any shape) in :math:`[\lambda(t_{\max}), \lambda(0)]`.

    Returns
    -------
    Times of the same shape, in [0, ``t_max``], to float64 resolution (bisection).
    """
    schedule = check_schedule(schedule)
    lam = as_float_array(log_snr, "log_snr")
    lo, hi = float(schedule.log_snr(schedule.t_max)), float(schedule.log_snr(0.0))
    if lam.size and (lam.min() < lo or lam.max() > hi):
        raise ValueError(f"log_snr must lie in [log_snr(t_max), log_snr(0)] = [{lo:.6g}, {hi:.6g}] of {schedule!r}, "
                         f"got values in [{lam.min():.6g}, {lam.max():.6g}]")
    return _time_of_log_snr(schedule, lam)


def _time_of_log_snr(schedule: Schedule, lam: np.ndarray) -> np.ndarray:
    lo, hi = np.zeros_like(lam), np.full_like(lam, schedule.t_max)  # brackets of t(lambda)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        early = schedule.log_snr(mid) > lam  # lambda(mid) still too high: t(lambda) lies later
        lo, hi = np.where(early, mid, lo), np.where(early, hi, mid)
    return 0.5 * (lo + hi)


def _ends(schedule: object, steps: object, t_min: object, t_max: object) -> tuple[Schedule, int, float, float]:
    schedule = check_schedule(schedule)
    steps = positive_int(steps, "steps")
    t_max = schedule.t_max if t_max is None else real_scalar(t_max, "t_max", lo=0.0, hi=schedule.t_max, lo_open=True)
    t_min = flow_time(schedule, t_min, "t_min", hi_open=True)
    if not t_min < t_max:
        raise ValueError(f"t_min must be below t_max, got t_min={t_min} and t_max={t_max}")
    return schedule, steps, t_min, float(t_max)


def _pin(times: np.ndarray, t_min: float, t_max: float) -> np.ndarray:
    # the ends exactly, whatever the inversion's last bit
    times[0], times[-1] = t_max, t_min
    return times


def uniform_grid(schedule: Schedule, steps: int, t_min: float, t_max: float | None = None) -> np.ndarray:
    r"""K = ``steps`` steps uniform in t: :math:`t_i = t_{\max} + \tfrac iK (t_{\min} - t_{\max})`, shape (K + 1,)."""
    schedule, steps, t_min, t_max = _ends(schedule, steps, t_min, t_max)
    return _pin(np.linspace(t_max, t_min, steps + 1), t_min, t_max)


def log_snr_grid(schedule: Schedule, steps: int, t_min: float, t_max: float | None = None) -> np.ndarray:
    r"""K steps uniform in log-SNR (Lu et al. 2022a, Sec. 3.4), shape (K + 1,).

    .. math:: \lambda(t_i) = \lambda(t_{\max}) + \tfrac iK\big(\lambda(t_{\min}) - \lambda(t_{\max})\big)
    """
    schedule, steps, t_min, t_max = _ends(schedule, steps, t_min, t_max)
    lam = np.linspace(float(schedule.log_snr(t_max)), float(schedule.log_snr(t_min)), steps + 1)  # (K+1,)
    return _pin(_time_of_log_snr(schedule, lam), t_min, t_max)


def karras_grid(schedule: Schedule, steps: int, t_min: float, t_max: float | None = None, *,
                rho: float = KARRAS_RHO) -> np.ndarray:
    r"""K steps uniform in :math:`\sigma^{1/\rho}` (Karras et al. 2022, Eq. 5), shape (K + 1,).

    .. math::
        \sigma_i = \Big(\sigma_{\max}^{1/\rho} + \tfrac iK\big(\sigma_{\min}^{1/\rho} - \sigma_{\max}^{1/\rho}\big)\Big)^\rho,
        \qquad \sigma(t) = \sqrt{\frac{1-\bar\alpha(t)}{\bar\alpha(t)}} = e^{-\lambda(t)/2}

    with :math:`\sigma_{\max} = \sigma(t_{\max})`, :math:`\sigma_{\min} = \sigma(t_{\min})`. Eq. 5 appends
    :math:`\sigma_N = 0`; here the grid ends at ``t_min`` like every other.
    """
    schedule, steps, t_min, t_max = _ends(schedule, steps, t_min, t_max)
    rho = real_scalar(rho, "rho", lo=0.0, lo_open=True)
    # sigma^(1/rho) = exp(-lambda / (2 rho)) through the log-SNR lambda: no sigma is formed, so none overflows
    u = np.linspace(np.exp(-float(schedule.log_snr(t_max)) / (2 * rho)), np.exp(-float(schedule.log_snr(t_min)) / (2 * rho)),
                    steps + 1)  # (K+1,) sigma_i^(1/rho)
    return _pin(_time_of_log_snr(schedule, -2.0 * rho * np.log(u)), t_min, t_max)


def quadratic_grid(schedule: Schedule, steps: int, t_min: float, t_max: float | None = None) -> np.ndarray:
    r"""K steps uniform in :math:`\sqrt t` (Song, Meng & Ermon 2021, Appendix D.2), shape (K + 1,).

    .. math:: t_i = \Big(\sqrt{t_{\max}} + \tfrac iK\big(\sqrt{t_{\min}} - \sqrt{t_{\max}}\big)\Big)^2
    """
    schedule, steps, t_min, t_max = _ends(schedule, steps, t_min, t_max)
    return _pin(np.linspace(np.sqrt(t_max), np.sqrt(t_min), steps + 1) ** 2, t_min, t_max)


_BUILDERS = {"uniform": uniform_grid, "log_snr": log_snr_grid, "karras": karras_grid, "quadratic": quadratic_grid}


def time_grid(schedule: Schedule, steps: int, grid: str, t_min: float, t_max: float | None = None) -> np.ndarray:
    r"""The grid named ``grid`` (one of :data:`GRIDS`): K = ``steps`` steps from ``t_max`` (default
    ``schedule.t_max``) down to ``t_min``, shape (K + 1,), strictly decreasing."""
    return _BUILDERS[one_of(grid, "grid", GRIDS)](schedule, steps, t_min, t_max)


def check_grid(schedule: Schedule, times: object, name: str = "times", *, min_steps: int = 1) -> np.ndarray:
    r"""Check a caller's own grid: a 1-D array of at least ``min_steps + 1`` times, strictly decreasing,
    in (0, ``schedule.t_max``] with :math:`\sigma > 0` at the last; return it as float64."""
    schedule = check_schedule(schedule)
    t = as_float_array(times, name)
    if t.ndim != 1 or t.size < min_steps + 1:
        raise ValueError(f"{name} must be a 1-D array of at least {min_steps + 1} times (for {min_steps} step(s)), "
                         f"got shape {t.shape}")
    if np.any(np.diff(t) >= 0.0):
        raise ValueError(f"{name} must decrease strictly (from noise to data), got {t}")
    flow_time(schedule, t[0], f"{name}[0]")
    flow_time(schedule, t[-1], f"{name}[-1]")
    return t


def noise_levels(schedule: Schedule, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r""":math:`\alpha = \sqrt{\bar\alpha(t)}`, :math:`\sigma(t)` and :math:`\lambda = \log(\alpha/\sigma)` at each time.

    :math:`\lambda` is DPM-Solver's (Lu et al. 2022a, Sec. 3.1): half of npdiff's log-SNR
    :math:`\log(\bar\alpha / (1-\bar\alpha))`. ``times`` in [0, 1], any shape (a grid (K + 1,)); returns
    three arrays of that shape.
    """
    schedule = check_schedule(schedule)  # the times are checked by the schedule's own methods
    alpha = np.exp(0.5 * schedule.log_alpha_bar(times))  # (K+1,)
    return alpha, schedule.sigma(times), 0.5 * schedule.log_snr(times)
