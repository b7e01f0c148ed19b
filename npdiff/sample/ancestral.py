r"""Ancestral sampling on the discrete chain: DDPM and DDIM.

* :func:`ddpm_sample`: Ho et al. 2020, Algorithm 2, on a chain of T steps respaced to
  ``steps`` (Nichol & Dhariwal 2021, Sec. 4), with any reverse variance of
  :mod:`npdiff.reverse_variance`; the last step returns the mean (no noise is added).
* :func:`ddim_sample`: Song, Meng & Ermon 2021, Eq. 12 with the :math:`\sigma_t(\eta)` of
  Eq. 16; eta = 0 is deterministic given x_T, eta = 1 has the ancestral posterior variance.
  Its deterministic part is the exponential integrator's first-order step
  (:func:`npdiff.sample.exp_integrator.ddim_step`). It runs on the respaced chain or, with
  ``grid``, on the times of a grid of :mod:`npdiff.sample.grids` ending at ``t_min`` and then
  at clean data.

``steps`` counts the steps of the chain the sampler walks, one denoiser evaluation each.
"""

from __future__ import annotations

import numpy as np

from .._check import flow_time, one_of, positive_int, real_scalar
from .._progress import progress as bar
from .._validate import chain_step, check_threshold
from ..denoiser import Denoiser
from ..reverse import call_time, chain_for, log_variance_columns, p_mean_log_variance_unchecked, p_mean_variance_unchecked
from ..reverse_variance import EpsMoments, ReverseVariance
from ..schedule import DiscreteSchedule, Schedule
from ..threads import blas_threads
from ..thresholding import IMAGEN_PERCENTILE
from ._checks import check_finite, start
from ._common import Recorder, SampleResult
from .exp_integrator import ddim_step
from .grids import GRIDS, time_grid

__all__ = ["ddim_sample", "ddim_variance", "ddpm_sample"]


