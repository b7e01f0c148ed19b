r"""The variance :math:`\Sigma_t` of the reverse Gaussian :math:`p(x_{t-1} \mid x_t)`: five choices, one formula.

The true reverse kernel averages the forward posterior over what :math:`x_t` leaves unknown
about :math:`x_0`:

.. math::
    q(x_{t-1} \mid x_t) = \int q(x_{t-1} \mid x_t, x_0)\, q(x_0 \mid x_t)\, dx_0,\qquad
    q(x_{t-1} \mid x_t, x_0) = \mathcal N(c_{1,t} x_0 + c_{2,t} x_t,\ \tilde\beta_t I)

(Ho et al. 2020, Eq. 7), so by the law of total covariance its covariance is
:math:`\tilde\beta_t I + c_{1,t}^2\,\mathrm{Cov}[x_0 \mid x_t]`. The isotropic Gaussian closest
to it in KL, averaged over :math:`x_t \sim q_t`, has

.. math::
    \Sigma_t = \tilde\beta_t + c_{1,t}^2\, v_t,\qquad v_t = \mathrm{tr}\,\mathrm{Cov}[x_0 \mid x_t] / D

(Bao et al. 2022, Analytic-DPM, Thm. 1, where :math:`v_t` is averaged over :math:`x_t`). Every
choice of npdiff is a value of :math:`v_t`, the per-dimension posterior variance of :math:`x_0`:

* ``"small"``: :math:`v_t = 0`, :math:`\Sigma_t = \tilde\beta_t` (Ho et al. 2020, Sec. 3.2);
* ``"large"``: :math:`v_t = \sigma_t^2`, :math:`\Sigma_t = \beta_t`, exact for :math:`x_0 \sim \mathcal N(0, I)`;
* ``"analytic"``: :math:`v_t = \frac{\sigma_t^2}{\bar\alpha_t}(1 - \Gamma_t)` with
  :math:`\Gamma_t = \mathbb E_{q_t}\lVert\epsilon_\theta(x_t, t)\rVert^2 / D`, estimated once from
  training data (:func:`eps_moments`; Bao et al. 2022, Thm. 1 with the score written as
  :math:`-\epsilon_\theta / \sigma_t`);
* ``"trace"``: per point, :math:`v_t(x_t) = \frac{\sigma_t^2}{\bar\alpha_t}\big(1 - \sigma_t\,
  \mathrm{tr}\,\partial\epsilon_\theta/\partial x\,/ D\big)`, from the exact divergence every
  denoiser of npdiff computes. It is Tweedie's second moment: differentiating
  :math:`\mathbb E[x_0 \mid x_t] = (x_t - \sigma_t\epsilon)/\sqrt{\bar\alpha_t}` gives
  :math:`\mathrm{Cov}[x_0 \mid x_t] = \frac{\sigma_t^2}{\sqrt{\bar\alpha_t}}\,\partial\mathbb E[x_0|x_t]/\partial x_t
  = \frac{\sigma_t^2}{\bar\alpha_t}(I - \sigma_t\,\partial\epsilon/\partial x)` (Efron 2011, Sec. 2).
* ``"diagonal"``: per point and per dimension, the diagonal of that covariance,
  :math:`v_{t,d}(x_t) = \frac{\sigma_t^2}{\bar\alpha_t}\big(1 - \sigma_t\,\partial\epsilon_{\theta,d}/\partial x_d\big)`,
  and :math:`\Sigma_t = \mathrm{diag}(\tilde\beta_t + c_{1,t}^2 v_{t,d})`: Thm. 1's argument run one
  coordinate at a time, the diagonal Gaussian closest in KL to the true kernel (Bao et al. 2022b, who learn
  this diagonal; here it is read off the network's Jacobian, D tangents of its forward mode per point). It
  pays where the dimensions differ in how well :math:`x_t` pins them down: an image's background pixels
  are certain long before its strokes are.

The two learned-free estimates agree on average: integrating by parts,
:math:`\mathbb E_{q_t}\lVert\nabla\log q_t\rVert^2 = -\mathbb E_{q_t}\Delta\log q_t`, so for the exact
denoiser :math:`\Gamma_t = \sigma_t\,\mathbb E_{q_t}[\mathrm{tr}\,\partial\epsilon/\partial x] / D`:
``"analytic"`` is the average of ``"trace"``.

Both estimates are clipped to the bounds of Bao et al. 2022, Thm. 2:
:math:`0 \le v_t \le \sigma_t^2/\bar\alpha_t`, and :math:`v_t \le r^2` when the data lie in
:math:`[-r, r]^D` (``x0_max = r``; 1 for images on [-1, 1]). Any variance that depends on
:math:`x_t` alone keeps the variational bound a bound, so clipping, the Monte Carlo error of
:math:`\Gamma_t` and an imperfect network cost tightness, never validity. At t = 1, where
:math:`\tilde\beta_1 = 0` and :math:`c_{1,1} = 1`, the decoder's variance is :math:`v_1` itself,
kept above :data:`DECODER_FLOOR` times :math:`\sigma_1^2/\bar\alpha_1` so that its log stays finite (not at the
``"small"`` choice's :math:`\tilde\beta_2`, which at small T can exceed :math:`\mathrm{Cov}[x_0|x_1]`
itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ._check import as_float_array, as_float_arrays, as_generator, one_of, positive_int, real_scalar
from ._progress import progress as bar
from ._validate import check_chain
from .denoiser import Denoiser, as_denoiser_batch, call_eps
from .forward import q_sample_discrete_unchecked
from .schedule import DiscreteSchedule

__all__ = [
    "PER_POINT",
    "VARIANCES",
    "EpsMoments",
    "ReverseVariance",
    "check_variance",
    "decoder_floor",
    "eps_at_noised_data",
    "eps_moments",
    "reverse_log_variance",
    "sigma_from_x0_variance",
    "x0_variance_bound",
    "x0_variance_from_divergence",
    "x0_variance_from_eps_moment",
    "x0_variance_from_jacobian_diagonal",
]

VARIANCES = ("small", "large", "analytic", "trace", "diagonal")

#: the choices that depend on the point x_t, not on t alone: the reverse step computes them from the denoiser's
#: derivative there (the divergence for "trace", the Jacobian's diagonal for "diagonal")
PER_POINT = ("trace", "diagonal")


def check_variance(variance: object) -> str:
    r"""Check the choice of reverse variance, one of :data:`VARIANCES`.

    Examples
    --------
    >>> check_variance("analytic")
    'analytic'
    """
    return one_of(variance, "variance", VARIANCES)


def check_x0_max(x0_max: object) -> float | None:
    r"""Check ``x0_max``: None (unbounded data) or the half-width r > 0 of the data's range [-r, r]."""
    return None if x0_max is None else real_scalar(x0_max, "x0_max", lo=0.0, lo_open=True)


