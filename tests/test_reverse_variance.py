"""The reverse variance against the exact posterior covariance of the oracles, and the bound it gives."""

import itertools

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from npdiff.analytic import GaussianData, GaussianMixture
from npdiff.forward import q_posterior_discrete
from npdiff.likelihood import bound_costs, optimal_steps, vlb
from npdiff.reverse import chain_for, p_mean_log_variance
from npdiff.reverse_variance import (
    DECODER_FLOOR,
    ReverseVariance,
    eps_moments,
    reverse_log_variance,
    x0_variance_bound,
    x0_variance_from_divergence,
    x0_variance_from_eps_moment,
)
from npdiff.sample import ddpm_sample

from .test_sample import eight_gaussians


def _random_cov(rng, D, scale):
    A = rng.normal(size=(D, D))
    return scale * (A @ A.T / D + 0.2 * np.eye(D))


def _mixture(D=3, seed=0):
    rng = np.random.default_rng(seed)
    means = 2.0 * rng.normal(size=(3, D))
    covs = np.stack([_random_cov(rng, D, s) for s in (0.3, 0.1, 0.6)])
    return GaussianMixture(np.array([0.5, 0.3, 0.2]), means, covs)


def _noised(oracle, t, n, seed):
    rng = np.random.default_rng(seed)
    ab = float(oracle.schedule.alpha_bar(t))
    return np.sqrt(ab) * oracle.sample(n, rng) + np.sqrt(1 - ab) * rng.standard_normal((n, oracle.dim)), ab


def _mixture_x0_covariance(m, x, ab):
    r"""Cov[x_0 | x_t] of a Gaussian mixture by Bayes' rule, component by component (no score, no divergence):
    the responsibility-weighted posterior covariances plus the spread of the posterior means."""
    s2, D = 1.0 - ab, m.dim
    log_r, means, covs = [], [], []
    for w, mu, C in zip(m.weights, m.means, m.covs):
        S = ab * C + s2 * np.eye(D)  # covariance of x_t given the component
        log_r.append(np.log(w) + multivariate_normal(np.sqrt(ab) * mu, S).logpdf(x))
        gain = np.sqrt(ab) * C @ np.linalg.inv(S)  # (D, D)
        means.append(mu + (x - np.sqrt(ab) * mu) @ gain.T)  # (B, D)
        covs.append(C - np.sqrt(ab) * gain @ C)  # (D, D)
    log_r = np.array(log_r)  # (K, B)
    r = np.exp(log_r - log_r.max(0))
    r /= r.sum(0)
    mean = np.einsum("kb,kbd->bd", r, np.array(means))
    second = np.einsum("kb,kde->bde", r, np.array(covs)) + np.einsum("kb,kbd,kbe->bde", r, np.array(means), np.array(means))
    return second - mean[:, :, None] * mean[:, None, :]  # (B, D, D)


@pytest.mark.parametrize("t", [0.01, 0.2, 0.6, 0.95])
def test_trace_variance_is_the_exact_posterior_covariance_of_gaussian_data(t):
    # Cov[x_0 | x_t] = (C^{-1} + alpha_bar / sigma^2 I)^{-1} for x_0 ~ N(mu, C), whatever x_t is
    rng = np.random.default_rng(1)
    C = _random_cov(rng, 4, 0.5)
    g = GaussianData(rng.normal(size=4), C)
    x, ab = _noised(g, t, 5, seed=2)
    _, div = g.eps_and_divergence(x, t)
    exact = np.trace(np.linalg.inv(np.linalg.inv(C) + ab / (1 - ab) * np.eye(4))) / 4
    np.testing.assert_allclose(x0_variance_from_divergence(div, ab, 4), exact, rtol=1e-10, err_msg=f"t={t}")


@pytest.mark.parametrize("t", [0.02, 0.3, 0.7])
def test_trace_variance_is_the_exact_posterior_covariance_of_a_gaussian_mixture(t):
    m = _mixture()
    x, ab = _noised(m, t, 50, seed=3)
    _, div = m.eps_and_divergence(x, t)
    exact = np.trace(_mixture_x0_covariance(m, x, ab), axis1=1, axis2=2) / m.dim  # (B,)
    np.testing.assert_allclose(x0_variance_from_divergence(div, ab, m.dim), exact, rtol=1e-8, err_msg=f"t={t}")
    # per point it can exceed the averaged bound sigma^2 / alpha_bar (between two components); on average it cannot
    assert exact.mean() <= (1 - ab) / ab