@blas_threads()
def ddpm_sample(
    denoiser: Denoiser,
    n: int | None,
    rng: np.random.Generator | int,
    *,
    steps: int = 1000,
    T: int = 1000,
    variance: str = "large",
    threshold: str = "none",
    percentile: float = IMAGEN_PERCENTILE,
    x_T: np.ndarray | None = None,
    t_start: float | None = None,
    record: bool = False,
    progress: bool = False,
    eps_moments: EpsMoments | None = None,
) -> SampleResult:
    r"""Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2).

    .. math::
        x_{t-1} = \tilde\mu_t(x_t, \hat x_0) + \sqrt{\Sigma_t}\, z,\quad z \sim \mathcal N(0, I)
        \ (t > 1),\qquad x_0 = \hat x_0(x_1)

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` defines the chain.
    n : int or None
        The number of samples N (None when ``x_T`` is given).
    rng : np.random.Generator or int
        The only source of randomness: a Generator, or an int seed.
    steps : int
        The number of reverse chain steps, 1..T, one evaluation each (the respaced chain; default: all 1000).
    T : int
        The length of the underlying chain (default 1000).
    variance : str
        ``"large"`` (beta, the default, as in improved-diffusion for fixed variances) or
        ``"small"`` (beta_tilde), which omits the posterior spread :math:`c_1^2\,\mathrm{Cov}[x_0|x_t]`
        that the true reverse kernel carries and so samples too close to the modes (measured:
        ``docs/measurements/variances.md``); ``"analytic"`` (with ``eps_moments``) or ``"trace"`` (per point, one
        divergence per step), the variances of :mod:`npdiff.reverse_variance`.
    threshold : str
        Thresholding of the predicted x_0 at every step (:mod:`npdiff.thresholding`, Saharia et al. 2022,
        Sec. 2.3): ``"none"``, ``"static"`` (clip to [-1, 1], for images) or ``"dynamic"``; with either of
        the last two the data range [-1, 1] also bounds ``"analytic"`` and ``"trace"``. Thresholding changes
        the sampler: its samples have no exact density.
    percentile : float
        The percentile p of ``"dynamic"``, in (0, 1) (default Imagen's 0.995).
    x_T : (N, D) array or None
        Starting noise; drawn from N(0, I) when None.
    t_start : float or None
        Start at this time instead of ``schedule.t_max``: the chain is T steps on [0, ``t_start``] and
        ``x_T`` is the state at ``t_start`` (SDEdit, :mod:`npdiff.edit.sdedit`, passes the noised input).
    record : bool
        Keep the states visited (for plots and animations).
    progress : bool
        A bar on stderr, one step a tick.
    eps_moments : EpsMoments or None
        The per-step :math:`\mathbb E\lVert\epsilon_\theta\rVert^2 / D` that ``"analytic"`` needs
        (:func:`npdiff.reverse_variance.eps_moments`).

    Returns
    -------
    SampleResult
        ``x`` (N, D) and ``nfe == steps``.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample import ddpm_sample
    >>> data = GaussianData(np.array([2.0]), 0.25)
    >>> res = ddpm_sample(data, 2000, np.random.default_rng(0), steps=50)
    >>> print(round(float(res.x.mean()), 1), round(float(res.x.std()), 1), res.nfe)
    2.0 0.5 50
    """
    denoiser, x, rng = start(denoiser, n, rng, x_T)
    t_start = None if t_start is None else flow_time(denoiser.schedule, t_start, "t_start")
    chain = chain_for(denoiser.schedule, T, steps, t_end=t_start)
    threshold, percentile = check_threshold(threshold, percentile)
    x0_max = None if threshold == "none" else 1.0  # thresholding says the data lie in [-1, 1]
    reverse_var = ReverseVariance(chain, variance, eps_moments=eps_moments, x0_max=x0_max)
    rec = Recorder(record)
    rec(x, call_time(chain, chain.T, denoiser.schedule))
    for i in bar(range(chain.T, 0, -1), total=chain.T, desc="ddpm", enabled=progress):
        if i > 1:
            mean, log_var, _, _ = p_mean_log_variance_unchecked(denoiser, x, i, reverse_var, threshold=threshold,
                                                                 percentile=percentile)
            x = mean + np.exp(0.5 * log_variance_columns(log_var)) * rng.standard_normal(x.shape)
        else:  # no noise at the last step: it would only blur the output
            x, _, _ = p_mean_variance_unchecked(denoiser, x, i, chain, threshold=threshold, percentile=percentile)
        check_finite(x, f"at chain step {i}")
        rec(x, float(chain.times[i - 1]))
    return rec.result(x, chain.T)


