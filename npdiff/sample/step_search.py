r"""Step times chosen by the exact KL divergence of what the sampler draws.

A deterministic sampler on K step times :math:`t_{\max} = t_0 > t_1 > \dots > t_K = t_{\min}` is a
map :math:`F_\theta` from the starting noise z to a sample, whose exact density follows from the
change of variables (:mod:`npdiff.likelihood.sampler_density`). :func:`optimize_steps` chooses the
K - 1 interior times that minimize the exact divergence to a target density q,

.. math::
    \theta^\star = \arg\min_\theta\ \widehat{\mathrm{KL}}(p_{F_\theta}\,\|\,q)
    = \frac1N\sum_{n=1}^N \delta_n + e^{-\delta_n} - 1,\qquad
    \delta_n = \log p_{F_\theta}(F_\theta(z_n)) - \log q(F_\theta(z_n)),

on N fixed starting points :math:`z_n` (common random numbers: the objective is a smooth,
deterministic function of :math:`\theta`), with the control-variate form of
:func:`~npdiff.likelihood.sampler_kl`, and reports the KL on fresh points. The anchors optimize a
surrogate of this: Align Your Steps (Sabour et al. 2024) a KL upper bound between the true and the
discretized SDE, Xue et al. 2024 the solver's distance to the exact ODE solution, GITS (Chen et al.
2024; :mod:`npdiff.sample.step_dp`) a teacher trajectory's local errors.

**Parameterization.** The times enter through npdiff's log-SNR :math:`\lambda(t) =
\log(\bar\alpha/(1-\bar\alpha))`, whose span :math:`\Lambda = \lambda(t_{\min}) - \lambda(t_{\max})` is
split into K positive increments by a softmax of K free numbers :math:`\theta` (the first held at 0):

.. math::
    \lambda_k = \lambda(t_{\max}) + \Lambda\sum_{j \le k}\frac{e^{\theta_j}}{\sum_i e^{\theta_i}},\qquad
    t_k = \lambda^{-1}(\lambda_k),

so every :math:`\theta \in \mathbb R^{K-1}` gives strictly decreasing times with the ends fixed:
the search is unconstrained (SciPy's Powell method, derivative-free).

**Folded samplers.** Where a candidate's map folds space (:math:`\det\partial F/\partial z \le 0` at
a fitting point, a self-normalization :math:`\mathbb E[q/p_F] \ne 1` beyond three standard errors,
or the sampler blows up: :class:`~npdiff.likelihood.SamplerKL` calls the KL not estimable), its
density is not the change of variables' and its "KL" would be wrong, often small. Such a candidate
scores :data:`FOLD_PENALTY` plus its folded share, above every honest KL of a sampler worth keeping,
so the search walks away from folds. A fold
too rare for the fitting points to show can still appear on the validation points: then, if the
start does not fold there, the result moves back along the straight line (in :math:`\theta`) towards
the start, to the first of 90%, 75%, 50%, 25%, 0% of the way that does not fold there (the
validation points then select the times, so score them again on fresh points to quote a KL).

**Targets.** For an oracle, q is the data density at ``t_min``
(``lambda x: oracle.log_prob(x, t_min)``); for a trained model, its own converged flow at
``t_min`` (:func:`flow_log_density`: the exact ODE likelihood, Song et al. 2021, Eq. 39), so that
the optimized few-step sampler imitates the model's flow.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from .._check import check_tolerances, flow_time, one_of
from ..denoiser import Denoiser, check_denoiser
from ..likelihood.ode import ode_log_likelihood
from ..likelihood.sampler_density import sampler_kl
from ._checks import check_dim, check_grid, check_search
from .fast import check_budget, check_step_times, fast_sample, grid_steps
from .grids import GRIDS, time_grid, time_of_log_snr

__all__ = ["FOLD_PENALTY", "StepSearch", "flow_log_density", "log_snr_positions", "optimize_steps",
           "steps_kl", "times_from_positions"]

#: the objective of a candidate whose sampler folds space or fails (nats): above any KL worth keeping
FOLD_PENALTY = 100.0
# the optimum, then points on the way back to the start, tried in turn on the validation points
_SHRINKS = (1.0, 0.9, 0.75, 0.5, 0.25, 0.0)


@dataclass
class StepSearch:
    r"""The outcome of :func:`optimize_steps`.

    Attributes
    ----------
    times : (K + 1,) array
        The step times found, strictly decreasing from ``schedule.t_max`` to ``t_min``; pass them to
        :func:`~npdiff.sample.fast_sample` as ``times=`` with the same ``sampler`` and ``nfe``.
    sampler : str
        The sampler they are for.
    nfe : int
        Its budget of evaluations (the final denoising step, if used, is one more).
    objective : str
        What was minimized, in words.
    kl : float
        :math:`\mathrm{KL}(p_F\,\|\,q)` on the validation points (fresh, not used by the search), nats;
        ``inf`` if the sampler folds there (then no KL is estimable).
    kl_se : float
        Its standard error.
    kl_fit : float
        The KL on the fitting points at the optimum (optimistic: the search saw them).
    evaluations : int
        Objective evaluations spent (each one run of the sampler's Jacobian on the fitting points).
    seconds : float
        Wall time of the search and the validation.
    kl_start : float
        The KL of the starting times on the validation points (``inf`` if they fold).
    kl_start_se : float
        Its standard error.
    folded : int
        Validation points where the found sampler folds (det <= 0); 0 for a KL that holds.
    """

    times: np.ndarray
    sampler: str
    nfe: int
    objective: str
    kl: float
    kl_se: float
    kl_fit: float
    evaluations: int
    seconds: float
    kl_start: float = np.nan
    kl_start_se: float = np.nan
    folded: int = 0


def log_snr_positions(schedule: object, times: object) -> np.ndarray:
    r"""The free numbers :math:`\theta` (K - 1,) of a grid: the logs of its log-SNR increments, less the first's.

    Parameters
    ----------
    schedule : Schedule
        The denoiser's schedule.
    times : (K + 1,) array
        A strictly decreasing grid.

    Returns
    -------
    (K - 1,) array
        :math:`\theta_k = \log(\lambda_{k+1} - \lambda_k) - \log(\lambda_1 - \lambda_0)`, k = 1..K-1.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.sample.grids import log_snr_grid
    >>> from npdiff.sample.step_search import log_snr_positions
    >>> from npdiff.schedule import vp_linear
    >>> print(np.abs(log_snr_positions(vp_linear(), log_snr_grid(vp_linear(), 4, 1e-3))).max() < 1e-9)
    True
    """
    t = check_grid(schedule, times, "times")
    log_inc = np.log(np.diff(schedule.log_snr(t)))  # (K,) log-SNR increments, > 0
    return log_inc[1:] - log_inc[0]


def times_from_positions(schedule: object, theta: object, t_min: float) -> np.ndarray:
    r"""The grid of free numbers :math:`\theta` (K - 1,): K softmax increments of the log-SNR span (module docstring).

    Parameters
    ----------
    schedule : Schedule
        The denoiser's schedule; the grid starts at its ``t_max``.
    theta : (K - 1,) array
        Free real numbers (an empty array gives one step).
    t_min : float
        The last time.

    Returns
    -------
    (K + 1,) array
        Strictly decreasing times from ``schedule.t_max`` to ``t_min``.

    Examples
    --------
    >>> from npdiff.sample.step_search import times_from_positions
    >>> from npdiff.schedule import vp_linear
    >>> times_from_positions(vp_linear(), [0.0, 0.0], 1e-3).round(4)  # equal increments: the log_snr grid
    array([1.    , 0.6037, 0.0749, 0.001 ])
    """
    theta = np.asarray(theta, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(theta)):
        raise ValueError(f"theta must be finite, got {theta}")
    t_min = flow_time(schedule, t_min, "t_min", hi_open=True)
    return _times(schedule, theta, t_min)


def _times(schedule, theta: np.ndarray, t_min: float) -> np.ndarray:
    logits = np.concatenate([[0.0], theta])  # (K,)
    w = np.exp(logits - logits.max())
    lam0, lam1 = float(schedule.log_snr(schedule.t_max)), float(schedule.log_snr(t_min))
    lam = lam0 + (lam1 - lam0) * np.concatenate([[0.0], np.cumsum(w / w.sum())])  # (K+1,)
    t = time_of_log_snr(schedule, np.clip(lam, lam0, lam1))
    t[0], t[-1] = schedule.t_max, t_min
    return t


def _sampler_map(denoiser: Denoiser, sampler: str, nfe: int, times: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    # the map F: z -> the state at t_min (no denoising step: the target is the density at t_min)
    return lambda z: fast_sample(denoiser, None, 0, sampler=sampler, nfe=nfe, times=times, t_min=float(times[-1]),
                                 denoise=False, x_T=z).x


def steps_kl(denoiser: Denoiser, log_q: Callable[[np.ndarray], np.ndarray], z: np.ndarray, times: object, *,
             sampler: str = "dpmpp2m", nfe: int = 10) -> tuple[float, float, int]:
    r"""The exact :math:`\mathrm{KL}(p_F\,\|\,q)` of ``sampler`` on ``times`` at the starting points ``z``.

    Parameters
    ----------
    denoiser : Denoiser
        The model or oracle the sampler runs.
    log_q : callable
        The target's log-density at ``times[-1]``, (N, D) -> (N,).
    z : (N, D) array
        Starting noise.
    times : (K + 1,) array
        Step times for ``sampler`` on ``nfe`` (:func:`~npdiff.sample.fast_sample`'s ``times``).
    sampler : str
        One of :data:`~npdiff.sample.FAST_SAMPLERS`.
    nfe : int
        Its budget of evaluations.

    Returns
    -------
    kl : float
        The control-variate estimate (``inf`` when it is not estimable: the map folds, or the
        self-normalization fails).
    se : float
        Its standard error (``inf`` likewise).
    folded : int
        Points with :math:`\det\partial F/\partial z \le 0` (all of them if the sampler failed; at
        least 1 whenever the KL is not estimable).

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample.grids import log_snr_grid
    >>> from npdiff.sample.step_search import steps_kl
    >>> data = GaussianData(np.array([1.0, -1.0]), 0.3)
    >>> z = np.random.default_rng(0).standard_normal((200, 2))
    >>> kl, se, folded = steps_kl(data, lambda x: data.log_prob(x, 1e-3), z, log_snr_grid(data.schedule, 10, 1e-3))
    >>> print(round(kl, 4), folded)
    0.0025 0
    """
    check_denoiser(denoiser)
    sampler, nfe = check_budget(sampler, nfe)
    t = check_grid(denoiser.schedule, times, "times")
    times = check_step_times(denoiser.schedule, t, sampler, nfe, float(t[-1]))
    return _kl(denoiser, log_q, z, times, sampler, nfe)


def _kl(denoiser, log_q, z, times, sampler, nfe) -> tuple[float, float, int]:
    try:
        with np.errstate(all="ignore"):
            res = sampler_kl(_sampler_map(denoiser, sampler, nfe, times), z, log_q)
    except (FloatingPointError, ValueError, np.linalg.LinAlgError):
        return np.inf, np.inf, int(z.shape[0])  # the sampler blew up, or det = 0 at a point
    if not res.estimable:  # folded, or a self-normalization that fails without a visible fold: counted as one
        return np.inf, np.inf, max(int(res.density.folded), 1)
    if not np.isfinite(res.kl_cv):
        return np.inf, np.inf, int(res.density.folded)
    return float(res.kl_cv), float(res.se_cv), 0


def flow_log_density(denoiser: Denoiser, *, t_min: float = 1e-3, rtol: float = 1e-6, atol: float = 1e-6,
                     batch_size: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    r"""The converged flow's exact log-density at ``t_min``, as the target ``log_q`` of :func:`optimize_steps`.

    .. math:: \log p_{t_{\min}}(x) = \log\mathcal N(x_{t_{\max}}; 0, I) + \int_{t_{\min}}^{t_{\max}}\nabla\cdot f\,dt

    (Song et al. 2021, Eq. 39: :func:`npdiff.likelihood.ode_log_likelihood`, RK45 at ``rtol``,
    ``atol``). A few-step sampler that reaches KL 0 to it draws what the model's flow draws. Each
    call costs one adaptive solve of the flow and its exact divergence on the points (on the default
    2D model about 100-200 evaluations with the divergence: measured in ``docs/measurements/steps.md``).

    Parameters
    ----------
    denoiser : Denoiser
        The trained model (it must give ``eps_and_divergence``).
    t_min : float
        Where the flow's density is taken (the samplers' ``t_min``).
    rtol : float
        Relative tolerance of RK45.
    atol : float
        Absolute tolerance of RK45.
    batch_size : int or None
        Solve chunks of this many points (None: all at once).

    Returns
    -------
    callable
        (N, D) points -> (N,) log-densities, nats.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample.step_search import flow_log_density
    >>> data = GaussianData(np.array([1.0]), 0.3)
    >>> x = np.array([[0.5], [1.2]])
    >>> print(np.round(flow_log_density(data)(x) - data.log_prob(x, 1e-3), 3))  # N(0, I) is not quite q at t_max
    [ 0.006 -0.002]
    """
    check_denoiser(denoiser)
    t_min = flow_time(denoiser.schedule, t_min, "t_min", hi_open=True)
    rtol, atol = check_tolerances(rtol, atol)

    def log_q(x: np.ndarray) -> np.ndarray:
        return ode_log_likelihood(denoiser, x, t_min=t_min, rtol=rtol, atol=atol, batch_size=batch_size).log_p

    return log_q


def _start_times(schedule, start: object, sampler: str, nfe: int, t_min: float) -> np.ndarray:
    if isinstance(start, str):
        return time_grid(schedule, grid_steps(sampler, nfe), one_of(start, "start", GRIDS), t_min)
    return check_step_times(schedule, start, sampler, nfe, t_min)


def optimize_steps(
    denoiser: Denoiser,
    log_q: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator | int,
    *,
    sampler: str = "dpmpp2m",
    nfe: int = 10,
    n_fit: int = 400,
    n_check: int = 2000,
    t_min: float = 1e-3,
    start: str | np.ndarray = "quadratic",
    max_evaluations: int = 1500,
    progress: bool = False,
) -> StepSearch:
    r"""Step times that minimize the exact :math:`\mathrm{KL}(p_F\,\|\,q)` of ``sampler`` (module docstring).

    Parameters
    ----------
    denoiser : Denoiser
        The model or oracle the sampler runs.
    log_q : callable
        The target's log-density at ``t_min``, (N, D) -> (N,): ``lambda x: oracle.log_prob(x, t_min)`` for
        an oracle, :func:`flow_log_density` for a trained model.
    rng : np.random.Generator or int
        Draws the ``n_fit`` fitting points, then the ``n_check`` validation points.
    sampler : str
        One of :data:`~npdiff.sample.FAST_SAMPLERS`.
    nfe : int
        Its budget of evaluations (K = :func:`~npdiff.sample.fast.grid_steps` steps).
    n_fit : int
        Fixed starting points of the objective (at least 2).
    n_check : int
        Fresh starting points of the reported KL and of the fold screen (at least 2; module docstring).
    t_min : float
        The last time, in (0, ``schedule.t_max``).
    start : str or (K + 1,) array
        The starting times: a grid's name (:data:`~npdiff.sample.grids.GRIDS`) or explicit times.
    max_evaluations : int
        Objective evaluations at most (SciPy Powell's ``maxfev``).
    progress : bool
        Print the best objective every 50 evaluations to stderr.

    Returns
    -------
    StepSearch
        The times, the validated KL and the search's cost.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample.step_search import optimize_steps
    >>> data = GaussianData(np.array([1.0, -1.0]), 0.05)
    >>> res = optimize_steps(data, lambda x: data.log_prob(x, 1e-3), 0, nfe=4, n_fit=100, n_check=200,
    ...                      max_evaluations=60)
    >>> print(res.times.shape, res.kl <= res.kl_start, res.evaluations <= 70)
    (5,) True True
    """
    denoiser, rng, n_fit, n_check, t_min, max_evaluations = check_search(denoiser, log_q, rng, n_fit, n_check, t_min,
                                                                         max_evaluations)
    sampler, nfe = check_budget(sampler, nfe)
    schedule, dim = denoiser.schedule, check_dim(denoiser, "optimize_steps")
    t0 = time.perf_counter()
    times0 = _start_times(schedule, start, sampler, nfe, t_min)
    z_fit = rng.standard_normal((n_fit, dim))  # (n_fit, D) fixed: common random numbers
    z_check = rng.standard_normal((n_check, dim))  # (n_check, D) fresh
    K = times0.size - 1
    best = {"f": np.inf, "theta": log_snr_positions(schedule, times0)}
    count = [0]

    def objective(theta: np.ndarray) -> float:
        count[0] += 1
        kl, _, folded = _kl(denoiser, log_q, z_fit, _times(schedule, theta, t_min), sampler, nfe)
        f = kl if np.isfinite(kl) else FOLD_PENALTY + folded / n_fit
        if f < best["f"]:
            best["f"], best["theta"] = f, np.array(theta, copy=True)
        if progress and count[0] % 50 == 0:
            print(f"optimize_steps: {count[0]} evaluations, best KL on the fitting points {best['f']:.4g}",
                  file=sys.stderr, flush=True)
        return f

    if K > 1:
        minimize(objective, best["theta"], method="Powell",
                 options={"maxfev": max_evaluations, "xtol": 1e-3, "ftol": 1e-7})
    else:
        objective(best["theta"])
    kl0, se0, folded0 = _kl(denoiser, log_q, z_check, times0, sampler, nfe)
    theta0, theta = log_snr_positions(schedule, times0), best["theta"]
    for shrink in _SHRINKS:  # back towards a start that does not fold, if the optimum folds at fresh points
        times = _times(schedule, theta0 + shrink * (theta - theta0), t_min)
        kl, se, folded = _kl(denoiser, log_q, z_check, times, sampler, nfe)
        if not folded or folded0:
            break
    return StepSearch(times=times, sampler=sampler, nfe=nfe,
                      objective=(f"exact KL(p_F || q) of {sampler} at {nfe} evaluations on {n_fit} fixed starting "
                                 f"points (control-variate estimate), over the {K - 1} interior log-SNR positions"),
                      kl=kl, kl_se=se, kl_fit=float(best["f"]), evaluations=count[0],
                      seconds=time.perf_counter() - t0, kl_start=kl0, kl_start_se=se0, folded=folded)
