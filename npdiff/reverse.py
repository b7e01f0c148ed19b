r"""The learned reverse step :math:`p_\theta(x_{t-1} \mid x_t)` on a discrete chain.

Shared by the ancestral sampler and the variational bound, so both use the very same
Gaussian:

.. math::
    p_\theta(x_{t-1} \mid x_t) = \mathcal N\big(\tilde\mu_t(x_t, \hat x_0),\ \Sigma_t\big),\qquad
    \hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)}{\sqrt{\bar\alpha_t}}

(Ho et al. 2020, Eqs. 7, 11 and 15: the posterior mean evaluated at the predicted
:math:`x_0`). Its variance is one of four choices, all of the form
:math:`\Sigma_t = \tilde\beta_t + c_{1,t}^2 v_t` with :math:`v_t` a value of the per-dimension
posterior variance of :math:`x_0` (:mod:`npdiff.reverse_variance`):

* ``"small"``: :math:`\Sigma_t = \tilde\beta_t`, the posterior variance, optimal for
  deterministic :math:`x_0`; its log is clipped at t = 1 where :math:`\tilde\beta_1 = 0`;
* ``"large"``: :math:`\Sigma_t = \beta_t`, optimal for :math:`x_0 \sim \mathcal N(0, I)`,
  at every t including t = 1. improved-diffusion's ``fixedlarge`` substitutes
  :math:`\tilde\beta_2` at t = 1; we do not: near t = 0, :math:`\tilde\beta_2 \approx \beta_1/2`
  whatever T is, so that decoder is half as wide as :math:`\mathrm{Cov}[x_0|x_1] \approx \beta_1`
  and loosens the bound at every T (measured: ``docs/measurements/variances.md``). Sampling adds no noise
  at t = 1, so samplers are unaffected by this choice;
* ``"analytic"``: the optimal isotropic variance of Analytic-DPM (Bao et al. 2022, Thm. 1), from
  the per-step average of :math:`\lVert\epsilon_\theta\rVert^2` over training data;
* ``"trace"``: per point, from the exact divergence by Tweedie's second moment.

:func:`p_mean_variance` gives the mean alone (DDIM's step needs no more);
:func:`p_mean_log_variance` the mean and :math:`\log\Sigma_t` of a :class:`ReverseVariance`, calling
the denoiser's ``eps_and_divergence`` when the variance is ``"trace"``.

The chain for T steps respaced to K is :func:`chain_for`: T steps on
[0, ``schedule.t_max``], unclipped, respaced to K; the continuous-time denoiser is
called at ``chain.times[i]``, where the chain's alpha_bar equals the schedule's.

:func:`p_mean_variance` and :func:`p_mean_log_variance` check their arguments (the denoiser too)
and call :func:`p_mean_variance_unchecked` and :func:`p_mean_log_variance_unchecked`, the step
itself; the samplers and the bound check their arguments once, at their door, and call those at
every step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._check import as_integers, flow_time, positive_int
from ._validate import chain_step, check_schedule, check_threshold
from .denoiser import Denoiser, as_denoiser_batch, call_eps, call_eps_and_divergence, call_eps_and_jacobian_diagonal
from .forward import q_posterior_discrete_unchecked
from .parameterization import x0_from_eps
from .reverse_variance import VARIANCES, ReverseVariance, check_variance, reverse_log_variance
from .schedule import DiscreteSchedule, Schedule
from .thresholding import IMAGEN_PERCENTILE, threshold_x0_unchecked

__all__ = ["VARIANCES", "ReverseVariance", "call_time", "chain_for", "check_variance", "log_variance_columns",
           "p_mean_log_variance",
           "p_mean_log_variance_unchecked", "p_mean_variance", "p_mean_variance_unchecked", "reverse_log_variance"]


def chain_for(schedule: Schedule, T: int, steps: int | Sequence[int] | None = None, *,
              t_end: float | None = None) -> DiscreteSchedule:
    r"""The chain of T steps on [0, ``schedule.t_max``] (or [0, ``t_end``]), respaced to ``steps`` when given.

    ``steps`` is a number of evenly spaced steps, or the increasing indices in 1..T of the steps
    to keep (e.g. the trajectory of :func:`npdiff.likelihood.optimal_steps`); see
    :meth:`~npdiff.schedule.DiscreteSchedule.respace`.

    Unclipped, so ``chain.alpha_bar[i] == schedule.alpha_bar(chain.times[i])``: the
    continuous-time denoiser and the chain agree on the noise level at every step (a
    clipped cosine chain ends at alpha_bar 2.4e-9 where the denoiser would be asked
    about 2.4e-6, and the predicted x_0 would be off by a factor ~30).

    Parameters
    ----------
    schedule : Schedule
        The continuous schedule.
    T : int
        The number of steps on [0, ``schedule.t_max``].
    steps : int, sequence of ints or None
        Respace to this many evenly spaced steps, or keep these indices in 1..T; None keeps all T.
    t_end : float or None
        The chain's last time, in (0, ``schedule.t_max``]; None for ``schedule.t_max``. A chain that starts
        below pure noise (SDEdit, :mod:`npdiff.edit.sdedit`): T steps on [0, t_end].

    Returns
    -------
    DiscreteSchedule
        The chain (``chain.kept`` holds the kept indices after respacing).

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.schedule import cosine
    >>> chain = chain_for(cosine(), 1000, 10)
    >>> print(chain.T, chain.kept[:4], round(float(chain.times[-1]), 4))
    10 [  0 100 200 300] 0.999
    """
    schedule, T = check_schedule(schedule), positive_int(T, "T")
    t_end = schedule.t_max if t_end is None else flow_time(schedule, t_end, "t_end")
    chain = schedule.discretize(T, t_end=t_end, clip=False)
    if steps is None:
        return chain
    if isinstance(steps, (list, tuple, np.ndarray)):  # kept indices; respace checks that they increase
        return chain.respace(as_integers(steps, "steps", lo=1, hi=T))
    steps = positive_int(steps, "steps", maximum=T)
    return chain if steps == T else chain.respace(steps)


def call_time(chain: DiscreteSchedule, i: int, schedule: Schedule) -> float:
    r"""The continuous time at which the denoiser is evaluated for chain index i (0..T).

    Parameters
    ----------
    chain : DiscreteSchedule
        The chain.
    i : int
        An index in 0..T.
    schedule : Schedule
        The denoiser's schedule (its ``t_max`` caps the time).

    Returns
    -------
    float
        ``min(chain.times[i], schedule.t_max)``.

    Examples
    --------
    >>> from npdiff.schedule import cosine
    >>> print(call_time(chain_for(cosine(), 100), 100, cosine()))
    0.999
    """
    i, schedule = chain_step(chain, i, lo=0), check_schedule(schedule)
    return _call_time(chain, i, schedule)


def _call_time(chain: DiscreteSchedule, i: int, schedule: Schedule) -> float:
    return float(min(chain.times[i], schedule.t_max))


def p_mean_variance(
    denoiser: Denoiser,
    x: np.ndarray,
    i: int,
    chain: DiscreteSchedule,
    *,
    threshold: str = "none",
    percentile: float = IMAGEN_PERCENTILE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Mean of :math:`p_\theta(x_{i-1}|x_i)` with the predicted noise and clean data.

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol.
    x : (B, D) array
        States at chain index i.
    i : int
        The chain index, 1..T.
    chain : DiscreteSchedule
        The chain (e.g. :func:`chain_for`).
    threshold : str
        Thresholding of :math:`\hat x_0` before the mean is formed, one of
        :data:`~npdiff.thresholding.THRESHOLDS` (``"static"`` clips to the data range [-1, 1]).
    percentile : float
        The percentile p of ``"dynamic"``, in (0, 1).

    Returns
    -------
    mean : (B, D) array
        :math:`\tilde\mu_i(x_i, \hat x_0)`.
    eps : (B, D) array
        The predicted noise.
    x0_hat : (B, D) array
        The predicted clean data.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.schedule import vp_linear
    >>> oracle = GaussianData(np.zeros(2), np.ones(2), vp_linear())
    >>> chain = chain_for(oracle.schedule, 1000, 10)
    >>> mean, eps, x0_hat = p_mean_variance(oracle, np.array([[0.5, -1.0]]), 5, chain)
    >>> print(np.round(mean, 4), np.round(x0_hat, 4))
    [[ 0.3179 -0.6359]] [[ 0.1406 -0.2812]]
    """
    x, i, (threshold, percentile) = as_denoiser_batch(denoiser, x), chain_step(chain, i), check_threshold(threshold, percentile)
    return p_mean_variance_unchecked(denoiser, x, i, chain, threshold=threshold, percentile=percentile)


