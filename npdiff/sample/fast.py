r"""Few-step deterministic samplers behind one door: a sampler's name, a budget of evaluations, a grid.

Every sampler here solves the probability-flow ODE (Song et al. 2021, Eq. 13) from
``schedule.t_max`` down to ``t_min`` on a grid of :mod:`npdiff.sample.grids`, spending at most
``nfe`` denoiser evaluations, so the sample is a deterministic map of the starting noise
(:mod:`npdiff.likelihood.sampler_density` gives the exact density of its samples):

==========  =====  ==================================================================  ========
name        order  method                                                              grid
==========  =====  ==================================================================  ========
ddim        1      DDIM, eta = 0 (Song, Meng & Ermon 2021, Eq. 12) = DPM-Solver-1       log_snr
euler       1      Euler in t on the flow's velocity (:mod:`npdiff.sample.ode`)         log_snr
heun        2      Heun in t (:mod:`npdiff.sample.ode`), nfe // 2 steps                 log_snr
edm         2      Heun in EDM's noise level (Karras et al. 2022, Algorithm 1)          karras
dpm2        2      singlestep DPM-Solver-2, DPM-Solver-fast orders (Lu et al. 2022a)   log_snr
dpm3        3      singlestep DPM-Solver-3, DPM-Solver-fast orders (Lu et al. 2022a)   log_snr
dpmpp2m     2      multistep DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2)            log_snr
dpmpp3m     3      multistep DPM-Solver++(3M) (Lu et al. 2022b; reference code)        log_snr
unipc       3      UniP-2 + UniC, B(h) = e^{-h} - 1 (Zhao et al. 2023)                  log_snr
==========  =====  ==================================================================  ========

Each spends exactly ``nfe`` evaluations except heun on an odd budget (one fewer); edm spends an
odd budget as Algorithm 1 does, with an Euler last step; dpm2 and dpm3 mix orders to fit the
budget (:func:`~npdiff.sample.dpm_solver.singlestep_orders`; the layout on each grid:
:mod:`npdiff.sample.dpm_solver`). The order is the method's order of
convergence as the steps shrink (DPM-Solver-fast's lower-order last steps make dpm3 second
order on budgets that need a first-order step).

:func:`fast_sample` checks its arguments, builds the grid and calls the public solver (each checks its
own arguments again: the denoiser, the (N, D) states and the grid, which costs O(N D + K), nothing
beside the K evaluations of the denoiser).
"""

from __future__ import annotations

import numpy as np

from .._check import flow_time, one_of, positive_int
from .._progress import progress as bar
from ..denoiser import Denoiser
from ..threads import blas_threads
from ._checks import check_flag, check_grid, start
from ._common import Recorder, SampleResult, tweedie
from .dpm_solver import dpm_solver_singlestep, dpmpp_multistep, singlestep_orders
from .edm import edm_heun
from .grids import GRIDS, time_grid
from .ode import ode_sample, solve_flow
from .unipc import unipc

__all__ = ["DEFAULT_GRIDS", "FAST_SAMPLERS", "MIN_NFE", "ORDERS", "check_budget", "check_step_times", "fast_sample",
           "grid_steps"]

FAST_SAMPLERS = ("ddim", "euler", "heun", "edm", "dpm2", "dpm3", "dpmpp2m", "dpmpp3m", "unipc")
#: each sampler's order of convergence
ORDERS = {"ddim": 1, "euler": 1, "heun": 2, "edm": 2, "dpm2": 2, "dpm3": 3, "dpmpp2m": 2, "dpmpp3m": 3, "unipc": 3}
#: the fewest evaluations each can run on at its order (one step of a singlestep method; the order's warm-up of a multistep)
MIN_NFE = {"ddim": 1, "euler": 1, "heun": 2, "edm": 2, "dpm2": 2, "dpm3": 3, "dpmpp2m": 2, "dpmpp3m": 3, "unipc": 2}
#: the grid each uses unless told: EDM's own noise levels, else uniform log-SNR (DPM-Solver's advice for low dimension)
DEFAULT_GRIDS = {name: ("karras" if name == "edm" else "log_snr") for name in FAST_SAMPLERS}
#: the multistep order of the samplers that are DPM-Solver++ (ddim is its first order, written with x_theta)
_MULTISTEP_ORDERS = {"ddim": 1, "dpmpp2m": 2, "dpmpp3m": 3}


