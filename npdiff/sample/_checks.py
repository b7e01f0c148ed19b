r"""The samplers' checks, in one place: what each public sampler of :mod:`npdiff.sample` inspects at its door.

A validation module. A public sampler checks its arguments once, through these helpers, and then runs
its loop unchecked; inside the loop only what is new at every evaluation is checked: the denoiser's answer
(shape and finiteness, :func:`npdiff.denoiser.call_eps`) and the state it leads to (:func:`check_finite`).
"""

from __future__ import annotations

import numpy as np

from .._check import as_batch, as_float_array, as_generator, as_integers, flow_time, positive_int, real_scalar
from .._validate import check_schedule
from ..denoiser import Denoiser, check_denoiser
from ..schedule import Schedule

__all__ = ["check_cost", "check_dim", "check_finite", "check_flag", "check_grid", "check_grid_ends", "check_log_snr",
           "check_orders", "check_search", "start"]


def start(denoiser: object, n: object, rng: object, x_T: object | None) -> tuple[Denoiser, np.ndarray, np.random.Generator]:
    r"""Check the common arguments and return the starting noise :math:`x_T \sim \mathcal N(0, I)`, (N, D).

    ``x_T`` given explicitly (N, D) overrides ``n`` (then ``n`` may be None).
    """
    check_denoiser(denoiser)
    rng = as_generator(rng)
    dim = getattr(denoiser, "dim", None)
    if x_T is not None:
        x = as_batch(x_T, "x_T", dim=dim).copy()
        if n is not None and positive_int(n, "n") != x.shape[0]:
            raise ValueError(f"n must equal x_T.shape[0] when both are given, got n={n} and x_T of shape {x.shape}")
        return denoiser, x, rng  # type: ignore[return-value]
    n = positive_int(n, "n")
    if dim is None:
        raise ValueError("the denoiser has no .dim: pass the starting noise x_T of shape (n, D) explicitly")
    return denoiser, rng.standard_normal((n, int(dim))), rng  # type: ignore[return-value]


def check_finite(x: np.ndarray, where: str) -> np.ndarray:
    r"""Stop a run as soon as a state stops being finite, instead of returning garbage."""
    if not np.all(np.isfinite(x)):
        raise FloatingPointError(f"the sampler produced NaN or Inf values {where}; the denoiser or step size is unstable")
    return x


def check_flag(value: object, name: str) -> bool:
    r"""A bool (or NumPy bool) argument, as a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def check_grid_ends(schedule: object, steps: object, t_min: object, t_max: object) -> tuple[Schedule, int, float, float]:
    r"""The arguments of a grid builder: K = ``steps`` grid steps from ``t_max`` (None: ``schedule.t_max``) to ``t_min``."""
    schedule = check_schedule(schedule)
    steps = positive_int(steps, "steps")
    t_max = schedule.t_max if t_max is None else real_scalar(t_max, "t_max", lo=0.0, hi=schedule.t_max, lo_open=True)
    t_min = flow_time(schedule, t_min, "t_min", hi_open=True)
    if not t_min < t_max:
        raise ValueError(f"t_min must be below t_max, got t_min={t_min} and t_max={t_max}")
    return schedule, steps, t_min, float(t_max)


def check_log_snr(schedule: object, log_snr: object) -> tuple[Schedule, np.ndarray]:
    r"""Log-SNR values (any shape) that the schedule takes on [0, ``t_max``], as float64."""
    schedule = check_schedule(schedule)
    lam = as_float_array(log_snr, "log_snr")
    lo, hi = float(schedule.log_snr(schedule.t_max)), float(schedule.log_snr(0.0))
    if lam.size and (lam.min() < lo or lam.max() > hi):
        raise ValueError(f"log_snr must lie in [log_snr(t_max), log_snr(0)] = [{lo:.6g}, {hi:.6g}] of {schedule!r}, "
                         f"got values in [{lam.min():.6g}, {lam.max():.6g}]")
    return schedule, lam


def check_grid(schedule: Schedule, times: object, name: str = "times", *, min_steps: int = 1) -> np.ndarray:
    r"""Check a caller's own grid: a 1-D array of at least ``min_steps + 1`` times, strictly decreasing,
    in (0, ``schedule.t_max``] with :math:`\sigma > 0` at the last; return it as float64.

    Parameters
    ----------
    schedule : Schedule
        The schedule the grid's times belong to.
    times : (K + 1,) array
        The grid, from noise (``times[0]``) to data (``times[-1]``).
    name : str
        The argument's name in the error messages.
    min_steps : int
        The fewest steps K the caller can run on.

    Returns
    -------
    (K + 1,) float64 array
        The grid.

    Examples
    --------
    >>> from npdiff.sample.grids import check_grid
    >>> from npdiff.schedule import vp_linear
    >>> check_grid(vp_linear(), [1.0, 0.5, 0.001])
    array([1.   , 0.5  , 0.001])
    >>> check_grid(vp_linear(), [0.5, 1.0])
    Traceback (most recent call last):
    ...
    ValueError: times must decrease strictly (from noise to data), got [0.5 1. ]
    """
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


def check_orders(orders: object, steps: int) -> list[int]:
    r"""One order in 1..3 per step of a singlestep solver's grid of ``steps`` steps, as a list of ints."""
    orders = as_integers(orders, "orders", lo=1, hi=3)
    if orders.shape != (steps,):
        raise ValueError(f"orders must hold one order per step, shape ({steps},) for {steps + 1} times, "
                         f"got shape {orders.shape}")
    return [int(k) for k in orders]


def check_dim(denoiser: Denoiser, what: str) -> int:
    r"""The dimension D of a denoiser that must draw its own starting points from N(0, I)."""
    dim = getattr(denoiser, "dim", None)
    if dim is None:
        raise ValueError(f"the denoiser has no .dim: {what} draws its starting points from N(0, I) in D dimensions")
    return int(dim)


def check_search(denoiser: object, log_q: object, rng: object, n_fit: object, n_check: object, t_min: object,
                 max_evaluations: object) -> tuple[Denoiser, np.random.Generator, int, int, float, int]:
    r"""The arguments of :func:`npdiff.sample.step_search.optimize_steps` beside the sampler and its budget."""
    check_denoiser(denoiser)
    if not callable(log_q):
        raise TypeError(f"log_q must be callable (N, D) -> (N,), got {type(log_q).__name__}")
    return (denoiser, as_generator(rng), positive_int(n_fit, "n_fit", minimum=2),  # type: ignore[return-value]
            positive_int(n_check, "n_check", minimum=2), flow_time(denoiser.schedule, t_min, "t_min", hi_open=True),
            positive_int(max_evaluations, "max_evaluations"))


def check_cost(cost: object) -> np.ndarray:
    r"""A square (N + 1, N + 1) cost matrix of the edges i -> j, read above its diagonal only (below: ``inf``)."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] < 2:
        raise ValueError(f"cost must be a square (N + 1, N + 1) array with N >= 1, got shape {c.shape}")
    forward = np.triu(np.ones_like(c, dtype=bool), k=1)  # (N+1, N+1) the edges i < j
    if np.any(np.isnan(c[forward])):
        raise ValueError("cost must not hold NaN above its diagonal (the edges i < j)")
    return np.where(forward, c, np.inf)
