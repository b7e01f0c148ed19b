r"""The probability-flow ODE: deterministic sampling and its inverse, data to noise.

.. math::
    \frac{dx}{dt} = f(x, t) = -\tfrac12\beta(t)\big[x + \nabla_x\log q_t(x)\big]
                 = -\tfrac12\beta(t)\Big[x - \frac{\epsilon_\theta(x, t)}{\sigma(t)}\Big]

(Song et al. 2021, Eq. 13 for the VP SDE of Eq. 11, with the score written through the
predicted noise). Its solutions share the marginals q_t of the forward SDE, so the flow
from x ~ N(0, I) at ``t_max`` to ``t_min`` samples the data, and the same flow run
forward encodes data into noise: a bijection up to the solver's error.

Solvers: ``"euler"`` (first order), ``"heun"`` (second order, Karras et al. 2022,
Algorithm 1) on a time grid (uniform unless ``ode_sample`` is given another of
:mod:`npdiff.sample.grids`), and ``"rk45"`` (adaptive Dormand-Prince through
``scipy.integrate.solve_ivp``, tolerances exposed). The flow stops at ``t_min > 0``
where the noise level is small but the denoiser is still well defined; sampling then
returns Tweedie's denoised mean :math:`\hat x_0` at ``t_min`` (one more evaluation),
as score_sde does with its final denoising step.

The public functions check their arguments once and run the module's one loop, ``_solve_flow``,
whose field ``_velocity`` still checks the denoiser's answer and the state; the few-step samplers
(:func:`npdiff.sample.fast_sample`) run ``"euler"`` and ``"heun"`` through :func:`ode_sample`, and
the exact likelihood (:mod:`npdiff.likelihood.ode`) integrates the same field, :func:`flow_from_eps`.
``steps`` is always a number of grid steps: one evaluation each for euler, two for heun.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from .._check import check_tolerances, flow_time, one_of, positive_int
from .._progress import TimeBar
from .._progress import progress as bar
from ..denoiser import Denoiser, as_denoiser_batch, call_eps
from ..threads import blas_threads
from ._checks import check_finite, start
from ._common import Recorder, SampleResult, tweedie
from .grids import GRIDS, time_grid

__all__ = ["DEFAULT_STEPS", "METHODS", "flow_from_eps", "flow_velocity", "ode_encode", "ode_sample", "solve_flow"]

METHODS = ("euler", "heun", "rk45")
#: default number of grid steps of the fixed-step solvers (rk45 chooses its own)
DEFAULT_STEPS = {"euler": 500, "heun": 100}


def flow_velocity(denoiser: Denoiser, x: np.ndarray, t: float) -> np.ndarray:
    r"""The probability-flow field :math:`f(x, t)` of Song et al. 2021, Eq. 13.

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` gives :math:`\beta(t)` and :math:`\sigma(t)`.
    x : (B, D) array
        The states.
    t : float
        The time, in (0, ``schedule.t_max``] (at t = 0 the field divides by sigma = 0).

    Returns
    -------
    (B, D) array
        :math:`f(x, t)`.

    Examples
    --------
    On data :math:`\mathcal N(0, I)` every marginal is :math:`\mathcal N(0, I)`: the field vanishes.

    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample import flow_velocity
    >>> print(np.abs(flow_velocity(GaussianData(np.zeros(2), 1.0), np.array([[0.5, -1.0]]), 0.5)).max() < 1e-12)
    True
    """
    x, t = as_denoiser_batch(denoiser, x), flow_time(denoiser.schedule, t, "t")
    return _velocity(denoiser, x, t)


def flow_from_eps(x: np.ndarray, eps: np.ndarray, beta: float, sigma: float) -> np.ndarray:
    r""":math:`f = -\tfrac12\beta\,(x - \epsilon/\sigma)` (Song et al. 2021, Eq. 13) from the predicted noise.

    The formula only, unchecked: the solvers pass their own states and the schedule's values.

    Parameters
    ----------
    x : (B, D) array
        The states.
    eps : (B, D) array
        The predicted noise :math:`\epsilon_\theta(x, t)`.
    beta : float
        :math:`\beta(t)`.
    sigma : float
        :math:`\sigma(t) = \sqrt{1-\bar\alpha(t)} > 0`.

    Returns
    -------
    (B, D) array
        :math:`f(x, t)`.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.sample.ode import flow_from_eps
    >>> flow_from_eps(np.array([[2.0, 2.0]]), np.array([[0.5, 0.25]]), beta=2.0, sigma=0.5)
    array([[-1. , -1.5]])
    """
    return -0.5 * beta * (x - eps / sigma)


def _velocity(denoiser: Denoiser, x: np.ndarray, t: float) -> np.ndarray:
    # the solvers' unchecked call: a state that ran away is a diverged flow (FloatingPointError), not bad input
    if not np.all(np.isfinite(x)):
        raise FloatingPointError(f"the flow produced NaN or Inf values at t={t:.6g}")
    s, t = denoiser.schedule, np.float64(t)
    return flow_from_eps(x, call_eps(denoiser, x, float(t)), float(s.beta(t)), float(s.sigma(t)))


def _check_method(method: object, steps: object) -> tuple[str, int | None]:
    method = one_of(method, "method", METHODS)
    if method == "rk45":
        if steps is not None:
            raise ValueError("steps applies to the fixed-step solvers 'euler' and 'heun'; rk45 chooses its own steps")
        return method, None
    return method, positive_int(DEFAULT_STEPS[method] if steps is None else steps, "steps")


@blas_threads()
def solve_flow(
    denoiser: Denoiser,
    x: np.ndarray,
    t_start: float,
    t_end: float,
    *,
    method: str = "rk45",
    steps: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    record: bool = False,
    progress: bool = False,
) -> SampleResult:
    r"""Integrate the probability flow from ``t_start`` to ``t_end`` (either direction).

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` gives the field.
    x : (B, D) array
        States at ``t_start``.
    t_start : float
        The start, in (0, ``schedule.t_max``].
    t_end : float
        The end, in (0, ``schedule.t_max``].
    method : str
        ``"euler"``, ``"heun"`` or ``"rk45"``.
    steps : int or None
        Grid steps, uniform in t, of euler (one evaluation each) or heun (two); None for
        :data:`DEFAULT_STEPS`; must be None for rk45.
    rtol : float
        Relative tolerance of rk45, in [1e-13, 1).
    atol : float
        Absolute tolerance of rk45, in [1e-14, 1].
    record : bool
        Keep the states visited (rk45 records 51 evenly spaced times).
    progress : bool
        A bar on stderr: one step a tick (euler, heun), or the share of the interval reached (rk45).

    Returns
    -------
    SampleResult
        The state (B, D) at ``t_end`` and the number of denoiser evaluations.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample import solve_flow
    >>> data = GaussianData(np.zeros(1), 1.0)
    >>> res = solve_flow(data, np.array([[0.7]]), 0.9, 0.1, method="heun", steps=4)
    >>> print(res.x.round(9), res.nfe)
    [[0.7]] 8
    """
    x = as_denoiser_batch(denoiser, x)
    t_start, t_end = flow_time(denoiser.schedule, t_start, "t_start"), flow_time(denoiser.schedule, t_end, "t_end")
    (method, steps), (rtol, atol) = _check_method(method, steps), check_tolerances(rtol, atol)
    return _solve_flow(denoiser, x, t_start, t_end, method, steps, rtol, atol, record, progress)


def _solve_flow(
    denoiser: Denoiser, x: np.ndarray, t_start: float, t_end: float, method: str, steps: int | None,
    rtol: float, atol: float, record: bool, progress: bool, times: np.ndarray | None = None,
) -> SampleResult:
    rec = Recorder(record)
    B, D = x.shape
    if method == "rk45":
        nfe = 0
        lo, hi = min(t_start, t_end), max(t_start, t_end)

        def fun(t: float, y: np.ndarray) -> np.ndarray:
            nonlocal nfe
            nfe += 1
            reached(t)
            # RK45's last stage, t + h, can round one ulp past the end of the interval (past t_max)
            return _velocity(denoiser, y.reshape(B, D), min(max(float(t), lo), hi)).ravel()

        t_eval = np.linspace(t_start, t_end, 51) if record else None
        with TimeBar(t_start, t_end, desc="ode-rk45", enabled=progress) as reached:
            sol = solve_ivp(fun, (t_start, t_end), x.ravel(), method="RK45", rtol=rtol, atol=atol, t_eval=t_eval)
        if sol.status != 0:
            raise FloatingPointError(f"the ODE solver failed between t={t_start} and t={t_end}: {sol.message}")
        x_end = check_finite(sol.y[:, -1].reshape(B, D), f"at t={t_end}")
        if record:
            for k, t in enumerate(sol.t):
                rec(sol.y[:, k].reshape(B, D), t)
        return rec.result(x_end, nfe)

    grid = np.linspace(t_start, t_end, steps + 1) if times is None else times  # (steps + 1,)
    rec(x, t_start)
    nfe = 0
    for k in bar(range(steps), total=steps, desc=f"ode-{method}", enabled=progress):
        t, t_next = float(grid[k]), float(grid[k + 1])
        h = t_next - t
        d = _velocity(denoiser, x, t)
        nfe += 1
        if method == "euler":
            x = x + h * d
        else:  # Heun: trapezoidal correction with the slope at the Euler prediction
            d_next = _velocity(denoiser, x + h * d, t_next)
            nfe += 1
            x = x + 0.5 * h * (d + d_next)
        check_finite(x, f"at t={t_next:.6g}")
        rec(x, t_next)
    return rec.result(x, nfe)


@blas_threads()
def ode_sample(
    denoiser: Denoiser,
    n: int | None,
    rng: np.random.Generator | int,
    *,
    method: str = "rk45",
    steps: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    t_min: float = 1e-3,
    denoise: bool = True,
    x_T: np.ndarray | None = None,
    record: bool = False,
    progress: bool = False,
    grid: str = "uniform",
) -> SampleResult:
    r"""Sample by integrating the probability-flow ODE from ``schedule.t_max`` down to ``t_min``.

    Starts from :math:`x \sim \mathcal N(0, I)` (or ``x_T``) at ``t_max``. With
    ``denoise=True`` returns :math:`\hat x_0 = (x - \sigma\epsilon_\theta)/\sqrt{\bar\alpha}`
    at ``t_min`` (Tweedie; one extra evaluation), else the ODE state at ``t_min``
    (use that to invert :func:`ode_encode`).

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` gives the ODE.
    n : int or None
        The number of samples N (None when ``x_T`` is given).
    rng : np.random.Generator or int
        Draws the starting noise (the flow itself is deterministic).
    method : str
        ``"euler"``, ``"heun"`` or ``"rk45"``.
    steps : int or None
        Grid steps of euler (one evaluation each) or heun (two); None for :data:`DEFAULT_STEPS`;
        must be None for rk45.
    rtol : float
        Relative tolerance of rk45, in [1e-13, 1).
    atol : float
        Absolute tolerance of rk45, in [1e-14, 1].
    t_min : float
        Where the flow stops, in (0, ``schedule.t_max``).
    denoise : bool
        Return Tweedie's :math:`\hat x_0` at ``t_min`` (one more evaluation), else the ODE's state.
    x_T : (N, D) array or None
        Starting noise at ``t_max``; drawn from N(0, I) when None.
    record : bool
        Keep the states visited.
    progress : bool
        A bar on stderr.
    grid : str
        Where euler and heun place their steps, one of :data:`~npdiff.sample.grids.GRIDS`
        (rk45 chooses its own: ``"uniform"`` only).

    Returns
    -------
    SampleResult
        ``x`` (N, D) and the number of denoiser evaluations.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample import ode_sample
    >>> data = GaussianData(np.array([2.0]), 0.25)
    >>> res = ode_sample(data, 2000, np.random.default_rng(0), method="heun", steps=20, grid="log_snr")
    >>> print(round(float(res.x.mean()), 1), round(float(res.x.std()), 1), res.nfe)
    2.0 0.5 41
    """
    denoiser, x, rng = start(denoiser, n, rng, x_T)
    t_min = flow_time(denoiser.schedule, t_min, "t_min", hi_open=True)
    (method, steps), (rtol, atol) = _check_method(method, steps), check_tolerances(rtol, atol)
    if one_of(grid, "grid", GRIDS) != "uniform" and method == "rk45":
        raise ValueError(f"grid applies to the fixed-step solvers 'euler' and 'heun'; rk45 chooses its own steps, "
                         f"got grid={grid!r}")
    times = None if method == "rk45" else time_grid(denoiser.schedule, steps, grid, t_min)
    res = _solve_flow(denoiser, x, denoiser.schedule.t_max, t_min, method, steps, rtol, atol, record, progress, times)
    if denoise:
        res.x = tweedie(denoiser, res.x, t_min)
        res.nfe += 1
    return res


@blas_threads()
def ode_encode(
    denoiser: Denoiser,
    x: np.ndarray,
    *,
    method: str = "rk45",
    steps: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    t_min: float = 1e-3,
    record: bool = False,
) -> SampleResult:
    r"""Map data to noise: integrate the probability flow from ``t_min`` up to ``schedule.t_max``.

    Decoding the result with :func:`ode_sample` (``x_T=...``, ``denoise=False``, same ``t_min``)
    returns ``x`` up to the solver's error.

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` gives the ODE.
    x : (B, D) array
        States at ``t_min``.
    method : str
        ``"euler"``, ``"heun"`` or ``"rk45"``.
    steps : int or None
        Grid steps (uniform in t) of euler or heun; None for :data:`DEFAULT_STEPS`; None for rk45.
    rtol : float
        Relative tolerance of rk45, in [1e-13, 1).
    atol : float
        Absolute tolerance of rk45, in [1e-14, 1].
    t_min : float
        Where the flow starts, in (0, ``schedule.t_max``).
    record : bool
        Keep the states visited.

    Returns
    -------
    SampleResult
        The noise (B, D) at ``t_max`` and the number of denoiser evaluations.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample import ode_encode, ode_sample
    >>> data = GaussianData(np.array([2.0]), 0.25)
    >>> x = np.array([[1.5], [2.5]])
    >>> z = ode_encode(data, x, rtol=1e-8, atol=1e-8).x
    >>> back = ode_sample(data, None, 0, x_T=z, rtol=1e-8, atol=1e-8, denoise=False).x
    >>> print(np.abs(back - x).max() < 1e-6)
    True
    """
    x, t_min = as_denoiser_batch(denoiser, x), flow_time(denoiser.schedule, t_min, "t_min", hi_open=True)
    (method, steps), (rtol, atol) = _check_method(method, steps), check_tolerances(rtol, atol)
    return _solve_flow(denoiser, x, t_min, denoiser.schedule.t_max, method, steps, rtol, atol, record, False)