def test_analytic_variance_is_the_average_of_the_trace_variance():
    # integration by parts, E||grad log q_t||^2 = -E[laplacian log q_t]: Gamma_t = sigma_t E[tr d eps/dx] / D
    m = _mixture(seed=4)
    chain = chain_for(m.schedule, 4)
    moments = eps_moments(m, m.sample(20_000, np.random.default_rng(5)), chain, np.random.default_rng(6))
    for i in range(1, 5):
        t = chain.times[i]
        x, ab = _noised(m, t, 20_000, seed=10 + i)
        m_trace = np.sqrt(1 - ab) * m.eps_and_divergence(x, t)[1] / m.dim  # (n,)
        se = np.hypot(moments.se[i - 1], m_trace.std() / np.sqrt(m_trace.size))
        assert abs(moments.eps_sq[i - 1] - m_trace.mean()) < 4 * se, f"t={t}: {moments.eps_sq[i - 1]} vs {m_trace.mean()}"
        # and the two formulas are one: Gamma in place of sigma tr(d eps/dx) / D
        gamma = moments.eps_sq[i - 1]
        np.testing.assert_allclose(x0_variance_from_eps_moment(gamma, ab),
                                   x0_variance_from_divergence(gamma * m.dim / np.sqrt(1 - ab), ab, m.dim), rtol=1e-12)


def _kl_to_standard_normal(mean, var):
    return 0.5 * np.sum(var + mean**2 - 1.0 - np.log(var))


@pytest.mark.parametrize("T", [5, 10, 20])
def test_trace_bound_on_isotropic_gaussian_data_is_the_nll_plus_the_prior_mismatch(T):
    # Cov[x_0|x_t] is isotropic, so Sigma_t = beta_tilde_t + c_1^2 v_t is the true reverse kernel: the bound is
    # -log q(x_0) plus E log q_T(x_T) / N(x_T; 0, I), whose mean over the data is KL(q_T || N(0, I))
    mu, c, n = np.array([0.5, -1.0, 0.0]), 0.3, 20_000
    g = GaussianData(mu, c)
    x = g.sample(n, np.random.default_rng(T))
    ab_T = chain_for(g.schedule, T).alpha_bar[T]
    prior_mismatch = _kl_to_standard_normal(np.sqrt(ab_T) * mu, ab_T * c + 1 - ab_T)
    gaps = {}
    for variance in ("trace", "small", "large"):
        gap = vlb(g, x, T, rng=np.random.default_rng(100 + T), variance=variance).total + g.log_prob(x, 0.0)  # (n,)
        gaps[variance] = (gap.mean(), gap.std() / np.sqrt(n))
    mean, se = gaps["trace"]
    assert abs(mean - prior_mismatch) < 4 * se, f"T={T}: gap {mean:.4f} +- {se:.4f}, prior mismatch {prior_mismatch:.4f}"
    for fixed in ("small", "large"):
        assert gaps[fixed][0] - prior_mismatch > 10 * gaps[fixed][1], f"T={T} {fixed}: {gaps[fixed]}"


@pytest.mark.parametrize("T", [5, 10, 20, 50, 100])
def test_every_variance_keeps_the_bound_above_the_true_nll(T):
    # any variance that depends on x_t alone keeps the VLB a bound on -log p_model(x_0) >= -log q(x_0) on average
    m = eight_gaussians()
    x = m.sample(1500, np.random.default_rng(T))
    true_nll = -m.log_prob(x, 0.0)
    train = m.sample(3000, np.random.default_rng(T + 1))
    moments = eps_moments(m, train, chain_for(m.schedule, T), np.random.default_rng(T + 2))
    for variance in ("small", "large", "analytic", "trace", "diagonal"):
        res = vlb(m, x, T, rng=np.random.default_rng(T + 3), variance=variance, eps_moments=moments)
        gap = res.total - true_nll
        se = gap.std() / np.sqrt(gap.size)
        assert gap.mean() > -3 * se, f"T={T} {variance}: bound below the true NLL by {-gap.mean():.4f} (se {se:.4f})"
        assert np.all(np.isfinite(res.terms))


def test_each_kl_term_is_closed_form_with_the_per_point_variance():
    # KL(N(mu_q, beta_tilde I) || N(mu_p, Sigma I)) written out, with the mean from Tweedie's x0_mean and
    # Sigma from the closed-form Cov[x_0 | x_t] of isotropic Gaussian data, replayed on vlb's own noise draws
    mu, c, D, T, n = np.array([1.0, -0.5]), 0.4, 2, 6, 7
    g = GaussianData(mu, c)
    x0 = g.sample(n, np.random.default_rng(0))
    res = vlb(g, x0, T, rng=np.random.default_rng(1), variance="trace")
    chain, rng = chain_for(g.schedule, T), np.random.default_rng(1)
    for t in range(2, T + 1):
        ab = chain.alpha_bar[t]
        xt = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * rng.standard_normal((n, D))
        mean_q, var_q, _ = q_posterior_discrete(x0, xt, t, chain)
        mean_p = chain.posterior_mean_coef1[t] * g.x0_mean(xt, chain.times[t]) + chain.posterior_mean_coef2[t] * xt
        v = c * (1 - ab) / (1 - ab + ab * c)  # Cov[x_0 | x_t] / I
        sigma = chain.posterior_variance[t] + chain.posterior_mean_coef1[t] ** 2 * v
        kl = 0.5 * np.sum(np.log(sigma / var_q) + (var_q + (mean_q - mean_p) ** 2) / sigma - 1.0, axis=1)
        np.testing.assert_allclose(res.terms[:, t - 1], kl, rtol=1e-9, err_msg=f"t={t}")