def p_mean_variance_unchecked(
    denoiser: Denoiser, x: np.ndarray, i: int, chain: DiscreteSchedule, *, threshold: str = "none",
    percentile: float = IMAGEN_PERCENTILE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r""":func:`p_mean_variance` on arguments its caller checked (x (B, D) float64, i an int in 1..T).

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.schedule import vp_linear
    >>> oracle = GaussianData(np.zeros(2), np.ones(2), vp_linear())
    >>> chain = chain_for(oracle.schedule, 1000, 10)
    >>> mean, _, _ = p_mean_variance_unchecked(oracle, np.array([[0.5, -1.0]]), 5, chain)
    >>> print(np.round(mean, 4))
    [[ 0.3179 -0.6359]]
    """
    eps = call_eps(denoiser, x, _call_time(chain, i, denoiser.schedule))  # (B, D)
    mean, x0_hat = _posterior_mean_at_prediction(x, eps, i, chain, threshold, percentile)
    return mean, eps, x0_hat


def _posterior_mean_at_prediction(x: np.ndarray, eps: np.ndarray, i: int, chain: DiscreteSchedule,
                                  threshold: str, percentile: float) -> tuple[np.ndarray, np.ndarray]:
    ab = chain.alpha_bar[i]
    x0_hat = x0_from_eps(x, eps, np.sqrt(ab), np.sqrt(1.0 - ab))  # (B, D) Ho et al. 2020, Eq. 15
    x0_hat = threshold_x0_unchecked(x0_hat, threshold, percentile)  # Saharia et al. 2022, Sec. 2.3
    mean, _, _ = q_posterior_discrete_unchecked(x0_hat, x, i, chain)  # Eq. 7 at the predicted x_0
    return mean, x0_hat


def p_mean_log_variance(
    denoiser: Denoiser,
    x: np.ndarray,
    i: int,
    variance: ReverseVariance,
    *,
    threshold: str = "none",
    percentile: float = IMAGEN_PERCENTILE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Mean and log-variance of :math:`p_\theta(x_{i-1}|x_i) = \mathcal N(\tilde\mu_i(x_i, \hat x_0),\ \Sigma_i I)`.

    The mean is :func:`p_mean_variance`'s; :math:`\Sigma_i` is ``variance``'s choice on its chain
    (:mod:`npdiff.reverse_variance`), per point for ``"trace"``, whose divergence comes from the
    same denoiser call as the mean, and per point and dimension for ``"diagonal"`` (the Jacobian's diagonal,
    D tangents of the denoiser's forward mode).

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol.
    x : (B, D) array
        States at chain index i.
    i : int
        The chain index, 1..T of ``variance.chain``.
    variance : ReverseVariance
        The choice of :math:`\Sigma` on its chain.
    threshold : str
        Thresholding of :math:`\hat x_0` before the mean is formed, one of
        :data:`~npdiff.thresholding.THRESHOLDS` (``"static"`` clips to the data range [-1, 1]).
    percentile : float
        The percentile p of ``"dynamic"``, in (0, 1).

    Returns
    -------
    mean : (B, D) array
        :math:`\tilde\mu_i(x_i, \hat x_0)`.
    log_var : (B,) array, or (B, D) for ``"diagonal"``
        :math:`\log\Sigma_i`, one per point, or one per point and dimension
        (:func:`log_variance_columns` shapes either for the (B, D) mean).
    eps : (B, D) array
        The predicted noise.
    x0_hat : (B, D) array
        The predicted clean data.

    Examples
    --------
    On isotropic Gaussian data ``"trace"`` with the exact denoiser is the true reverse kernel; there
    it equals ``"large"``, :math:`\Sigma_i = \beta_i`:

    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.schedule import vp_linear
    >>> oracle = GaussianData(np.zeros(2), np.ones(2), vp_linear())
    >>> chain = chain_for(oracle.schedule, 1000, 10)
    >>> _, log_var, _, _ = p_mean_log_variance(oracle, np.array([[0.5, -1.0]]), 5, ReverseVariance(chain, "trace"))
    >>> print(np.round(log_var, 4), np.round(np.log(chain.betas[5]), 4))
    [-0.5181] -0.5181
    """
    if not isinstance(variance, ReverseVariance):
        raise TypeError(f"variance must be a ReverseVariance(chain, choice), got {type(variance).__name__}")
    x, i = as_denoiser_batch(denoiser, x), chain_step(variance.chain, i)
    threshold, percentile = check_threshold(threshold, percentile)
    return p_mean_log_variance_unchecked(denoiser, x, i, variance, threshold=threshold, percentile=percentile)


def p_mean_log_variance_unchecked(
    denoiser: Denoiser, x: np.ndarray, i: int, variance: ReverseVariance, *, threshold: str = "none",
    percentile: float = IMAGEN_PERCENTILE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r""":func:`p_mean_log_variance` on arguments its caller checked (x (B, D) float64, i an int in 1..T).

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.schedule import vp_linear
    >>> oracle = GaussianData(np.zeros(2), np.ones(2), vp_linear())
    >>> chain = chain_for(oracle.schedule, 1000, 10)
    >>> variance = ReverseVariance(chain, "large")
    >>> _, log_var, _, _ = p_mean_log_variance_unchecked(oracle, np.array([[0.5, -1.0]]), 5, variance)
    >>> print(np.round(log_var, 4))
    [-0.5181]
    """
    t = _call_time(variance.chain, i, denoiser.schedule)
    derivative = None
    if variance.variance == "diagonal":
        eps, derivative = call_eps_and_jacobian_diagonal(denoiser, x, t)  # (B, D), (B, D)
    elif variance.per_point:
        eps, derivative = call_eps_and_divergence(denoiser, x, t)  # (B, D), (B,)
    else:
        eps = call_eps(denoiser, x, t)  # (B, D)
    mean, x0_hat = _posterior_mean_at_prediction(x, eps, i, variance.chain, threshold, percentile)
    log_var = variance.log_variance_at(i, derivative, x.shape[1])
    shape = x.shape if variance.variance == "diagonal" else (x.shape[0],)
    return mean, np.broadcast_to(log_var, shape), eps, x0_hat


def log_variance_columns(log_var: np.ndarray) -> np.ndarray:
    r"""The log-variance of :func:`p_mean_log_variance` as (B, 1) or (B, D): it broadcasts against the (B, D) mean.

    One number per point, (B,), becomes a column; the per-pixel variance, (B, D), is already a column per pixel.

    Examples
    --------
    >>> import numpy as np
    >>> print(log_variance_columns(np.array([-1.0, -2.0])).shape, log_variance_columns(np.zeros((2, 3))).shape)
    (2, 1) (2, 3)
    """
    return log_var if log_var.ndim == 2 else log_var[:, None]