def check_budget(sampler: object, nfe: object) -> tuple[str, int]:
    r"""A sampler's name and a budget of evaluations it can run on (at least its :data:`MIN_NFE`).

    Parameters
    ----------
    sampler : str
        One of :data:`FAST_SAMPLERS`.
    nfe : int
        The budget of denoiser evaluations.

    Returns
    -------
    sampler : str
        The name.
    nfe : int
        The budget.

    Examples
    --------
    >>> from npdiff.sample.fast import check_budget
    >>> check_budget("dpmpp3m", 3)
    ('dpmpp3m', 3)
    >>> check_budget("dpmpp3m", 2)
    Traceback (most recent call last):
    ...
    ValueError: nfe must be an integer >= 3, got 2
    """
    sampler = one_of(sampler, "sampler", FAST_SAMPLERS)
    return sampler, positive_int(nfe, "nfe", minimum=MIN_NFE[sampler])


def grid_steps(sampler: str, nfe: int) -> int:
    r"""The number K of grid steps the sampler takes on a budget of ``nfe`` evaluations (module table).

    Parameters
    ----------
    sampler : str
        One of :data:`FAST_SAMPLERS`.
    nfe : int
        The budget of denoiser evaluations, at least :data:`MIN_NFE` of the sampler.

    Returns
    -------
    int
        K: a grid for the sampler holds K + 1 times.

    Examples
    --------
    >>> from npdiff.sample.fast import grid_steps
    >>> grid_steps("dpmpp2m", 10), grid_steps("heun", 10), grid_steps("edm", 9)
    (10, 5, 5)
    """
    return _grid_steps(*check_budget(sampler, nfe))


def _grid_steps(sampler: str, nfe: int) -> int:
    if sampler == "heun":
        return nfe // 2
    if sampler == "edm":
        return (nfe + 1) // 2
    if sampler in ("dpm2", "dpm3"):
        return len(singlestep_orders(nfe, ORDERS[sampler]))
    return nfe


def check_step_times(schedule: object, times: object, sampler: str, nfe: int, t_min: float) -> np.ndarray:
    r"""A caller's step times for ``sampler`` on a budget of ``nfe``: strictly decreasing from ``schedule.t_max``
    to ``t_min``, with :func:`grid_steps` + 1 entries; returned as float64.

    Parameters
    ----------
    schedule : Schedule
        The denoiser's schedule.
    times : (K + 1,) array
        The step times, from noise (``times[0] = schedule.t_max``) to data (``times[-1] = t_min``).
    sampler : str
        One of :data:`FAST_SAMPLERS` (already checked).
    nfe : int
        The budget of evaluations (already checked).
    t_min : float
        Where the flow stops (already checked).

    Returns
    -------
    (K + 1,) float64 array
        The times.

    Examples
    --------
    >>> from npdiff.sample.fast import check_step_times
    >>> from npdiff.schedule import vp_linear
    >>> check_step_times(vp_linear(), [1.0, 0.3, 0.001], "dpmpp2m", 2, 1e-3)
    array([1.   , 0.3  , 0.001])
    >>> check_step_times(vp_linear(), [1.0, 0.3, 0.001], "dpmpp2m", 3, 1e-3)
    Traceback (most recent call last):
    ...
    ValueError: times must hold 4 times (3 steps of dpmpp2m on a budget of nfe=3), got 3 times
    """
    K = _grid_steps(sampler, nfe)
    t = check_grid(schedule, times, "times")
    if t.size != K + 1:
        raise ValueError(f"times must hold {K + 1} times ({K} steps of {sampler} on a budget of nfe={nfe}), "
                         f"got {t.size} times")
    # the ends to a few ulps: a step file written as text and read back keeps them to ~1e-16 relative
    if not np.isclose(t[0], schedule.t_max, rtol=1e-12, atol=0.0):
        raise ValueError(f"times[0] must be schedule.t_max = {schedule.t_max!r} (the flow starts there), got {t[0]!r}")
    if not np.isclose(t[-1], t_min, rtol=1e-12, atol=0.0):
        raise ValueError(f"times[-1] must be t_min = {t_min!r} (pass t_min=times[-1] to stop elsewhere), got {t[-1]!r}")
    t[0], t[-1] = schedule.t_max, t_min
    return t


def _flow_steps(denoiser: Denoiser, x: np.ndarray, times: np.ndarray, method: str, record: bool,
                progress: bool) -> SampleResult:
    r"""Euler or Heun in t through the given times: one :func:`~npdiff.sample.ode.solve_flow` step per interval."""
    rec = Recorder(record)
    rec(x, times[0])
    nfe = 0
    for k in bar(range(times.size - 1), total=times.size - 1, desc=f"ode-{method}", enabled=progress):
        res = solve_flow(denoiser, x, float(times[k]), float(times[k + 1]), method=method, steps=1)
        x, nfe = res.x, nfe + res.nfe
        rec(x, times[k + 1])
    return rec.result(x, nfe)