def test_ancestral_chain_with_the_trace_variance_keeps_the_exact_marginals():
    # with the true reverse kernels, x_t ~ N(sqrt(alpha_bar_t) mu, (alpha_bar_t c + sigma_t^2) I) at every step;
    # "small" shrinks that spread and "large" widens it when c < 1
    mu, c, T, n = np.array([0.8, -0.3]), 0.2, 10, 20_000
    g = GaussianData(mu, c)
    chain = chain_for(g.schedule, T)
    x_T = np.random.default_rng(0).standard_normal((n, 2))
    spread = {}
    for variance in ("trace", "small", "large"):
        res = ddpm_sample(g, None, np.random.default_rng(1), T=T, steps=T, variance=variance, x_T=x_T, record=True)
        spread[variance] = res.trajectory[T - 1].var(axis=0).mean()  # the state at chain index 1
        if variance == "trace":
            for k in range(1, T):  # trajectory[k] is the state at chain index T - k
                i = T - k
                want = chain.alpha_bar[i] * c + 1 - chain.alpha_bar[i]
                np.testing.assert_allclose(res.trajectory[k].var(axis=0), want, rtol=0.04, err_msg=f"i={i}")
                np.testing.assert_allclose(res.trajectory[k].mean(axis=0), np.sqrt(chain.alpha_bar[i]) * mu,
                                           atol=4 * np.sqrt(want / n))
    want = chain.alpha_bar[1] * c + 1 - chain.alpha_bar[1]
    assert spread["small"] < 0.9 * want < 1.1 * want < spread["large"], (spread, want)


def test_the_variances_are_bounded_as_bao_et_al_theorem_2_says():
    chain = chain_for(eight_gaussians().schedule, 20)
    bound = x0_variance_bound(chain)
    np.testing.assert_allclose(bound, (1 - chain.alpha_bar) / chain.alpha_bar)
    assert np.all(x0_variance_bound(chain, x0_max=1.0) <= 1.0)
    rv = ReverseVariance(chain, "trace", x0_max=1.0)
    divergences = np.array([-1e3, 0.0, 1.0, 2.0, 1e3])  # from far above to far below the bounds, D = 2
    for i in (1, 2, 10, 20):
        sigma = np.exp(rv.log_variance_at(i, divergences, 2))
        lo = chain.posterior_variance[i] + chain.posterior_mean_coef1[i] ** 2 * (DECODER_FLOOR * bound[1] if i == 1 else 0)
        hi = chain.posterior_variance[i] + chain.posterior_mean_coef1[i] ** 2 * min(rv.v_max[i], 1.0)
        assert np.all(sigma >= lo * (1 - 1e-12)) and np.all(sigma <= hi * (1 + 1e-12)), i
        assert sigma[0] == pytest.approx(hi) and sigma[-1] == pytest.approx(lo)
        assert np.all(np.diff(sigma) <= 0)  # a larger divergence, a sharper posterior


def test_the_fixed_variances_are_the_two_ends_of_the_formula():
    # "small" is v = 0, "large" is v = sigma_t^2: beta_tilde_t + c_1^2 sigma_t^2 = beta_t
    chain = chain_for(eight_gaussians().schedule, 30)
    t = np.arange(2, 31)
    large = chain.posterior_variance[t] + chain.posterior_mean_coef1[t] ** 2 * (1 - chain.alpha_bar[t])
    np.testing.assert_allclose(np.exp(reverse_log_variance(chain, "large")[t]), large, rtol=1e-10)
    np.testing.assert_allclose(np.exp(reverse_log_variance(chain, "small")[t]), chain.posterior_variance[t], rtol=1e-12)


def test_the_reverse_step_matches_the_table_and_computes_the_trace_per_point():
    m = eight_gaussians()
    chain = chain_for(m.schedule, 10)
    moments = eps_moments(m, m.sample(500, np.random.default_rng(0)), chain, np.random.default_rng(1))
    x, _ = _noised(m, chain.times[4], 6, seed=2)
    for variance in ("small", "large", "analytic"):
        rv = ReverseVariance(chain, variance, eps_moments=moments)
        _, log_var, _, _ = p_mean_log_variance(m, x, 4, rv)
        np.testing.assert_array_equal(log_var, np.full(6, reverse_log_variance(chain, variance, eps_moments=moments)[4]))
    _, log_var, _, _ = p_mean_log_variance(m, x, 4, ReverseVariance(chain, "trace"))
    _, div = m.eps_and_divergence(x, chain.times[4])
    v = np.clip(x0_variance_from_divergence(div, chain.alpha_bar[4], 2), 0, x0_variance_bound(chain)[4])
    np.testing.assert_allclose(np.exp(log_var), chain.posterior_variance[4] + chain.posterior_mean_coef1[4] ** 2 * v)
    assert np.ptp(log_var) > 0.01  # per point, not one number