def x0_variance_from_divergence(divergence: object, alpha_bar: object, D: int) -> np.ndarray:
    r"""Per point, :math:`\mathrm{tr}\,\mathrm{Cov}[x_0 \mid x_t] / D` by Tweedie's second moment.

    .. math:: v = \frac{1 - \bar\alpha}{\bar\alpha}\Big(1 - \sqrt{1 - \bar\alpha}\;
        \frac{\mathrm{tr}\,\partial\epsilon/\partial x}{D}\Big)

    Exact for the exact denoiser; not clipped (see :class:`ReverseVariance`).

    Parameters
    ----------
    divergence : (B,) array
        :math:`\mathrm{tr}\,\partial\epsilon_\theta/\partial x` at the points.
    alpha_bar : float or (B,) array
        :math:`\bar\alpha_t` in (0, 1].
    D : int
        The data dimension.

    Returns
    -------
    (B,) array
        The per-dimension posterior variance of :math:`x_0`.

    Examples
    --------
    For data N(0, I) the exact eps is :math:`\sigma x`, whose divergence is :math:`\sigma D`: then
    :math:`v = 1 - \bar\alpha`, the variance of :math:`x_0` given :math:`x_t`.

    >>> import numpy as np
    >>> print(np.round(x0_variance_from_divergence(np.array([2 * np.sqrt(0.5)]), 0.5, 2), 4))
    [0.5]
    """
    div, ab = as_float_arrays(like="divergence", divergence=divergence, alpha_bar=alpha_bar)
    return _from_divergence(div, _alpha_bar(ab), positive_int(D, "D"))


def _from_divergence(div: np.ndarray, ab: np.ndarray | float, D: int) -> np.ndarray:
    sigma2 = 1.0 - ab
    return sigma2 / ab * (1.0 - np.sqrt(sigma2) * div / D)


