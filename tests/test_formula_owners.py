"""Each formula that has one owner now, pinned on close pairs (s -> r) against mpmath.

The references are computed from the chain's betas in 50-digit arithmetic, not by npdiff. Each
test also shows that the case discriminates: the cancelling form ``1 - alpha_bar_r / alpha_bar_s``
that the formula replaced loses digits there that the owner keeps.
"""

import itertools

import mpmath as mp
import numpy as np
import pytest

from npdiff import analytic, forward, gaussian
from npdiff.likelihood import bound_costs
from npdiff.reverse import chain_for
from npdiff.reverse_variance import decoder_floor, sigma_from_x0_variance
from npdiff.schedule import ddpm_linear, posterior_coefficients, vp_linear

mp.mp.dps = 50
CHAINS = {"ddpm_linear": ddpm_linear(1000), "vp_linear": chain_for(vp_linear(), 1000)}


def _alpha_bar_mp(chain):
    ab = [mp.mpf(1)]
    for b in chain.betas[1:]:
        ab.append(ab[-1] * (1 - mp.mpf(float(b))))
    return ab


def _exact_pair(ab, s, r):
    """(beta_tilde, c1, c2) of q(x_s | x_r, x_0) in 50 digits (Ho et al. 2020, Eq. 7 on the pair)."""
    one_m_ratio = 1 - ab[r] / ab[s]
    return (one_m_ratio * (1 - ab[s]) / (1 - ab[r]), mp.sqrt(ab[s]) * one_m_ratio / (1 - ab[r]),
            mp.sqrt(ab[r] / ab[s]) * (1 - ab[s]) / (1 - ab[r]))


def _rel(a, b):
    return abs(float(a) / float(b) - 1.0)


# close pairs near t = 0, where 1 - ratio is ~1e-4 and the cancelling form loses three digits or more
PAIRS = [(1, 2), (2, 3), (5, 6), (9, 10), (3, 5), (20, 21), (40, 42)]


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_posterior_coefficients_of_close_pairs_keep_their_digits(name):
    chain = CHAINS[name]
    ab = _alpha_bar_mp(chain)
    worst_new = worst_old = 0.0
    for s, r in PAIRS:
        log_ab = chain.log_alpha_bar
        mine = posterior_coefficients(log_ab[s], log_ab[r] - log_ab[s])
        exact = _exact_pair(ab, s, r)
        for m, e in zip(mine, exact):
            assert _rel(m, e) < 5e-15, (s, r, float(m), float(e))
        worst_new = max(worst_new, _rel(mine[0], exact[0]))
        ratio = chain.alpha_bar[r] / chain.alpha_bar[s]  # the form the trajectory used to compute
        cancelling = (1.0 - chain.alpha_bar[s]) / (1.0 - chain.alpha_bar[r]) * (1.0 - ratio)
        worst_old = max(worst_old, _rel(cancelling, exact[0]))
    assert worst_old > 100 * max(worst_new, 1e-16)  # the test case is one where the old form lost digits


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_chain_posterior_arrays_are_the_pair_formula_on_neighbours(name):
    chain = CHAINS[name]
    ab = _alpha_bar_mp(chain)
    for t in (2, 3, 10, 100, 500, 1000):
        beta_tilde, c1, c2 = _exact_pair(ab, t - 1, t)
        assert _rel(chain.posterior_variance[t], beta_tilde) < 5e-15
        assert _rel(chain.posterior_mean_coef1[t], c1) < 5e-15
        assert _rel(chain.posterior_mean_coef2[t], c2) < 5e-15
    assert chain.posterior_variance[1] == 0.0 and chain.posterior_mean_coef1[1] == 1.0


def test_respaced_betas_keep_their_digits():
    chain = CHAINS["ddpm_linear"]
    ab = _alpha_bar_mp(chain)
    kept = [1, 2, 3, 5, 8, 13, 1000]
    short = chain.respace(kept)
    exact = [1 - ab[r] / ab[s] for s, r in zip([0, *kept[:-1]], kept)]
    assert max(_rel(b, e) for b, e in zip(short.betas[1:], exact)) < 5e-15
    cancelling = [1.0 - chain.alpha_bar[r] / chain.alpha_bar[s] for s, r in itertools.pairwise(kept[:-1])]
    assert max(_rel(b, e) for b, e in zip(cancelling, exact[1:-1])) > 1e-13  # the replaced form lost digits