@blas_threads()
def ddim_sample(
    denoiser: Denoiser,
    n: int | None,
    rng: np.random.Generator | int,
    *,
    steps: int = 250,
    T: int = 1000,
    eta: float = 0.0,
    threshold: str = "none",
    percentile: float = IMAGEN_PERCENTILE,
    x_T: np.ndarray | None = None,
    t_start: float | None = None,
    record: bool = False,
    progress: bool = False,
    grid: str | None = None,
    t_min: float = 1e-3,
) -> SampleResult:
    r"""DDIM sampling (Song, Meng & Ermon 2021).

    .. math::
        x_{t-1} = \sqrt{\bar\alpha_{t-1}}\,\hat x_0
                + \sqrt{1 - \bar\alpha_{t-1} - \sigma_t^2}\;\epsilon_\theta(x_t, t) + \sigma_t z,
        \qquad
        \sigma_t(\eta) = \eta\sqrt{\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}}
                         \sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}}}

    (Eqs. 12 and 16), on the chain of T steps respaced to ``steps``. With eta = 1,
    :math:`\sigma_t^2 = \tilde\beta_t` of the respaced chain and the update is exactly the
    ancestral step of :func:`ddpm_sample`. The deterministic part is the exponential integrator's
    first-order step (:func:`~npdiff.sample.exp_integrator.ddim_step`) to the noise level
    :math:`\sqrt{1 - \bar\alpha_{t-1} - \sigma_t^2}`: with ``threshold`` that is DDIM's update with
    :math:`\epsilon` recomputed from the thresholded :math:`\hat x_0`, as DDIM's reference code does when it clips.

    The default of 250 steps keeps the discretization bias small on sharp data (measured:
    ``docs/measurements/variances.md``).

    With ``grid`` the chain's times are that grid's ``steps`` times from ``t_max`` down to ``t_min``
    (``steps - 1`` grid steps), then clean data: the last evaluation, at ``t_min``, returns
    :math:`\hat x_0` (``T`` is then unused). With eta = 0 that is the ``"ddim"`` of
    :func:`~npdiff.sample.fast_sample` on ``steps - 1`` evaluations followed by its denoising step.

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` defines the chain.
    n : int or None
        The number of samples N (None when ``x_T`` is given).
    rng : np.random.Generator or int
        The only source of randomness: a Generator, or an int seed.
    steps : int
        The number of chain steps, one evaluation each: 1..T on the respaced chain, at least 2 with ``grid``.
    T : int
        The length of the underlying chain (default 1000; unused with ``grid``).
    eta : float
        In [0, 1]: 0 is deterministic, 1 the ancestral posterior variance.
    threshold : str
        Thresholding of the predicted x_0 at every step (:mod:`npdiff.thresholding`, Saharia et al. 2022,
        Sec. 2.3): ``"none"``, ``"static"`` (clip to [-1, 1], for images) or ``"dynamic"``. Thresholding
        changes the sampler: even at eta = 0 it is no longer the probability flow's discretization, and its
        samples have no exact density.
    percentile : float
        The percentile p of ``"dynamic"``, in (0, 1) (default Imagen's 0.995).
    x_T : (N, D) array or None
        Starting noise; drawn from N(0, I) when None.
    t_start : float or None
        Start at this time instead of ``schedule.t_max``: the chain (or the grid) runs from ``t_start`` and
        ``x_T`` is the state there (SDEdit, :mod:`npdiff.edit.sdedit`, passes the noised input).
    record : bool
        Keep the states visited.
    progress : bool
        A bar on stderr, one step a tick.
    grid : str or None
        One of :data:`~npdiff.sample.grids.GRIDS`, or None for the respaced chain.
    t_min : float
        The grid's last time before clean data, in (0, ``schedule.t_max``) (with ``grid`` only).

    Returns
    -------
    SampleResult
        ``x`` (N, D) and ``nfe == steps``.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample import ddim_sample
    >>> data = GaussianData(np.array([2.0]), 0.25)
    >>> res = ddim_sample(data, 2000, np.random.default_rng(0), steps=50)
    >>> print(round(float(res.x.mean()), 1), round(float(res.x.std()), 1), res.nfe)
    2.0 0.5 50
    >>> res = ddim_sample(data, 2000, np.random.default_rng(0), steps=51, grid="log_snr")
    >>> print(round(float(res.x.mean()), 1), round(float(res.x.std()), 1), res.nfe)
    2.0 0.5 51
    """
    denoiser, x, rng = start(denoiser, n, rng, x_T)
    eta = real_scalar(eta, "eta", lo=0.0, hi=1.0)
    t_start = None if t_start is None else flow_time(denoiser.schedule, t_start, "t_start")
    if grid is None:
        chain = chain_for(denoiser.schedule, T, steps, t_end=t_start)
    else:
        positive_int(T, "T")
        chain = _grid_chain(denoiser.schedule, positive_int(steps, "steps", minimum=2), one_of(grid, "grid", GRIDS),
                            flow_time(denoiser.schedule, t_min, "t_min", hi_open=True), t_start)
    threshold, percentile = check_threshold(threshold, percentile)
    rec = Recorder(record)
    rec(x, call_time(chain, chain.T, denoiser.schedule))
    for i in bar(range(chain.T, 0, -1), total=chain.T, desc="ddim", enabled=progress):
        _, _, x0_hat = p_mean_variance_unchecked(denoiser, x, i, chain, threshold=threshold,
                                                   percentile=percentile)
        var = _ddim_variance(chain, i, eta)
        x = ddim_chain_step(x, x0_hat, chain, i, var)
        if var > 0:
            x = x + np.sqrt(var) * rng.standard_normal(x.shape)
        check_finite(x, f"at chain step {i}")
        rec(x, float(chain.times[i - 1]))
    return rec.result(x, chain.T)