def x0_variance_from_jacobian_diagonal(jacobian_diagonal: object, alpha_bar: object) -> np.ndarray:
    r"""Per point and dimension, :math:`\mathrm{Var}[x_{0,d} \mid x_t]` by Tweedie's second moment.

    .. math:: v_d = \frac{1 - \bar\alpha}{\bar\alpha}\Big(1 - \sqrt{1 - \bar\alpha}\;
        \frac{\partial\epsilon_d}{\partial x_d}\Big)

    The diagonal of :math:`\mathrm{Cov}[x_0 \mid x_t] = \frac{\sigma_t^2}{\bar\alpha_t}(I - \sigma_t\,
    \partial\epsilon/\partial x)` (Efron 2011, Sec. 2); its mean over d is
    :func:`x0_variance_from_divergence`. Exact for the exact denoiser; not clipped (see :class:`ReverseVariance`).

    Parameters
    ----------
    jacobian_diagonal : (B, D) array (elementwise: any shape)
        :math:`\partial\epsilon_{\theta,d}/\partial x_d` at the points
        (:func:`npdiff.denoiser.call_eps_and_jacobian_diagonal`).
    alpha_bar : float or array broadcasting against it
        :math:`\bar\alpha_t` in (0, 1].

    Returns
    -------
    array of the broadcast shape
        The posterior variance of each dimension of :math:`x_0`.

    Examples
    --------
    For data N(0, diag(4, 1/4)) the exact eps is :math:`\sigma (\bar\alpha s + \sigma^2)^{-1} x` per dimension, so
    :math:`v_d = s_d\sigma^2 / (\bar\alpha s_d + \sigma^2)`:

    >>> import numpy as np
    >>> s, ab = np.array([4.0, 0.25]), 0.5
    >>> jac = np.sqrt(1 - ab) / (ab * s + 1 - ab)  # d eps_d / d x_d
    >>> print(np.round(x0_variance_from_jacobian_diagonal(jac[None], ab), 4), np.round(s * 0.5 / (0.5 * s + 0.5), 4))
    [[0.8 0.2]] [0.8 0.2]
    """
    jac, ab = as_float_arrays(like="jacobian_diagonal", jacobian_diagonal=jacobian_diagonal, alpha_bar=alpha_bar)
    return _from_jacobian_diagonal(jac, _alpha_bar(ab))


def _from_jacobian_diagonal(jac: np.ndarray, ab: np.ndarray | float) -> np.ndarray:
    sigma2 = 1.0 - ab
    return sigma2 / ab * (1.0 - np.sqrt(sigma2) * jac)


def x0_variance_from_eps_moment(eps_sq: object, alpha_bar: object) -> np.ndarray:
    r"""Averaged over :math:`x_t \sim q_t`, :math:`\mathbb E\,\mathrm{tr}\,\mathrm{Cov}[x_0 \mid x_t] / D` (Analytic-DPM).

    .. math:: v = \frac{1 - \bar\alpha}{\bar\alpha}\,(1 - \Gamma),\qquad
        \Gamma = \mathbb E_{q_t}\lVert\epsilon_\theta(x_t, t)\rVert^2 / D

    (Bao et al. 2022, Thm. 1). Not clipped (see :class:`ReverseVariance`).

    Parameters
    ----------
    eps_sq : float or (M,) array
        :math:`\Gamma`.
    alpha_bar : float or (M,) array
        :math:`\bar\alpha` in (0, 1].

    Returns
    -------
    (M,) array, or a scalar array
        :math:`v`.

    Examples
    --------
    >>> print(x0_variance_from_eps_moment(0.25, 0.5))
    0.75
    """
    gamma, ab = as_float_arrays(like="eps_sq", eps_sq=eps_sq, alpha_bar=alpha_bar)
    ab = _alpha_bar(ab)
    return (1.0 - ab) / ab * (1.0 - gamma)


