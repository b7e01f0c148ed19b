r"""The few-step trajectory that minimizes the variational bound, by dynamic programming.

On a grid of N steps (``reverse.chain_for(schedule, N)``) a chain of K steps is a choice of
indices :math:`0 = \tau_0 < \tau_1 < \dots < \tau_K = N`; respaced to them (Nichol & Dhariwal
2021, Sec. 4), its bound (Ho et al. 2020, Eq. 5) is a sum over the pairs it jumps:

.. math::
    L(\tau) = L_{\mathrm{prior}} + \sum_{k=2}^{K} L_{\tau_{k-1} \mid \tau_k} + L_{0 \mid \tau_1}.

With the ``"analytic"`` reverse variance each pair's expected cost is closed-form in two per-step
statistics of the model, estimated once on training data: :math:`\Gamma_r` (the variance's
:math:`\mathbb E\lVert\epsilon_\theta\rVert^2/D`) and the mean squared error of the predicted
clean data, :math:`m_r = \mathbb E\lVert x_0 - \hat x_0(x_r)\rVert^2 / D`. For s < r, the KL of two
isotropic Gaussians whose means differ by :math:`c_1 (x_0 - \hat x_0)`:

.. math::
    \mathbb E\,L_{s \mid r} = D\,\mathrm{KL}\big(\mathcal N(0, \tilde\beta_{s|r})\,\|\,\mathcal N(0, \Sigma)\big)
        + \frac{D\,c_1^2\,m_r}{2\Sigma},\qquad
    \tilde\beta_{s|r} = \frac{1 - \bar\alpha_s}{1 - \bar\alpha_r}\Big(1 - \frac{\bar\alpha_r}{\bar\alpha_s}\Big),\quad
    c_1 = \frac{\sqrt{\bar\alpha_s}\,(1 - \bar\alpha_r/\bar\alpha_s)}{1 - \bar\alpha_r},\quad
    \Sigma = \tilde\beta_{s|r} + c_1^2 v_r

(Ho et al. 2020, Eq. 7 on the respaced pair: :func:`npdiff.schedule.posterior_coefficients`;
the KL is :func:`npdiff.gaussian.kl_normal_diag`; :math:`v_r` the clipped analytic variance and
:math:`\Sigma` are :func:`npdiff.reverse_variance.sigma_from_x0_variance`). The decoder's cost
from r straight to 0 is estimated by Monte Carlo at every r. The best trajectory of K steps is then
a shortest path of K edges through the cost matrix, found in :math:`O(K N^2)` by dynamic programming
(Watson et al. 2021, Sec. 3; Bao et al. 2022, Sec. 4). Chosen on training data and scored on test
data, the bound stays one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._check import as_generator, as_integers, positive_int
from .._validate import check_chain
from ..denoiser import Denoiser, as_denoiser_batch
from ..gaussian import (
    data_to_levels,
    discretized_gaussian_log_likelihood_unchecked,
    kl_normal_diag_unchecked,
    log_normal_diag_unchecked,
)
from ..parameterization import x0_from_eps
from ..reverse_variance import (
    EpsMoments,
    decoder_floor,
    eps_at_noised_data,
    sigma_from_x0_variance,
    x0_variance_bound,
    x0_variance_from_eps_moment,
)
from ..schedule import DiscreteSchedule, posterior_coefficients

__all__ = ["BoundCosts", "bound_costs", "optimal_steps"]


@dataclass
class BoundCosts:
    r"""The per-step statistics of a model on a grid of N steps, and the bound of any trajectory through it.

    Attributes
    ----------
    chain : the grid, a chain of N steps.
    moments : :math:`\Gamma_r` at the grid's times (the ``"analytic"`` variance's table, for any trajectory).
    x0_mse : (N,) :math:`m_r` for r = 1..N.
    decoder : (N,) :math:`\mathbb E\,L_{0 \mid r}` for r = 1..N, nats.
    prior : :math:`\mathbb E\,\mathrm{KL}(q(x_N|x_0)\,\|\,\mathcal N(0, I))`, nats.
    D : data dimension. x0_max : the data range that bounds the variance, or None.
    """

    chain: DiscreteSchedule
    moments: EpsMoments
    x0_mse: np.ndarray
    decoder: np.ndarray
    prior: float
    D: int
    x0_max: float | None

    def pair_costs(self) -> np.ndarray:
        r"""(N + 1, N + 1) the expected cost of the jump from r down to s at [s, r]: the decoder in row 0,
        the closed-form KL above it, +inf where s >= r."""
        ab, log_ab, N, D = self.chain.alpha_bar, self.chain.log_alpha_bar, self.chain.T, self.D
        v = x0_variance_from_eps_moment(self.moments.eps_sq, ab[1:])  # (N,) Bao et al. 2022, Thm. 1
        v_max = x0_variance_bound(self.chain, self.x0_max)[1:]  # (N,) Thm. 2
        log_ab_s = log_ab[1:, None]  # (N, 1): rows s = 1..N; columns r = 1..N
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # s >= r: no pair, masked below
            beta_tilde, c1, _ = posterior_coefficients(log_ab_s, log_ab[None, 1:] - log_ab_s)  # (N, N) each
            sigma = sigma_from_x0_variance(beta_tilde, c1, v[None, :], v_max[None, :])  # (N, N)
            kl = D * kl_normal_diag_unchecked(0.0, np.log(beta_tilde), 0.0, np.log(sigma))  # the variances' part
            kl += 0.5 * D * c1**2 * self.x0_mse[None, :] / sigma  # the means': E||c1 (x0 - x0_hat)||^2 / (2 Sigma)
        F = np.full((N + 1, N + 1), np.inf)
        F[0, 1:] = self.decoder
        upper = np.triu(np.ones((N, N), dtype=bool), k=1)  # s < r
        F[1:, 1:][upper] = kl[upper]
        return F

    def bound(self, steps: object) -> float:
        r"""The expected bound (nats) of the trajectory through the kept indices ``steps`` (increasing, ending at N)."""
        kept = _check_trajectory(steps, self.chain.T)
        F = self.pair_costs()
        path = np.concatenate([[0], kept])
        return float(self.prior + F[path[:-1], path[1:]].sum())


def _check_trajectory(steps: object, N: int) -> np.ndarray:
    kept = as_integers(steps, "steps", lo=1, hi=N)
    if kept.ndim != 1 or kept.size == 0:
        raise ValueError(f"steps must be a 1-D array of increasing integer indices ending at {N}, got shape {kept.shape}")
    if np.any(np.diff(kept) <= 0) or kept[-1] != N:
        raise ValueError(f"steps must increase from >= 1 to exactly {N}, got {kept!r}")
    return kept


def bound_costs(
    denoiser: Denoiser,
    x0: object,
    chain: DiscreteSchedule,
    rng: np.random.Generator,
    *,
    K: int | None = None,
    batch_size: int = 4096,
    progress: bool = False,
) -> BoundCosts:
    r"""Estimate :math:`\Gamma_r`, :math:`m_r` and the decoder's cost at every step of ``chain`` on training data.

    One denoiser call per step and batch. Parameters as :func:`npdiff.reverse_variance.eps_moments`;
    ``K`` the number of levels of K-level data (discretized decoder, data range [-1, 1]) or None
    (Gaussian decoder density).
    """
    x0 = as_denoiser_batch(denoiser, x0, "x0")
    chain, rng, batch_size = check_chain(chain), as_generator(rng), positive_int(batch_size, "batch_size")
    if K is not None:
        K = positive_int(K, "K", minimum=2)
        data_to_levels(x0, K, name="x0")
    x0_max = None if K is None else 1.0
    v_max = x0_variance_bound(chain, x0_max)  # (N+1,)
    (n, D), N = x0.shape, chain.T
    eps_sq, se, mse, decoder = (np.empty(N) for _ in range(4))
    for r, xt, eps in eps_at_noised_data(denoiser, x0, chain, rng, batch_size=batch_size, progress=progress,
                                         desc="bound costs"):
        ab = chain.alpha_bar[r]
        x0_hat = x0_from_eps(xt, eps, np.sqrt(ab), np.sqrt(1.0 - ab))  # (n, D) Ho et al. 2020, Eq. 15
        e2 = np.sum(eps**2, axis=1) / D  # (n,)
        eps_sq[r - 1], se[r - 1] = e2.mean(), e2.std(ddof=1) / np.sqrt(n) if n > 1 else np.inf
        mse[r - 1] = (np.sum((x0 - x0_hat) ** 2, axis=1) / D).mean()
        # the decoder from r straight to 0 (beta_tilde = 0, c_1 = 1): variance v_r, floored as the bound's decoder
        v = x0_variance_from_eps_moment(eps_sq[r - 1], ab)
        log_var = np.log(sigma_from_x0_variance(0.0, 1.0, v, v_max[r], decoder_floor(ab)))
        if K is None:
            decoder[r - 1] = -log_normal_diag_unchecked(x0, x0_hat, log_var).mean()
        else:
            decoder[r - 1] = -discretized_gaussian_log_likelihood_unchecked(x0, x0_hat, log_var, K).sum(axis=1).mean()
    ab_N = chain.alpha_bar[N]
    prior = float(kl_normal_diag_unchecked(np.sqrt(ab_N) * x0, np.log(1.0 - ab_N), 0.0, 0.0).sum(axis=1).mean())
    times = np.minimum(chain.times[1:], denoiser.schedule.t_max)  # (N,)
    moments = EpsMoments(times=times, eps_sq=eps_sq, se=se, n=n)
    return BoundCosts(chain=chain, moments=moments, x0_mse=mse, decoder=decoder, prior=prior, D=D, x0_max=x0_max)


def optimal_steps(costs: BoundCosts, steps: int) -> np.ndarray:
    r"""The K = ``steps`` indices :math:`\tau_1 < \dots < \tau_K = N` of the grid that minimize the expected bound.

    .. math:: C_k(r) = \min_{s < r}\; C_{k-1}(s) + F[s, r],\qquad C_0(0) = 0

    (Bellman's recursion over the pair costs F of :meth:`BoundCosts.pair_costs`); the trajectory is
    read back from the argmins. Pass it to :func:`npdiff.likelihood.vlb` or
    :func:`npdiff.sample.ddpm_sample` as ``T = N, steps = ...``.

    Returns
    -------
    (K,) int64 indices into the grid, increasing, ending at N.
    """
    if not isinstance(costs, BoundCosts):
        raise TypeError(f"costs must be a BoundCosts (from bound_costs), got {type(costs).__name__}")
    N = costs.chain.T
    K = positive_int(steps, "steps", maximum=N)
    F = costs.pair_costs()  # (N+1, N+1)
    C = np.full(N + 1, np.inf)  # (N+1,) cheapest cost of reaching r from 0 in k edges
    C[0] = 0.0
    back = np.zeros((K + 1, N + 1), dtype=np.int64)
    for k in range(1, K + 1):
        total = C[:, None] + F  # (N+1, N+1): [s, r] through s
        back[k] = np.argmin(total, axis=0)
        C = total[back[k], np.arange(N + 1)]
    path = [N]
    for k in range(K, 1, -1):
        path.append(int(back[k, path[-1]]))
    return np.array(path[::-1], dtype=np.int64)
