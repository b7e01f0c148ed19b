r"""The forward (noising) process and its closed-form posteriors.

Continuous time (any schedule, times in [0, 1]):

* :func:`q_xt_x0`, :func:`q_sample`: :math:`q(x_t|x_0)` (Ho et al. 2020, Eq. 4);
* :func:`q_xt_xs`: :math:`q(x_t|x_s)` for s <= t (Kingma et al. 2021, Sec. 3.1);
* :func:`q_posterior`: :math:`q(x_s|x_t, x_0)` for s < t (Kingma et al. 2021, Sec. 3.3; Ho et al. 2020, Eqs. 6-7
  is the special case of neighbouring steps).

The discrete chain (a :class:`~npdiff.schedule.DiscreteSchedule`, integer t in 0..T):

* :func:`q_xt_x0_discrete`, :func:`q_sample_discrete`: :math:`q(x_t|x_0)` with :math:`\bar\alpha_t`;
* :func:`q_xt_xtm1`: one forward step :math:`q(x_t|x_{t-1})` (Ho et al. 2020, Eq. 2);
* :func:`q_posterior_discrete`: :math:`q(x_{t-1}|x_t, x_0)` (Ho et al. 2020, Eqs. 6-7).

Shapes: data (B, D); times a float/int or a (B,) array; variances returned as (B, 1)
so they broadcast against (B, D) without surprises.

Each public function checks its arguments in one line and then computes. Where another
module's loop needs a formula at every step (the trainer, the variational bound, the reverse
step), it checked its arguments once at its own door and calls the formula function of the same
name with ``_unchecked`` appended (:func:`q_sample_unchecked`, :func:`q_xt_x0_discrete_unchecked`,
:func:`q_sample_discrete_unchecked`, :func:`q_posterior_discrete_unchecked`): the same arguments,
already float64 and checked (t may also be a single index), and no checks. The posterior's
coefficients are :func:`npdiff.schedule.posterior_coefficients`, the chain's and the continuous
pair's alike.
"""

from __future__ import annotations

import numpy as np

from ._validate import batch_at_steps, batch_at_times, batch_between_times
from .schedule import DiscreteSchedule, Schedule, posterior_coefficients

__all__ = [
    "q_posterior",
    "q_posterior_discrete",
    "q_posterior_discrete_unchecked",
    "q_sample",
    "q_sample_discrete",
    "q_sample_discrete_unchecked",
    "q_sample_unchecked",
    "q_xt_x0",
    "q_xt_x0_discrete",
    "q_xt_x0_discrete_unchecked",
    "q_xt_xs",
    "q_xt_xtm1",
]


# -- continuous time ------------------------------------------------------------