def x0_variance_bound(chain: DiscreteSchedule, x0_max: float | None = None) -> np.ndarray:
    r"""The upper bound of :math:`v_t` for t = 0..T, shape (T + 1,) (Bao et al. 2022, Thm. 2).

    .. math:: v_t \le \frac{\sigma_t^2}{\bar\alpha_t},\qquad v_t \le r^2 \text{ for data in } [-r, r]^D

    The first is :math:`\Gamma_t \ge 0`; the second bounds the variance of a variable confined to
    an interval of half-width r. Index 0 (clean data) is 0.

    Parameters
    ----------
    chain : DiscreteSchedule
        The chain.
    x0_max : float or None
        The half-width r of the data's range, or None (unbounded data).

    Returns
    -------
    (T + 1,) array
        The bound at t = 0..T.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.reverse import chain_for
    >>> from npdiff.schedule import vp_linear
    >>> print(np.round(x0_variance_bound(chain_for(vp_linear(), 10), x0_max=1.0)[:4], 4))
    [0.     0.1157 0.5189 1.    ]
    """
    chain, x0_max = check_chain(chain), check_x0_max(x0_max)
    return _x0_variance_bound(chain, x0_max)


def _x0_variance_bound(chain: DiscreteSchedule, x0_max: float | None) -> np.ndarray:
    bound = (1.0 - chain.alpha_bar) / chain.alpha_bar  # (T+1,)
    if x0_max is None:
        return bound
    with np.errstate(over="ignore"):  # a range beyond 1e154 bounds nothing: its square is inf
        return np.minimum(bound, np.square(np.float64(x0_max)))


#: At t = 1, where Thm. 2's lower bound is 0, the decoder's variance is kept above this fraction of
#: sigma_1^2 / alpha_bar_1, only so that its log stays finite.
DECODER_FLOOR = 1e-6


def decoder_floor(alpha_bar: float | np.ndarray) -> float | np.ndarray:
    r"""The least :math:`v` of the decoder's step (to x_0), :data:`DECODER_FLOOR` :math:`\cdot\,\sigma^2/\bar\alpha`.

    The formula on a checked :math:`\bar\alpha` in (0, 1) (float or array, same shape out).

    Examples
    --------
    >>> print(f"{decoder_floor(0.5):.1e}")
    1.0e-06
    """
    return DECODER_FLOOR * (1.0 - alpha_bar) / alpha_bar


def sigma_from_x0_variance(beta_tilde: float | np.ndarray, c1: float | np.ndarray, v: float | np.ndarray,
                           v_max: float | np.ndarray, v_min: float | np.ndarray = 0.0) -> np.ndarray:
    r"""The reverse variance :math:`\Sigma = \tilde\beta + c_1^2 v` with v clipped to [v_min, v_max] (module docstring).

    Bao et al. 2022, Thm. 1 (:math:`\Sigma`) and Thm. 2 (the clip); ``v_min`` > 0 only on the
    decoder's step (:func:`decoder_floor`). The formula on arrays its callers checked; every
    argument broadcasts against the others.

    Parameters
    ----------
    beta_tilde : float or array
        :math:`\tilde\beta` of the step (:func:`npdiff.schedule.posterior_coefficients`).
    c1 : float or array
        The posterior mean's coefficient of :math:`x_0`.
    v : float or array
        The per-dimension posterior variance of :math:`x_0`, before clipping.
    v_max : float or array
        Its upper bound (:func:`x0_variance_bound`).
    v_min : float or array
        Its lower bound (0, or the decoder's floor).

    Returns
    -------
    array of the broadcast shape
        :math:`\Sigma`.

    Examples
    --------
    >>> print(f"{float(sigma_from_x0_variance(0.01, 0.5, 2.0, v_max=1.0)):.4f}")
    0.2600
    """
    return beta_tilde + c1**2 * np.clip(v, v_min, np.maximum(v_min, v_max))


def _sigma_at_step(chain: DiscreteSchedule, i: int, v: np.ndarray, v_max: float) -> np.ndarray:
    v_min = decoder_floor(chain.alpha_bar[1]) if i == 1 else 0.0
    return sigma_from_x0_variance(chain.posterior_variance[i], chain.posterior_mean_coef1[i], v, v_max, v_min)