def ddim_chain_step(x: np.ndarray, x0_hat: np.ndarray, chain: DiscreteSchedule, i: int, var: float = 0.0) -> np.ndarray:
    r"""The deterministic part of DDIM's step from chain index i to i - 1, on checked arguments.

    .. math:: x_{t-1} = \sqrt{\bar\alpha_{t-1}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t-1} - \sigma_t^2}\;\epsilon_\theta(x_t, t)

    (Song, Meng & Ermon 2021, Eq. 12 without its noise :math:`\sigma_t z`, whose variance is ``var``), written in
    the data form: the predicted noise enters only through ``x0_hat`` (the thresholded one, if any), as the
    exponential integrator's first-order step (:func:`~npdiff.sample.exp_integrator.ddim_step`). Shared by
    :func:`ddim_sample` and the DDIM form of replacement inpainting (:mod:`npdiff.edit.replacement`).
    """
    alpha, alpha_next = np.sqrt(chain.alpha_bar[i]), np.sqrt(chain.alpha_bar[i - 1])
    sigma = np.sqrt(1.0 - chain.alpha_bar[i])
    sigma_next = np.sqrt(max(1.0 - chain.alpha_bar_prev[i] - var, 0.0))  # the noise Eq. 12 keeps
    with np.errstate(divide="ignore"):  # h = inf at clean data, where sigma_next = 0
        h = np.log(alpha_next / sigma_next) - np.log(alpha / sigma)  # step in half_log_snr
    return ddim_step(x, x0_hat, sigma, sigma_next, alpha_next, h)


def _grid_chain(schedule: Schedule, steps: int, grid: str, t_min: float, t_max: float | None = None) -> DiscreteSchedule:
    r"""The chain on times [0, t_min, ..., t_max]: a grid of ``steps - 1`` steps, then clean data (t_max None: the schedule's).

    Its betas are :meth:`~npdiff.schedule.Schedule.chain_betas` at the grid's times, the rule
    :meth:`~npdiff.schedule.Schedule.discretize` applies at uniform times.
    """
    times = np.concatenate([[0.0], time_grid(schedule, steps - 1, grid, t_min, t_max)[::-1]])  # (steps + 1,) increasing
    betas = schedule.chain_betas(times)  # (steps,)
    if 1.0 - betas[0] == 1.0:  # alpha_bar(t_min) rounds to 1: the chain's last step would denoise nothing
        raise ValueError(f"t_min = {t_min!r} is so small that alpha_bar(t_min) rounds to 1 in float64; use a larger t_min")
    return DiscreteSchedule(betas, times=times, name=f"{schedule.name}[{grid}, {steps} steps]")


def ddim_variance(chain: DiscreteSchedule, i: int, eta: float) -> float:
    r""":math:`\sigma_t(\eta)^2` of DDIM (Song, Meng & Ermon 2021, Eq. 16) at chain index i.

    .. math::
        \sigma_t(\eta)^2 = \eta^2\,\frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\Big(1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}}\Big)

    Parameters
    ----------
    chain : DiscreteSchedule
        The chain DDIM walks.
    i : int
        The chain index t, 1..T.
    eta : float
        In [0, 1].

    Returns
    -------
    float
        The variance of the noise DDIM adds at step i; :math:`\tilde\beta_t` at eta = 1.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.sample import ddim_variance
    >>> from npdiff.schedule import vp_linear
    >>> chain = vp_linear().discretize(10)
    >>> bool(np.isclose(ddim_variance(chain, 5, 1.0), chain.posterior_variance[5])), float(ddim_variance(chain, 5, 0.0))
    (True, 0.0)
    """
    i, eta = chain_step(chain, i), real_scalar(eta, "eta", lo=0.0, hi=1.0)
    return _ddim_variance(chain, i, eta)


def _ddim_variance(chain: DiscreteSchedule, i: int, eta: float) -> float:
    ab, ab_prev = chain.alpha_bar[i], chain.alpha_bar_prev[i]
    return eta**2 * (1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev)