def test_clear_errors_for_what_the_choices_need():
    m = eight_gaussians()
    chain = chain_for(m.schedule, 10)
    with pytest.raises(ValueError, match="eps_moments"):
        ReverseVariance(chain, "analytic")
    with pytest.raises(ValueError, match="eps_moments"):
        vlb(m, m.sample(3, np.random.default_rng(0)), 10, rng=np.random.default_rng(0), variance="analytic")
    with pytest.raises(ValueError, match="per point"):
        reverse_log_variance(chain, "trace")
    coarse = eps_moments(m, m.sample(50, np.random.default_rng(0)), chain, np.random.default_rng(1))
    with pytest.raises(ValueError, match="covers times"):
        ReverseVariance(chain_for(m.schedule, 20), "analytic", eps_moments=coarse)
    # a table made on a long chain serves every shorter chain whose times it holds, exactly
    fine = eps_moments(m, m.sample(50, np.random.default_rng(0)), chain_for(m.schedule, 20), np.random.default_rng(1))
    np.testing.assert_allclose(fine.at(chain.times[1:]), fine.eps_sq[1::2], rtol=1e-12)
    with pytest.raises(TypeError, match="eps_moments"):
        ReverseVariance(chain, "analytic", eps_moments={"eps_sq": 1.0})


def test_the_pair_costs_are_the_expected_terms_of_the_bound():
    # on an evenly respaced chain, prior + sum of F over the path = E[vlb] with the analytic variance
    m = eight_gaussians()
    N, K = 60, 6
    costs = bound_costs(m, m.sample(20_000, np.random.default_rng(0)), chain_for(m.schedule, N), np.random.default_rng(1))
    even = chain_for(m.schedule, N, K).kept[1:]
    res = vlb(m, m.sample(20_000, np.random.default_rng(2)), N, rng=np.random.default_rng(3), variance="analytic",
              eps_moments=costs.moments, steps=even)
    F = costs.pair_costs()
    path = np.concatenate([[0], even])
    per_term = F[path[:-1], path[1:]]  # (K,) the decoder, then the KL of each jump
    for k in range(K):
        se = res.terms[:, k].std() / np.sqrt(res.terms.shape[0])
        # both sides are Monte Carlo means over 20,000 points of similar spread
        mean = res.terms[:, k].mean()
        assert abs(mean - per_term[k]) < 4 * np.sqrt(2) * se, f"term {k}: {mean} vs {per_term[k]}"
    assert costs.bound(even) == pytest.approx(costs.prior + per_term.sum())


def test_the_dynamic_program_finds_the_cheapest_trajectory():
    m = eight_gaussians()
    N, K = 9, 3
    costs = bound_costs(m, m.sample(500, np.random.default_rng(0)), chain_for(m.schedule, N), np.random.default_rng(1))
    best = min(itertools.combinations(range(1, N), K - 1), key=lambda mid: costs.bound([*mid, N]))
    np.testing.assert_array_equal(optimal_steps(costs, K), [*best, N])
    assert costs.bound(optimal_steps(costs, K)) < costs.bound(chain_for(m.schedule, N, K).kept[1:])
    np.testing.assert_array_equal(optimal_steps(costs, 1), [N])


def test_the_chosen_trajectory_tightens_the_bound_on_fresh_points():
    m = eight_gaussians()
    N, K = 200, 5
    costs = bound_costs(m, m.sample(2000, np.random.default_rng(0)), chain_for(m.schedule, N), np.random.default_rng(1))
    x = m.sample(4000, np.random.default_rng(2))
    gap = {}
    for name, steps in (("dp", optimal_steps(costs, K)), ("even", K)):
        res = vlb(m, x, N, rng=np.random.default_rng(3), variance="analytic", eps_moments=costs.moments, steps=steps)
        gap[name] = res.total + m.log_prob(x, 0.0)  # (n,) above the true NLL
        assert res.terms.shape == (x.shape[0], K + 1)
    diff = gap["even"] - gap["dp"]
    assert diff.mean() > 5 * diff.std() / np.sqrt(diff.size), (gap["dp"].mean(), gap["even"].mean())
    assert gap["dp"].mean() > -3 * gap["dp"].std() / np.sqrt(diff.size)  # still a bound