@dataclass(frozen=True)
class EpsMoments:
    r"""Analytic-DPM's statistic :math:`\Gamma(t) = \mathbb E_{q_t}\lVert\epsilon_\theta(x_t, t)\rVert^2 / D` on a grid of times.

    Made by :func:`eps_moments`. A chain whose times lie within ``times`` reads it there, linearly
    interpolated between grid points (exactly on them: a table made on the chain of 1000 steps
    serves every chain of T steps with T dividing 1000, and their respacings).

    Attributes
    ----------
    times : (M,) array
        Increasing continuous times in (0, 1].
    eps_sq : (M,) array
        :math:`\Gamma` at those times.
    se : (M,) array
        Its Monte Carlo standard error.
    n : int
        Points averaged per time.

    Examples
    --------
    >>> import numpy as np
    >>> moments = EpsMoments(times=np.array([0.1, 0.5]), eps_sq=np.array([0.9, 1.0]), se=np.zeros(2), n=100)
    >>> print(moments.at(np.array([0.3])))
    [0.95]
    """

    times: np.ndarray
    eps_sq: np.ndarray
    se: np.ndarray
    n: int

    def at(self, t: np.ndarray) -> np.ndarray:
        r""":math:`\Gamma` at times ``t`` within ``[times[0], times[-1]]``, linearly interpolated."""
        t = as_float_array(t, "t")
        lo, hi = self.times[0], self.times[-1]
        if t.size and (t.min() < lo * (1 - 1e-12) or t.max() > hi * (1 + 1e-12)):
            raise ValueError(f"eps_moments covers times [{lo:.6g}, {hi:.6g}], but the chain calls the denoiser at "
                             f"times in [{t.min():.6g}, {t.max():.6g}]; estimate it on a chain with more steps")
        return np.interp(t, self.times, self.eps_sq)


def eps_at_noised_data(denoiser: Denoiser, x0: np.ndarray, chain: DiscreteSchedule, rng: np.random.Generator, *,
                       batch_size: int, progress: bool, desc: str) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    r"""For each step i = 1..T of ``chain``: noise every point afresh and evaluate the denoiser there.

    .. math:: x_i^{(n)} = \sqrt{\bar\alpha_i}\,x_0^{(n)} + \sigma_i\,\epsilon^{(n)},\qquad
        \epsilon^{(n)} \sim \mathcal N(0, I)

    (Ho et al. 2020, Eq. 4), ``batch_size`` points per denoiser call at time ``chain.times[i]``. The
    loop of the per-step statistics (:func:`eps_moments`, :func:`npdiff.likelihood.bound_costs`) on
    arguments their doors checked: x0 (N, D) float64, the denoiser, chain and rng checked.

    Yields
    ------
    i : int
        The step.
    xt : (N, D) array
        The noised points.
    eps : (N, D) array
        :math:`\epsilon_\theta(x_i, t_i)`.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.reverse import chain_for
    >>> from npdiff.schedule import vp_linear
    >>> oracle = GaussianData(np.zeros(2), np.ones(2), vp_linear())
    >>> x0, chain = np.zeros((3, 2)), chain_for(oracle.schedule, 10)
    >>> steps = [(i, xt.shape) for i, xt, eps in eps_at_noised_data(oracle, x0, chain, np.random.default_rng(0),
    ...                                                             batch_size=2, progress=False, desc="")]
    >>> print(steps[0], len(steps))
    (1, (3, 2)) 10
    """
    times = np.minimum(chain.times[1:], denoiser.schedule.t_max)  # (T,)
    for i in bar(range(1, chain.T + 1), total=chain.T, desc=desc, enabled=progress):
        xt, eps = np.empty_like(x0), np.empty_like(x0)  # (N, D)
        for lo in range(0, x0.shape[0], batch_size):
            x = x0[lo : lo + batch_size]  # (b, D)
            xt[lo : lo + batch_size] = q_sample_discrete_unchecked(x, i, rng.standard_normal(x.shape), chain)
            eps[lo : lo + batch_size] = call_eps(denoiser, xt[lo : lo + batch_size], float(times[i - 1]))
        yield i, xt, eps


