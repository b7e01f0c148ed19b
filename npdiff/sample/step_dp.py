r"""Step times by dynamic programming over a teacher trajectory's local errors (GITS, Chen et al. 2024).

GITS (Chen et al. 2024, Sec. 4) runs a fine, accurate "teacher" solve of the probability-flow ODE
through N + 1 fine times :math:`s_0 = t_{\max} > s_1 > \dots > s_N = t_{\min}` from a batch of
starting points, and prices every coarse step :math:`s_i \to s_j` (i < j) by the local error of one
student step taken from the teacher's state there:

.. math::
    c_{ij} = \frac1B\sum_{b=1}^B \big\|\Phi_{s_i\to s_j}(x^{(b)}_{s_i}) - x^{(b)}_{s_j}\big\|_2,

with :math:`\Phi` the first-order exponential-integrator step (DDIM, Song, Meng & Ermon 2021,
Eq. 12; :func:`npdiff.sample.exp_integrator.ddim_step`), one evaluation of the denoiser per fine
time. The K steps are then the cheapest path from :math:`s_0` to :math:`s_N` with exactly K edges,

.. math:: C_k(j) = \min_{i < j}\; C_{k-1}(i) + c_{ij},\qquad C_0(0) = 0,

Bellman's recursion (:func:`cheapest_path`; Watson et al. 2021 solve the same recursion over the
ELBO's terms, :func:`npdiff.likelihood.optimal_steps`). The local errors are a surrogate: they sum
one-step errors as if they did not propagate, and price a multistep solver by its first-order
step; :mod:`npdiff.sample.step_search` minimizes the exact KL instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._check import as_generator, check_tolerances, flow_time, one_of, positive_int
from ..denoiser import Denoiser, call_eps, check_denoiser
from ..parameterization import x0_from_eps
from ._checks import check_cost, check_dim, check_flag
from .exp_integrator import ddim_step
from .fast import grid_steps
from .grids import GRIDS, noise_levels, time_grid
from .ode import solve_flow

__all__ = ["TeacherCosts", "cheapest_path", "dp_steps", "teacher_costs"]


@dataclass
class TeacherCosts:
    r"""The local errors of one student step between every pair of a fine grid's times.

    Attributes
    ----------
    times : (N + 1,) array
        The fine grid, decreasing from ``t_max`` to ``t_min``.
    cost : (N + 1, N + 1) array
        ``cost[i, j]`` = :math:`c_{ij}` for i < j (mean L2 error of a DDIM step from the teacher's state
        at ``times[i]`` to ``times[j]``), ``inf`` elsewhere.
    sigma : (N + 1,) array
        :math:`\sigma = \sqrt{1-\bar\alpha}` at the fine times (the scale of :func:`dp_steps`' ``relative``).
    nfe : int
        Denoiser evaluations spent: the teacher's and one per fine time.
    """

    times: np.ndarray
    cost: np.ndarray
    sigma: np.ndarray
    nfe: int


def cheapest_path(cost: object, steps: int) -> np.ndarray:
    r"""The path :math:`0 = i_0 < i_1 < \dots < i_K = N` of K = ``steps`` edges of least total cost.

    .. math:: C_k(j) = \min_{i < j}\; C_{k-1}(i) + c_{ij},\qquad C_0(0) = 0

    Parameters
    ----------
    cost : (N + 1, N + 1) array
        ``cost[i, j]``, the price of the edge i -> j, read for i < j only (``inf`` forbids an edge).
    steps : int
        The number K of edges, at most N.

    Returns
    -------
    (K + 1,) int64 array
        The node indices, increasing from 0 to N.

    Examples
    --------
    Edges priced by the square of their length are cheapest when all are equal:

    >>> import numpy as np
    >>> from npdiff.sample.step_dp import cheapest_path
    >>> i = np.arange(7)
    >>> cheapest_path((i[None, :] - i[:, None]) ** 2.0, 3)
    array([0, 2, 4, 6])
    """
    c = check_cost(cost)  # (N+1, N+1), inf on and below the diagonal
    N = c.shape[0] - 1
    K = positive_int(steps, "steps", maximum=N)
    C = np.full(N + 1, np.inf)  # (N+1,) cheapest cost of reaching j from 0 in k edges
    C[0] = 0.0
    back = np.zeros((K + 1, N + 1), dtype=np.int64)
    for k in range(1, K + 1):
        total = C[:, None] + c  # (N+1, N+1): [i, j] reaching j through i
        back[k] = np.argmin(total, axis=0)
        C = total[back[k], np.arange(N + 1)]
    if not np.isfinite(C[N]):
        raise ValueError(f"no path of {K} finite-cost edges joins node 0 to node {N}")
    path = [N]
    for k in range(K, 0, -1):
        path.append(int(back[k, path[-1]]))
    return np.array(path[::-1], dtype=np.int64)


def teacher_costs(denoiser: Denoiser, rng: np.random.Generator | int, *, n: int = 1000, fine_steps: int = 100,
                  fine_grid: str = "log_snr", t_min: float = 1e-3, rtol: float = 1e-7,
                  atol: float = 1e-7) -> TeacherCosts:
    r"""The GITS cost matrix :math:`c_{ij}` on a fine grid (module docstring).

    Parameters
    ----------
    denoiser : Denoiser
        The model or oracle.
    rng : np.random.Generator or int
        Draws the teacher's ``n`` starting points.
    n : int
        Starting points of the teacher.
    fine_steps : int
        N, the fine grid's steps.
    fine_grid : str
        The fine grid, one of :data:`~npdiff.sample.grids.GRIDS`.
    t_min : float
        The last time.
    rtol : float
        Relative tolerance of the teacher (RK45 between neighbouring fine times).
    atol : float
        Its absolute tolerance.

    Returns
    -------
    TeacherCosts

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample.step_dp import teacher_costs
    >>> costs = teacher_costs(GaussianData(np.array([1.0]), 0.2), 0, n=50, fine_steps=8)
    >>> print(costs.cost.shape, bool(np.all(costs.cost[0, 1:] > 0)))
    (9, 9) True
    """
    check_denoiser(denoiser)
    rng = as_generator(rng)
    n, N = positive_int(n, "n"), positive_int(fine_steps, "fine_steps", minimum=1)
    t_min = flow_time(denoiser.schedule, t_min, "t_min", hi_open=True)
    rtol, atol = check_tolerances(rtol, atol)
    dim = check_dim(denoiser, "teacher_costs")
    times = time_grid(denoiser.schedule, N, one_of(fine_grid, "fine_grid", GRIDS), t_min)  # (N+1,)
    alpha, sigma, half_log_snr = noise_levels(denoiser.schedule, times)  # (N+1,) each
    x = rng.standard_normal((n, dim))  # (n, D)
    states, nfe = [x], 0
    for i in range(N):  # the teacher: an accurate solve through every fine time
        res = solve_flow(denoiser, states[-1], float(times[i]), float(times[i + 1]), method="rk45", rtol=rtol, atol=atol)
        states.append(res.x)
        nfe += res.nfe
    cost = np.full((N + 1, N + 1), np.inf)
    for i in range(N):
        eps = call_eps(denoiser, states[i], float(times[i]))  # (n, D)
        nfe += 1
        x0_hat = x0_from_eps(states[i], eps, alpha[i], sigma[i])  # (n, D)
        for j in range(i + 1, N + 1):
            step = ddim_step(states[i], x0_hat, sigma[i], sigma[j], alpha[j], half_log_snr[j] - half_log_snr[i])
            cost[i, j] = float(np.linalg.norm(step - states[j], axis=1).mean())
    return TeacherCosts(times=times, cost=cost, sigma=sigma, nfe=nfe)


def dp_steps(costs: TeacherCosts, sampler: str = "dpmpp2m", nfe: int = 10, *, relative: bool = False) -> np.ndarray:
    r"""GITS's step times for ``sampler`` on a budget of ``nfe``: the cheapest path of K steps through the fine grid.

    With ``relative``, each step's error is measured in units of the noise level it lands on,
    :math:`c_{ij}/\sigma(s_j)` (a variant, not GITS's): the plain L2 error of a step that lands near the
    data is small in x however much it blurs a sharp density there, so plain GITS spends its steps
    early and takes one long last step (measured in ``docs/measurements/steps.md``).

    Parameters
    ----------
    costs : TeacherCosts
        From :func:`teacher_costs`.
    sampler : str
        One of :data:`~npdiff.sample.FAST_SAMPLERS` (it sets K = :func:`~npdiff.sample.fast.grid_steps`).
    nfe : int
        Its budget of evaluations.
    relative : bool
        Price each step by its error over :math:`\sigma` at its end.

    Returns
    -------
    (K + 1,) array
        Step times from ``t_max`` to ``t_min``, for :func:`~npdiff.sample.fast_sample`'s ``times``.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample.step_dp import dp_steps, teacher_costs
    >>> costs = teacher_costs(GaussianData(np.array([1.0]), 0.2), 0, n=50, fine_steps=12)
    >>> dp_steps(costs, "dpmpp2m", 4).shape
    (5,)
    """
    if not isinstance(costs, TeacherCosts):
        raise TypeError(f"costs must be a TeacherCosts (from teacher_costs), got {type(costs).__name__}")
    K = grid_steps(sampler, nfe)
    cost = costs.cost / costs.sigma[None, :] if check_flag(relative, "relative") else costs.cost  # (N+1, N+1)
    return costs.times[cheapest_path(cost, K)]  # refuses K above the fine grid's steps
