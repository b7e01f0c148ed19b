r"""The discrete variational bound of a continuous-time denoiser, on a chain of T steps.

.. math::
    -\log p_\theta(x_0) \le L = \underbrace{\mathrm{KL}(q(x_T|x_0)\,\|\,\mathcal N(0, I))}_{L_T}
      + \sum_{t=2}^{T}\underbrace{\mathbb E_q\,\mathrm{KL}(q(x_{t-1}|x_t, x_0)\,\|\,p_\theta(x_{t-1}|x_t))}_{L_{t-1}}
      \underbrace{-\ \mathbb E_q\log p_\theta(x_0|x_1)}_{L_0}

(Ho et al. 2020, Eq. 5; Sohl-Dickstein et al. 2015, Eq. 14). Every KL is between two
Gaussians and is taken in closed form (:func:`npdiff.gaussian.kl_normal_diag`); the
expectation over :math:`x_t \sim q(x_t|x_0)` is estimated with one fresh draw per term, as
improved-diffusion's ``calc_bpd_loop`` does. The reverse Gaussians are those of
:mod:`npdiff.reverse` on :func:`npdiff.reverse.chain_for`, with any of the variances of
:mod:`npdiff.reverse_variance`; each depends on :math:`x_t` alone (``"trace"`` on the point,
the others on t), so each KL stays closed-form and L stays a bound.

The decoder :math:`L_0` is the discretized Gaussian for K-level data (Ho et al. 2020, Eq. 13),
or a Gaussian density for continuous data.

**Which variance.** With ``"large"`` (:math:`\Sigma_t = \beta_t`) the bound tightens as T
grows. With ``"small"`` (:math:`\Sigma_t = \tilde\beta_t`) it need not: the true reverse
kernel :math:`q(x_{t-1}|x_t)` has variance :math:`\tilde\beta_t + c_{1,t}^2\,\mathrm{Cov}[x_0|x_t]`,
and near t = 0, where :math:`\mathrm{Cov}[x_0|x_t] \approx 1 - \bar\alpha_t`, the omitted part is
as large as :math:`\tilde\beta_t` itself, so each of the first steps charges about
:math:`1/(2(t-1))` nats per dimension whatever T is (a harmonic sum that does not vanish
with T; measured: ``docs/measurements/variances.md``). ``"analytic"`` and ``"trace"`` put that part back,
from the network itself; on isotropic Gaussian data ``"trace"`` with the exact denoiser is the
true reverse kernel, and the bound exceeds the entropy only by the prior's mismatch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._check import as_generator, positive_int
from .._progress import progress as bar
from ..denoiser import Denoiser, as_denoiser_batch
from ..forward import q_posterior_discrete_unchecked, q_sample_discrete_unchecked, q_xt_x0_discrete_unchecked
from ..gaussian import (
    data_to_levels,
    discretized_gaussian_log_likelihood_unchecked,
    kl_normal_diag_unchecked,
    log_normal_diag_unchecked,
)
from ..reverse import chain_for, log_variance_columns, p_mean_log_variance_unchecked
from ..reverse_variance import EpsMoments, ReverseVariance
from ..schedule import DiscreteSchedule, Schedule
from ..threads import blas_threads
from ._validate import check_bound_grid

__all__ = ["VLBResult", "bound_chain", "vlb"]


@dataclass
class VLBResult:
    r"""Result of :func:`vlb`, per point in nats.

    Attributes
    ----------
    total : (B,) the bound :math:`L` (an upper bound on :math:`-\log p_\theta(x_0)`).
    prior : (B,) :math:`L_T`.
    decoder : (B,) :math:`L_0`.
    terms : (B, K + 1) for a chain of K steps (T, or ``steps`` after respacing): column k holds
        :math:`L_k` (k = 0 decoder, 1..K-1 the KL terms, K the prior).
    nfe : denoiser evaluations.
    """

    total: np.ndarray
    prior: np.ndarray
    decoder: np.ndarray
    terms: np.ndarray
    nfe: int


@blas_threads()
def vlb(
    denoiser: Denoiser,
    x0: object,
    T: int = 1000,
    *,
    rng: np.random.Generator | int,
    variance: str = "large",
    K: int | None = None,
    progress: bool = False,
    eps_moments: EpsMoments | None = None,
    steps: int | Sequence[int] | None = None,
    times: object | None = None,
) -> VLBResult:
    r"""The variational bound :math:`L` of Ho et al. 2020, Eq. 5, per point, in nats.

    Parameters
    ----------
    denoiser : follows the denoiser protocol.
    x0 : (B, D) data; for K-level data it must lie on the levels 2v/(K-1) - 1.
    T : number of steps of the chain (on [0, ``schedule.t_max``], unclipped).
    rng : draws :math:`x_t \sim q(x_t|x_0)` for each term.
    variance : the reverse variance, one of :data:`npdiff.reverse_variance.VARIANCES`.
    K : number of data levels for the discretized decoder; None for continuous data
        (Gaussian decoder density). K-level data lie in [-1, 1], the bound of ``"analytic"``
        and ``"trace"`` (Bao et al. 2022, Thm. 2).
    progress : a bar on stderr, one term a tick.
    eps_moments : :math:`\mathbb E\lVert\epsilon_\theta\rVert^2 / D` per step, estimated on
        training data (:func:`npdiff.reverse_variance.eps_moments`); required by ``"analytic"``.
    steps : run the chain of T steps respaced to these: a number of evenly spaced steps, or the
        kept indices in 1..T (:func:`npdiff.likelihood.optimal_steps`); None keeps all T.
    times : (K + 1,) array or None
        Run the chain through these times instead of T uniform steps: a decreasing grid from
        ``schedule.t_max`` to a :math:`t_{\min} > 0` (the times of a step file,
        :func:`npdiff.sample.step_file.load_steps`). The chain is :math:`0 < t_{\min} < \dots < t_{\max}`:
        K + 1 steps, the decoder's from :math:`t_{\min}` to clean data. ``T`` is then not used, and ``steps``
        must be None.

    Returns
    -------
    :class:`VLBResult`.
    """
    x0, rng = as_denoiser_batch(denoiser, x0, "x0"), as_generator(rng)
    chain = bound_chain(denoiser.schedule, T, steps, times)
    T = chain.T  # the steps the bound runs, after respacing
    if K is not None:
        K = positive_int(K, "K", minimum=2)
        data_to_levels(x0, K, name="x0")  # a clear error when x0 is off the levels
    reverse_var = ReverseVariance(chain, variance, eps_moments=eps_moments, x0_max=None if K is None else 1.0)
    B, D = x0.shape
    terms = np.zeros((B, T + 1))  # (B, T+1)

    # L_{t-1}, t = 2..T: KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)), with one draw of x_t each
    for t in bar(range(2, T + 1), total=T - 1, desc=f"VLB, {T} terms", enabled=progress):
        xt = q_sample_discrete_unchecked(x0, t, rng.standard_normal((B, D)), chain)
        mean_q, _, log_var_q = q_posterior_discrete_unchecked(x0, xt, t, chain)
        mean_p, log_var_p, _, _ = p_mean_log_variance_unchecked(denoiser, xt, t, reverse_var)
        terms[:, t - 1] = kl_normal_diag_unchecked(mean_q, log_var_q, mean_p, log_variance_columns(log_var_p)).sum(axis=1)

    # L_0: the decoder at t = 1, whose mean is the predicted x_0 (posterior_mean_coef2[1] = 0)
    x1 = q_sample_discrete_unchecked(x0, 1, rng.standard_normal((B, D)), chain)
    mean_p, log_var_p, _, _ = p_mean_log_variance_unchecked(denoiser, x1, 1, reverse_var)
    if K is None:
        terms[:, 0] = -log_normal_diag_unchecked(x0, mean_p, log_variance_columns(log_var_p))
    else:
        terms[:, 0] = -discretized_gaussian_log_likelihood_unchecked(x0, mean_p, log_variance_columns(log_var_p), K).sum(axis=1)

    # L_T: KL(q(x_T | x_0) || N(0, I)) in closed form
    mean_T, var_T = q_xt_x0_discrete_unchecked(x0, T, chain)
    terms[:, T] = kl_normal_diag_unchecked(mean_T, np.log(var_T), 0.0, 0.0).sum(axis=1)
    return VLBResult(total=terms.sum(axis=1), prior=terms[:, T].copy(), decoder=terms[:, 0].copy(), terms=terms, nfe=T)


def bound_chain(schedule: Schedule, T: int = 1000, steps: int | Sequence[int] | None = None,
                times: object | None = None) -> DiscreteSchedule:
    r"""The chain :func:`vlb` runs: T uniform steps (respaced to ``steps``), or the chain through ``times``.

    Through a decreasing grid :math:`t_{\max} = t_0 > \dots > t_K = t_{\min}` the chain is
    :math:`0 < t_{\min} < \dots < t_{\max}`, K + 1 steps, its betas
    :meth:`~npdiff.schedule.Schedule.chain_betas` at those times, so the chain and the denoiser agree on the
    noise level at every step, as on :func:`~npdiff.reverse.chain_for`'s chains.

    Parameters
    ----------
    schedule : Schedule
        The denoiser's schedule.
    T : int
        Steps on [0, ``schedule.t_max``] (:func:`npdiff.reverse.chain_for`), >= 2; not used with ``times``.
    steps : int, sequence of ints or None
        Respace the chain of T steps to these.
    times : (K + 1,) array or None
        A decreasing grid from ``schedule.t_max`` to :math:`t_{\min} > 0`.

    Returns
    -------
    DiscreteSchedule

    Examples
    --------
    >>> from npdiff.schedule import vp_linear
    >>> chain = bound_chain(vp_linear(), times=[1.0, 0.5, 0.01])
    >>> print(chain.T, chain.times)
    3 [0.   0.01 0.5  1.  ]
    """
    T = positive_int(T, "T", minimum=2)
    if times is None:
        return chain_for(schedule, T, steps)
    grid = check_bound_grid(schedule, times, steps)  # (K + 1,) decreasing from t_max
    inc = np.concatenate([[0.0], grid[::-1]])  # (K + 2,) increasing, index 0 clean data
    betas = schedule.chain_betas(inc)  # (K + 1,)
    return DiscreteSchedule(betas, times=inc, name=f"{schedule.name}[{betas.size} steps through given times]")