def eps_moments(
    denoiser: Denoiser,
    x0: object,
    chain: DiscreteSchedule,
    rng: np.random.Generator,
    *,
    batch_size: int = 4096,
    progress: bool = False,
) -> EpsMoments:
    r""":math:`\Gamma_t = \mathbb E\lVert\epsilon_\theta(x_t, t)\rVert^2 / D` at every time of ``chain``, from training data.

    .. math:: \Gamma_t \approx \frac{1}{N D}\sum_{n=1}^N \lVert\epsilon_\theta(\sqrt{\bar\alpha_t}\,x_0^{(n)}
        + \sigma_t\,\epsilon^{(n)}, t)\rVert^2,\qquad \epsilon^{(n)} \sim \mathcal N(0, I)

    (Bao et al. 2022, Sec. 3: the Monte Carlo estimate of Thm. 1's expectation, computed once per
    model). Use training data: estimated on the points it then scores, the bound would no longer be
    one.

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol.
    x0 : (N, D) array
        Clean training data; every point is noised afresh at every time.
    chain : DiscreteSchedule
        The times at which to estimate, ``chain.times[1:]`` (e.g. ``reverse.chain_for(schedule, 1000)``).
    rng : np.random.Generator or int
        Draws the noise.
    batch_size : int
        Points per denoiser call.
    progress : bool
        A bar on stderr, one step a tick.

    Returns
    -------
    EpsMoments
        M = T entries.

    Examples
    --------
    For data N(0, I) the exact eps is :math:`\sigma_t x_t`, so :math:`\Gamma_t = \sigma_t^2 = 1 - \bar\alpha_t`:

    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.reverse import chain_for
    >>> from npdiff.schedule import vp_linear
    >>> oracle = GaussianData(np.zeros(2), np.ones(2), vp_linear())
    >>> x0, chain = oracle.sample(4000, np.random.default_rng(0)), chain_for(oracle.schedule, 10)
    >>> moments = eps_moments(oracle, x0, chain, np.random.default_rng(1))
    >>> print(moments.times.shape, bool(np.all(np.abs(moments.eps_sq - (1 - chain.alpha_bar[1:])) < 5 * moments.se)))
    (10,) True
    """
    x0 = as_denoiser_batch(denoiser, x0, "x0")
    chain, rng = check_chain(chain), as_generator(rng)
    batch_size = positive_int(batch_size, "batch_size")
    N, D = x0.shape
    eps_sq, se = np.empty(chain.T), np.empty(chain.T)
    for i, _, eps in eps_at_noised_data(denoiser, x0, chain, rng, batch_size=batch_size, progress=progress,
                                        desc="eps moments"):
        per_point = np.sum(eps**2, axis=1) / D  # (N,)
        eps_sq[i - 1] = per_point.mean()
        se[i - 1] = per_point.std(ddof=1) / np.sqrt(N) if N > 1 else np.inf
    times = np.minimum(chain.times[1:], denoiser.schedule.t_max)  # (T,)
    return EpsMoments(times=times, eps_sq=eps_sq, se=se, n=N)