def q_xt_x0(x0: object, t: object, schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and variance of :math:`q(x_t|x_0) = \mathcal N(\sqrt{\bar\alpha(t)}x_0, (1-\bar\alpha(t))I)`.

    Ho et al. 2020, Eq. 4 (in continuous time: Song et al. 2021, Eq. 29).

    Parameters
    ----------
    x0 : (B, D) array
        Clean data.
    t : float or (B,) array
        Times in [0, 1].
    schedule : Schedule
        The forward process.

    Returns
    -------
    mean : (B, D) array
        :math:`\sqrt{\bar\alpha(t)}\,x_0`.
    var : (B, 1) array
        :math:`1 - \bar\alpha(t)`, by ``expm1`` (no cancellation at small t).

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.schedule import vp_linear
    >>> mean, var = q_xt_x0(np.array([[1.0, -2.0]]), 0.5, vp_linear())
    >>> print(np.round(mean, 4), np.round(var, 4))
    [[ 0.2812 -0.5624]] [[0.9209]]
    """
    x0, t = batch_at_times(schedule, t, x0=x0)
    return _q_xt_x0(x0, t, schedule)


def _q_xt_x0(x0: np.ndarray, t: np.ndarray, schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
    log_ab = schedule.log_alpha_bar(t)[:, None]  # (B, 1)
    return np.exp(0.5 * log_ab) * x0, -np.expm1(log_ab)  # 1 - alpha_bar without cancellation at small t


def q_sample(x0: object, t: object, eps: object, schedule: Schedule) -> np.ndarray:
    r"""Draw :math:`x_t \sim q(x_t|x_0)` by reparameterization.

    .. math:: x_t = \sqrt{\bar\alpha(t)}\, x_0 + \sqrt{1 - \bar\alpha(t)}\, \epsilon

    Ho et al. 2020, Eq. 4 (closed-form marginal of the forward process).

    Parameters
    ----------
    x0 : (B, D) array
        Clean data.
    t : float or (B,) array
        Times in [0, 1].
    eps : (B, D) array
        Standard normal noise, drawn by the caller from its Generator.
    schedule : Schedule
        The forward process.

    Returns
    -------
    (B, D) array
        The noised data :math:`x_t`.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.schedule import vp_linear
    >>> x0, eps = np.array([[1.0, -2.0]]), np.array([[0.1, 0.3]])
    >>> print(np.round(q_sample(x0, 0.5, eps, vp_linear()), 4))
    [[ 0.3771 -0.2745]]
    """
    x0, eps, t = batch_at_times(schedule, t, x0=x0, eps=eps)
    return q_sample_unchecked(x0, t, eps, schedule)


def q_sample_unchecked(x0: np.ndarray, t: np.ndarray, eps: np.ndarray, schedule: Schedule) -> np.ndarray:
    r""":func:`q_sample`'s formula on arguments its caller checked: x0, eps (B, D) float64, t (B,) float64.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.schedule import vp_linear
    >>> x0, eps = np.array([[1.0, -2.0]]), np.array([[0.1, 0.3]])
    >>> print(np.round(q_sample_unchecked(x0, np.array([0.5]), eps, vp_linear()), 4))
    [[ 0.3771 -0.2745]]
    """
    mean, var = _q_xt_x0(x0, t, schedule)
    return mean + np.sqrt(var) * eps


def q_xt_xs(xs: object, s: object, t: object, schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and variance of the transition :math:`q(x_t|x_s)`, s <= t.

    .. math:: q(x_t|x_s) = \mathcal N\big(\sqrt{\bar\alpha_{t|s}}\,x_s,\ (1 - \bar\alpha_{t|s}) I\big),
        \qquad \bar\alpha_{t|s} = \bar\alpha(t) / \bar\alpha(s)

    Kingma et al. 2021, Sec. 3.1 (with :math:`\alpha^2 = \bar\alpha`, :math:`\sigma^2 = 1 - \bar\alpha`).

    Parameters
    ----------
    xs : (B, D) array
        The state at time s.
    s : float or (B,) array
        Earlier times in [0, 1].
    t : float or (B,) array
        Later times, s <= t <= 1.
    schedule : Schedule
        The forward process.

    Returns
    -------
    mean : (B, D) array
        :math:`\sqrt{\bar\alpha_{t|s}}\,x_s`.
    var : (B, 1) array
        :math:`1 - \bar\alpha_{t|s}`.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.schedule import vp_linear
    >>> mean, var = q_xt_xs(np.array([[1.0, -2.0]]), 0.2, 0.5, vp_linear())
    >>> print(np.round(mean, 4), np.round(var, 4))
    [[ 0.3465 -0.6931]] [[0.8799]]
    """
    xs, s, t = batch_between_times(schedule, s, t, strict=False, xs=xs)
    log_ats = (schedule.log_alpha_bar(t) - schedule.log_alpha_bar(s))[:, None]  # (B, 1) log alpha_{t|s} <= 0
    return np.exp(0.5 * log_ats) * xs, -np.expm1(log_ats)


def q_posterior(
    x0: object, xt: object, s: object, t: object, schedule: Schedule
) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and variance of the posterior :math:`q(x_s|x_t, x_0)` for continuous s < t.

    .. math::
        \tilde\mu = \frac{\sqrt{\bar\alpha_s}(1 - \bar\alpha_{t|s})}{1 - \bar\alpha_t} x_0
                  + \frac{\sqrt{\bar\alpha_{t|s}}(1 - \bar\alpha_s)}{1 - \bar\alpha_t} x_t,
        \qquad
        \tilde\sigma^2 = \frac{(1 - \bar\alpha_{t|s})(1 - \bar\alpha_s)}{1 - \bar\alpha_t}

    Kingma et al. 2021, Sec. 3.3 (Ho et al. 2020, Eq. 7 for neighbouring steps). At
    s = 0 on a schedule with :math:`\bar\alpha(0) = 1` the variance is exactly 0 and the
    mean is :math:`x_0`.

    The coefficients are :func:`npdiff.schedule.posterior_coefficients` (``expm1`` throughout, so
    close pairs s -> t keep their digits).

    Parameters
    ----------
    x0 : (B, D) array
        Clean data.
    xt : (B, D) array
        The state at time t.
    s : float or (B,) array
        Earlier times, 0 <= s < t.
    t : float or (B,) array
        Later times, t <= 1.
    schedule : Schedule
        The forward process.

    Returns
    -------
    mean : (B, D) array
        :math:`\tilde\mu`.
    var : (B, 1) array
        :math:`\tilde\sigma^2`.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.schedule import vp_linear
    >>> mean, var = q_posterior(np.array([[1.0, -2.0]]), np.array([[0.5, -0.5]]), 0.2, 0.5, vp_linear())
    >>> print(np.round(mean, 4), np.round(var, 4))
    [[ 0.8395 -1.6148]] [[0.3264]]
    """
    x0, xt, s, t = batch_between_times(schedule, s, t, strict=True, x0=x0, xt=xt)
    log_ab_s = schedule.log_alpha_bar(s)[:, None]  # (B, 1)
    var, coef_x0, coef_xt = posterior_coefficients(log_ab_s, schedule.log_alpha_bar(t)[:, None] - log_ab_s)  # (B, 1)
    return coef_x0 * x0 + coef_xt * xt, var


# -- the discrete chain ------------------------------------------------------------
# The cores index the chain's (T + 1,) arrays with t, an int or a (B,) array of ints:
# ``a[t][..., None]`` is then (1,) or (B, 1), broadcasting against (B, D) either way.


def q_xt_x0_discrete(x0: object, t: object, chain: DiscreteSchedule) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and variance of :math:`q(x_t|x_0) = \mathcal N(\sqrt{\bar\alpha_t}x_0, (1-\bar\alpha_t)I)`, t in 0..T.

    Ho et al. 2020, Eq. 4.

    Parameters
    ----------
    x0 : (B, D) array
        Clean data.
    t : int or (B,) array of ints
        Chain indices in 0..T.
    chain : DiscreteSchedule
        The discrete chain.

    Returns
    -------
    mean : (B, D) array
        :math:`\sqrt{\bar\alpha_t}\,x_0`.
    var : (B, 1) array
        :math:`1 - \bar\alpha_t`.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.schedule import ddpm_linear
    >>> mean, var = q_xt_x0_discrete(np.array([[1.0, -2.0]]), 500, ddpm_linear(1000))
    >>> print(np.round(mean, 4), np.round(var, 4))
    [[ 0.2803 -0.5607]] [[0.9214]]
    """
    x0, t = batch_at_steps(chain, t, x0=x0)
    return q_xt_x0_discrete_unchecked(x0, t, chain)


def q_xt_x0_discrete_unchecked(x0: np.ndarray, t: int | np.ndarray, chain: DiscreteSchedule) -> tuple[np.ndarray, np.ndarray]:
    r""":func:`q_xt_x0_discrete`'s formula on checked arguments; t an int or (B,) int64 in 0..T.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.schedule import ddpm_linear
    >>> mean, var = q_xt_x0_discrete_unchecked(np.array([[1.0, -2.0]]), 500, ddpm_linear(1000))
    >>> print(np.round(var, 4))
    [0.9214]
    """
    ab = chain.alpha_bar[t][..., None]  # (B, 1) or (1,)
    return np.sqrt(ab) * x0, 1.0 - ab


def q_sample_discrete(x0: object, t: object, eps: object, chain: DiscreteSchedule) -> np.ndarray:
    r"""Draw :math:`x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon` on the chain (Ho et al. 2020, Eq. 4).

    Parameters
    ----------
    x0 : (B, D) array
        Clean data.
    t : int or (B,) array of ints
        Chain indices in 0..T.
    eps : (B, D) array
        Standard normal noise, drawn by the caller.
    chain : DiscreteSchedule
        The discrete chain.

    Returns
    -------
    (B, D) array
        :math:`x_t`.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.schedule import ddpm_linear
    >>> x0, eps = np.array([[1.0, -2.0]]), np.array([[0.1, 0.3]])
    >>> print(np.round(q_sample_discrete(x0, 500, eps, ddpm_linear(1000)), 4))
    [[ 0.3763 -0.2727]]
    """
    x0, eps, t = batch_at_steps(chain, t, x0=x0, eps=eps)
    return q_sample_discrete_unchecked(x0, t, eps, chain)


def q_sample_discrete_unchecked(x0: np.ndarray, t: int | np.ndarray, eps: np.ndarray, chain: DiscreteSchedule) -> np.ndarray:
    r""":func:`q_sample_discrete`'s formula on checked arguments; t an int or (B,) int64 in 0..T.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.schedule import ddpm_linear
    >>> x0, eps = np.array([[1.0, -2.0]]), np.array([[0.1, 0.3]])
    >>> print(np.round(q_sample_discrete_unchecked(x0, 500, eps, ddpm_linear(1000)), 4))
    [[ 0.3763 -0.2727]]
    """
    mean, var = q_xt_x0_discrete_unchecked(x0, t, chain)
    return mean + np.sqrt(var) * eps


def q_xt_xtm1(x_prev: object, t: object, chain: DiscreteSchedule) -> tuple[np.ndarray, np.ndarray]:
    r"""Mean and variance of one forward step :math:`q(x_t|x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}x_{t-1}, \beta_t I)`.

    Ho et al. 2020, Eq. 2.

    Parameters
    ----------
    x_prev : (B, D) array
        :math:`x_{t-1}`.
    t : int or (B,) array of ints
        Chain indices in 1..T.
    chain : DiscreteSchedule
        The discrete chain.

    Returns
    -------
    mean : (B, D) array
        :math:`\sqrt{1 - \beta_t}\,x_{t-1}`.
    var : (B, 1) array
        :math:`\beta_t`.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.schedule import ddpm_linear
    >>> mean, var = q_xt_xtm1(np.array([[1.0, -2.0]]), 1, ddpm_linear(1000))
    >>> print(np.round(mean, 6), var)
    [[ 0.99995 -1.9999 ]] [[0.0001]]
    """
    x_prev, t = batch_at_steps(chain, t, lo=1, x_prev=x_prev)
    return np.sqrt(chain.alphas[t])[:, None] * x_prev, chain.betas[t][:, None]


def q_posterior_discrete(
    x0: object, xt: object, t: object, chain: DiscreteSchedule
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Posterior :math:`q(x_{t-1}|x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I)`, t in 1..T.

    .. math::
        \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}x_0
                    + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t,\qquad
        \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t

    Ho et al. 2020, Eqs. 6-7 (improved-diffusion's ``q_posterior_mean_variance``); the
    coefficients are those the chain precomputes. At t = 1 the mean is :math:`x_0` and the
    variance 0.

    Parameters
    ----------
    x0 : (B, D) array
        Clean data.
    xt : (B, D) array
        The state at index t.
    t : int or (B,) array of ints
        Chain indices in 1..T.
    chain : DiscreteSchedule
        The discrete chain.

    Returns
    -------
    mean : (B, D) array
        :math:`\tilde\mu_t`.
    var : (B, 1) array
        :math:`\tilde\beta_t`.
    log_var_clipped : (B, 1) array
        Its log, finite at t = 1 (see
        :attr:`~npdiff.schedule.DiscreteSchedule.posterior_log_variance_clipped`).

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.schedule import ddpm_linear
    >>> mean, var, log_var = q_posterior_discrete(np.array([[1.0, -2.0]]), np.array([[0.5, -0.5]]), 2, ddpm_linear(1000))
    >>> print(np.round(mean, 4), f"{var[0, 0]:.4e}", np.round(log_var, 3))
    [[ 0.7726 -1.3179]] 5.4532e-05 [[-9.817]]
    """
    x0, xt, t = batch_at_steps(chain, t, lo=1, x0=x0, xt=xt)
    return q_posterior_discrete_unchecked(x0, xt, t, chain)


def q_posterior_discrete_unchecked(
    x0: np.ndarray, xt: np.ndarray, t: int | np.ndarray, chain: DiscreteSchedule
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r""":func:`q_posterior_discrete`'s formula on checked arguments; t an int or (B,) int64 in 1..T.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.schedule import ddpm_linear
    >>> x0, xt = np.array([[1.0, -2.0]]), np.array([[0.5, -0.5]])
    >>> print(np.round(q_posterior_discrete_unchecked(x0, xt, 2, ddpm_linear(1000))[0], 4))
    [[ 0.7726 -1.3179]]
    """
    mean = chain.posterior_mean_coef1[t][..., None] * x0 + chain.posterior_mean_coef2[t][..., None] * xt  # Eq. 7
    return mean, chain.posterior_variance[t][..., None], chain.posterior_log_variance_clipped[t][..., None]
