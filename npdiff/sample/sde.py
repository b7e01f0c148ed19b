r"""The reverse-time SDE, integrated by Euler-Maruyama.

.. math::
    dx = \big[-\tfrac12\beta(t)\,x - \beta(t)\,\nabla_x\log q_t(x)\big]\,dt + \sqrt{\beta(t)}\,d\bar w

(Song et al. 2021, Eq. 6 for the VP SDE of Eq. 11), run from ``schedule.t_max`` down to
``t_min`` on a uniform grid; each step with :math:`h > 0` going backwards is

.. math:: x \leftarrow x + h\big[\tfrac12\beta x + \beta\,\nabla\log q_t(x)\big] + \sqrt{\beta h}\,z .

The last state is denoised with Tweedie's formula at ``t_min`` (no noise added there).
"""

from __future__ import annotations

import numpy as np

from .._check import positive_int, real_scalar
from .._progress import progress as bar
from ..denoiser import Denoiser, call_eps
from ..threads import blas_threads
from ._checks import check_finite, start
from ._common import Recorder, SampleResult, tweedie

__all__ = ["sde_sample"]


@blas_threads()
def sde_sample(
    denoiser: Denoiser,
    n: int | None,
    rng: np.random.Generator | int,
    *,
    steps: int = 1000,
    t_min: float = 1e-3,
    x_T: np.ndarray | None = None,
    record: bool = False,
    progress: bool = False,
) -> SampleResult:
    r"""Reverse-SDE sampling by Euler-Maruyama (Song et al. 2021, Eq. 6; Sec. 4.2).

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` gives the SDE.
    n : int or None
        The number of samples N (None when ``x_T`` is given).
    rng : np.random.Generator or int
        The only source of randomness (starting noise and every step's noise).
    steps : int
        Grid steps, uniform in t from ``t_max`` to ``t_min``, one evaluation each.
    t_min : float
        Where the SDE stops, in (0, ``schedule.t_max``).
    x_T : (N, D) array or None
        Starting noise at ``t_max``; drawn from N(0, I) when None.
    record : bool
        Keep the states visited.
    progress : bool
        A bar on stderr, one step a tick.

    Returns
    -------
    SampleResult
        ``x`` (N, D) and ``nfe == steps + 1`` (the last for denoising).

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample import sde_sample
    >>> data = GaussianData(np.array([2.0]), 0.25)
    >>> res = sde_sample(data, 2000, np.random.default_rng(0), steps=50)
    >>> print(round(float(res.x.mean()), 1), round(float(res.x.std()), 1), res.nfe)
    2.0 0.5 51
    """
    denoiser, x, rng = start(denoiser, n, rng, x_T)
    steps = positive_int(steps, "steps")
    s = denoiser.schedule
    t_min = real_scalar(t_min, "t_min", lo=0.0, hi=s.t_max, lo_open=True, hi_open=True)
    grid = np.linspace(s.t_max, t_min, steps + 1)  # (steps + 1,)
    betas, sigmas = s.beta(grid), s.sigma(grid)  # (steps + 1,) each, once for the whole run
    rec = Recorder(record)
    rec(x, grid[0])
    for k in bar(range(steps), total=steps, desc="sde", enabled=progress):
        t, h, beta = float(grid[k]), float(grid[k] - grid[k + 1]), float(betas[k])
        score = -call_eps(denoiser, x, t) / sigmas[k]
        x = x + h * (0.5 * beta * x + beta * score) + np.sqrt(beta * h) * rng.standard_normal(x.shape)
        check_finite(x, f"at t={grid[k + 1]:.6g}")
        rec(x, grid[k + 1])
    return rec.result(tweedie(denoiser, x, t_min), steps + 1)