class ReverseVariance:
    r"""One choice of :math:`\Sigma_t` (see the module docstring) bound to one chain.

    Parameters
    ----------
    chain : DiscreteSchedule
        The discrete chain the reverse process runs on.
    variance : str
        One of :data:`VARIANCES`.
    eps_moments : EpsMoments or None
        :math:`\Gamma` covering the chain's times; required by ``"analytic"``.
    x0_max : float or None
        The data lie in [-x0_max, x0_max]^D (Thm. 2's bounded case), or None.

    Attributes
    ----------
    log_var : (T + 1,) array or None
        :math:`\log\Sigma_t` of the choices that depend on t alone; None for those of :data:`~npdiff.reverse_variance.PER_POINT`.
    v_max : (T + 1,) array
        The upper bound of :math:`v_t` (:func:`~npdiff.reverse_variance.x0_variance_bound`).
    per_point : bool
        True for the choices of :data:`~npdiff.reverse_variance.PER_POINT`: ``"trace"`` needs the divergence at each point,
        ``"diagonal"`` the Jacobian's diagonal.

    Examples
    --------
    ``"large"`` is :math:`\Sigma_t = \beta_t`:

    >>> import numpy as np
    >>> from npdiff.reverse import chain_for
    >>> from npdiff.schedule import vp_linear
    >>> chain = chain_for(vp_linear(), 10)
    >>> large = ReverseVariance(chain, "large")
    >>> print(large, bool(np.allclose(np.exp(large.log_var[1:]), chain.betas[1:])))
    ReverseVariance('large', T=10, x0_max=None) True
    """

    def __init__(self, chain: DiscreteSchedule, variance: str, *, eps_moments: EpsMoments | None = None,
                 x0_max: float | None = None) -> None:
        self.chain, self.variance, self.x0_max = check_chain(chain), check_variance(variance), check_x0_max(x0_max)
        if eps_moments is not None and not isinstance(eps_moments, EpsMoments):
            raise TypeError(f"eps_moments must be an EpsMoments (from reverse_variance.eps_moments) or None, "
                            f"got {type(eps_moments).__name__}")
        if variance == "analytic" and eps_moments is None:
            raise ValueError("variance 'analytic' needs eps_moments, the per-step E||eps||^2 / D estimated once from "
                             "training data: pass eps_moments=reverse_variance.eps_moments(denoiser, x_train, chain, rng)")
        self.eps_moments = eps_moments
        self.v_max = _x0_variance_bound(self.chain, self.x0_max)  # (T+1,)
        self.per_point = variance in PER_POINT
        self.log_var = None if self.per_point else self._table()

    def _table(self) -> np.ndarray:
        chain = self.chain
        if self.variance == "small":
            return chain.posterior_log_variance_clipped
        if self.variance == "large":
            large = chain.betas.copy()
            large[0] = large[1]  # index 0 has no reverse step; keep the array finite
            return np.log(large)
        ab = chain.alpha_bar[1:]
        v = x0_variance_from_eps_moment(self.eps_moments.at(chain.times[1:]), ab)  # (T,) Bao et al. 2022, Thm. 1
        sigma = [_sigma_at_step(chain, i, v[i - 1], self.v_max[i]) for i in range(1, chain.T + 1)]
        return np.log(np.concatenate([[sigma[0]], sigma]))  # index 0 unused; keep it finite

    def log_variance_at(self, i: int, derivative: np.ndarray | None, D: int) -> np.ndarray:
        r""":math:`\log\Sigma_i`: a scalar for the choices of t alone; (B,) for ``"trace"`` from the (B,) divergence
        at the points; (B, D) for ``"diagonal"`` from the (B, D) Jacobian diagonal there.

        The caller (the reverse step) has checked i and the derivative.
        """
        if not self.per_point:
            return self.log_var[i]
        if self.variance == "diagonal":
            v = _from_jacobian_diagonal(derivative, self.chain.alpha_bar[i])  # (B, D) Tweedie, one dimension at a time
        else:
            v = _from_divergence(derivative, self.chain.alpha_bar[i], D)  # (B,) Tweedie's second moment
        return np.log(_sigma_at_step(self.chain, i, v, self.v_max[i]))

    def __repr__(self) -> str:
        return f"ReverseVariance({self.variance!r}, T={self.chain.T}, x0_max={self.x0_max})"


def reverse_log_variance(chain: DiscreteSchedule, variance: str, *, eps_moments: EpsMoments | None = None,
                         x0_max: float | None = None) -> np.ndarray:
    r""":math:`\log\Sigma_t` for every t in 0..T, shape (T + 1,) (index 0 unused), of a choice that depends on t alone.

    ``"trace"`` and ``"diagonal"`` depend on the point: use :class:`ReverseVariance` with the reverse step of
    :func:`npdiff.reverse.p_mean_log_variance`.

    Parameters
    ----------
    chain : DiscreteSchedule
        The chain.
    variance : str
        ``"small"``, ``"large"`` or ``"analytic"``.
    eps_moments : EpsMoments or None
        Required by ``"analytic"``.
    x0_max : float or None
        The half-width of the data's range, or None.

    Returns
    -------
    (T + 1,) array
        :math:`\log\Sigma_t`.

    Examples
    --------
    ``"small"`` is the posterior's variance :math:`\tilde\beta_t`, clipped at t = 1 to :math:`\tilde\beta_2`:

    >>> import numpy as np
    >>> from npdiff.reverse import chain_for
    >>> from npdiff.schedule import vp_linear
    >>> chain = chain_for(vp_linear(), 10)
    >>> print(np.round(np.exp(reverse_log_variance(chain, "small")[1:4]), 5), np.round(chain.posterior_variance[1:4], 5))
    [0.08059 0.08059 0.22524] [0.      0.08059 0.22524]
    """
    if check_variance(variance) in PER_POINT:
        raise ValueError(f"variance {variance!r} is per point (it needs the denoiser's derivative at each x_t), so it has "
                         "no table over t: use ReverseVariance with reverse.p_mean_log_variance")
    return ReverseVariance(chain, variance, eps_moments=eps_moments, x0_max=x0_max).log_var


def _alpha_bar(ab: np.ndarray) -> np.ndarray:
    if ab.size and (ab.min() <= 0.0 or ab.max() > 1.0):
        raise ValueError(f"alpha_bar must lie in (0, 1], got values in [{ab.min()}, {ab.max()}]")
    return ab