def test_q_posterior_is_the_pair_formula():
    s_, t_ = 1e-3, 1.2e-3
    sched = vp_linear()
    x0, xt = np.array([[0.3, -1.0]]), np.array([[0.1, 0.4]])
    mean, var = forward.q_posterior(x0, xt, s_, t_, sched)
    # independent closed form in 50 digits: alpha_bar(t) = exp(-(b0 t + (b1 - b0) t^2 / 2))
    ab = [mp.exp(-(mp.mpf("0.1") * u + mp.mpf("9.95") * u**2)) for u in (mp.mpf(s_), mp.mpf(t_))]
    one_m_ratio = 1 - ab[1] / ab[0]
    exact_var = one_m_ratio * (1 - ab[0]) / (1 - ab[1])
    c1 = mp.sqrt(ab[0]) * one_m_ratio / (1 - ab[1])
    c2 = mp.sqrt(ab[1] / ab[0]) * (1 - ab[0]) / (1 - ab[1])
    assert _rel(var[0, 0], exact_var) < 1e-12
    for d in range(2):
        assert _rel(mean[0, d], c1 * mp.mpf(x0[0, d]) + c2 * mp.mpf(xt[0, d])) < 1e-12


def test_trajectory_pair_costs_are_kl_normal_diag_of_the_pair():
    sched = vp_linear()
    oracle = analytic.GaussianData(np.array([0.5, -0.5]), np.array([0.5, 2.0]), sched)
    x = oracle.sample(64, np.random.default_rng(0))
    costs = bound_costs(oracle, x, chain_for(sched, 20), np.random.default_rng(1))
    F = costs.pair_costs()
    ab = _alpha_bar_mp(costs.chain)
    v = (1 - costs.chain.alpha_bar) / costs.chain.alpha_bar * (1 - np.concatenate([[0.0], costs.moments.eps_sq]))
    v_max = (1 - costs.chain.alpha_bar) / costs.chain.alpha_bar
    for s, r in ((1, 2), (3, 4), (2, 9), (10, 20)):
        bt, c1, _ = (float(z) for z in _exact_pair(ab, s, r))
        sigma = bt + c1**2 * min(max(v[r], 0.0), v_max[r])
        expected = costs.D * 0.5 * (bt / sigma - 1 - np.log(bt / sigma)) + 0.5 * costs.D * c1**2 * costs.x0_mse[r - 1] / sigma
        assert F[s, r] == pytest.approx(expected, rel=1e-9)
    assert np.all(np.isinf(F[1:, 1:][np.tril(np.ones((20, 20), dtype=bool))]))  # no pair where s >= r


def test_sigma_and_the_decoder_floor():
    # Sigma = beta_tilde + c1^2 clip(v, v_min, v_max) (Bao et al. 2022, Thms. 1-2), by hand
    assert sigma_from_x0_variance(0.01, 0.5, 2.0, 1.0) == pytest.approx(0.01 + 0.25 * 1.0, rel=1e-15)
    assert sigma_from_x0_variance(0.01, 0.5, -3.0, 1.0) == pytest.approx(0.01, rel=1e-15)
    assert sigma_from_x0_variance(0.0, 1.0, 0.0, 1.0, decoder_floor(0.5)) == pytest.approx(1e-6, rel=1e-15)
    assert decoder_floor(0.8) == pytest.approx(1e-6 * 0.2 / 0.8, rel=1e-15)


def test_the_bound_kl_is_gaussian_kl_normal_diag():
    # kl_normal_diag on close variances keeps its digits where r - 1 - log r cancels (the trajectory's old form)
    lam2, sigma = 1e-4, 1e-4 * (1 + 1e-7)
    exact = mp.mpf(lam2) / mp.mpf(sigma) - 1 - mp.log(mp.mpf(lam2) / mp.mpf(sigma))
    mine = 2 * gaussian.kl_normal_diag(0.0, np.log(lam2), 0.0, np.log(sigma))
    cancelling = lam2 / sigma - 1.0 + np.log(sigma / lam2)
    assert _rel(mine, exact) < 1e-7  # what the log-variances themselves carry (log 1e-4 to 1e-16)
    assert _rel(cancelling, exact) > 1e-3