@blas_threads()
def fast_sample(
    denoiser: Denoiser,
    n: int | None,
    rng: np.random.Generator | int,
    *,
    sampler: str = "dpmpp2m",
    nfe: int = 20,
    grid: str | None = None,
    times: np.ndarray | None = None,
    t_min: float = 1e-3,
    denoise: bool = True,
    x_T: np.ndarray | None = None,
    record: bool = False,
    progress: bool = False,
) -> SampleResult:
    r"""Sample with a few-step deterministic solver of the probability-flow ODE (module table).

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` gives the grid and the ODE.
    n : int or None
        The number of samples N (None when ``x_T`` is given).
    rng : np.random.Generator or int
        Draws the starting noise (the solvers themselves are deterministic).
    sampler : str
        One of :data:`FAST_SAMPLERS`.
    nfe : int
        The budget of denoiser evaluations of the solver, at least :data:`MIN_NFE` of the sampler
        (the grid steps it buys depend on the sampler: module table).
    grid : str or None
        One of :data:`~npdiff.sample.grids.GRIDS`, or None for the sampler's :data:`DEFAULT_GRIDS`.
    times : (K + 1,) array or None
        Explicit step times instead of a named grid (e.g. :func:`npdiff.sample.step_search.optimize_steps`),
        strictly decreasing from ``schedule.t_max`` to ``t_min``, with K = :func:`grid_steps` (sampler,
        ``nfe``); not with ``grid``.
    t_min : float
        Where the flow stops, in (0, ``schedule.t_max``).
    denoise : bool
        Return Tweedie's :math:`\hat x_0` at ``t_min`` (one more evaluation, as
        :func:`~npdiff.sample.ode_sample` does), else the ODE's state at ``t_min``.
    x_T : (N, D) array or None
        Starting noise at ``t_max``; drawn from N(0, I) when None.
    record : bool
        Keep the states visited at the grid's times.
    progress : bool
        A bar on stderr over the steps.

    Returns
    -------
    SampleResult
        ``x`` (N, D) and the evaluations spent (``nfe``, plus one with ``denoise``).

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample import fast_sample
    >>> data = GaussianData(np.array([2.0]), 0.25)
    >>> res = fast_sample(data, 2000, np.random.default_rng(0), sampler="dpmpp2m", nfe=10)
    >>> print(round(float(res.x.mean()), 1), round(float(res.x.std()), 1), res.nfe)
    2.0 0.5 11
    """
    denoiser, x, rng = start(denoiser, n, rng, x_T)
    sampler, nfe = check_budget(sampler, nfe)
    if times is not None and grid is not None:
        raise ValueError(f"pass either grid or times, not both, got grid={grid!r} and times")
    grid = DEFAULT_GRIDS[sampler] if grid is None else one_of(grid, "grid", GRIDS)
    t_min = flow_time(denoiser.schedule, t_min, "t_min", hi_open=True)
    denoise = check_flag(denoise, "denoise")
    steps = _grid_steps(sampler, nfe)
    if times is not None:
        times = check_step_times(denoiser.schedule, times, sampler, nfe, t_min)
    if sampler in ("euler", "heun") and times is not None:
        res = _flow_steps(denoiser, x, times, sampler, record, progress)
    elif sampler in ("euler", "heun"):  # the probability flow in t, on the same grid
        res = ode_sample(denoiser, None, rng, method=sampler, steps=steps, t_min=t_min, denoise=False, x_T=x,
                         record=record, progress=progress, grid=grid)
    else:
        if times is None:
            times = time_grid(denoiser.schedule, steps, grid, t_min)  # (steps + 1,) from t_max down to t_min
        if sampler == "edm":
            res = edm_heun(denoiser, x, times, last_euler=nfe % 2 == 1, record=record, progress=progress)
        elif sampler in ("dpm2", "dpm3"):
            res = dpm_solver_singlestep(denoiser, x, times, singlestep_orders(nfe, ORDERS[sampler]), record=record,
                                        progress=progress)
        elif sampler == "unipc":
            res = unipc(denoiser, x, times, order=2, record=record, progress=progress)
        else:
            res = dpmpp_multistep(denoiser, x, times, order=_MULTISTEP_ORDERS[sampler], record=record,
                                  progress=progress)
    if denoise:
        res.x = tweedie(denoiser, res.x, t_min)
        res.nfe += 1
    return res
