"""Likelihood estimators against densities known in closed form."""

import numpy as np
import pytest
from scipy.special import ndtr

from npdiff.analytic import GaussianData, GaussianMixture
from npdiff.forward import q_xt_xtm1
from npdiff.gaussian import levels_to_data, log_normal_diag
from npdiff.likelihood import density_to_bpd, dequantized_bpd, ode_log_likelihood, vlb
from npdiff.reverse import chain_for, reverse_log_variance
from npdiff.schedule import cosine

from .test_sample import eight_gaussians


def _gaussian(D, mean=0.0, seed=1, schedule=None):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(D, D))
    cov = A @ A.T / D + 0.1 * np.eye(D)
    return GaussianData(np.full(D, mean), cov, schedule=schedule), cov


def _entropy(cov):
    return 0.5 * np.linalg.slogdet(2 * np.pi * np.e * cov)[1]


def test_ode_likelihood_matches_the_exact_8gaussians_density():
    d = eight_gaussians()
    x = d.sample(2000, np.random.default_rng(0))
    res = ode_log_likelihood(d, x)
    err = np.abs(res.log_p - d.log_prob(x, 0.0))
    assert err.mean() < 0.005, f"mean abs error {err.mean():.2e}, nfe {res.nfe}"
    np.testing.assert_allclose(res.log_p, res.prior + res.divergence)
    assert 20 < res.nfe < 1000


@pytest.mark.parametrize("schedule", [None, cosine()], ids=["vp_linear", "cosine"])
def test_ode_likelihood_matches_a_5d_full_covariance_gaussian(schedule):
    g, _ = _gaussian(5, schedule=schedule)
    x = g.sample(2000, np.random.default_rng(2))
    res = ode_log_likelihood(g, x)
    err = np.abs(res.log_p - g.log_prob(x, 0.0))
    assert err.mean() < 0.005, f"mean abs error {err.mean():.2e}"


def test_divergence_integral_alone_is_exact_when_the_prior_is_not():
    # with a non-zero mean, q_{t_max} is not N(0, I); the divergence part must still be exact
    g, _ = _gaussian(5, mean=1.5, seed=3)
    x = g.sample(2000, np.random.default_rng(4))
    t_min = 1e-5
    res = ode_log_likelihood(g, x, t_min=t_min)
    ref = g.log_prob(x, t_min) - g.log_prob(res.x_end, g.schedule.t_max)
    assert np.abs(res.divergence - ref).mean() < 0.005
    prior_error = np.abs(res.log_p - g.log_prob(x, t_min)).mean()
    assert prior_error > 0.005, "the N(0, I) prior should be measurably wrong here (sanity of the test)"


def test_chunked_solve_agrees_with_one_batch():
    g, _ = _gaussian(3, seed=5)
    x = g.sample(60, np.random.default_rng(6))
    a = ode_log_likelihood(g, x, rtol=1e-8, atol=1e-8)
    b = ode_log_likelihood(g, x, rtol=1e-8, atol=1e-8, batch_size=25)
    np.testing.assert_allclose(a.log_p, b.log_p, atol=1e-5)


def _trajectory_bound(g, x0_row, T, R, rng, variance):
    r"""E_q[log q(x_{1:T}|x0) - log p(x_{0:T})] by sampling R forward trajectories, written
    independently of vlb(): forward steps q(x_t|x_{t-1}), reverse means from Tweedie's x0_mean."""
    chain = chain_for(g.schedule, T)
    log_var = reverse_log_variance(chain, variance)
    x0 = np.repeat(x0_row[None], R, 0)
    xs = [x0]
    log_q = np.zeros(R)
    for t in range(1, T + 1):
        m, v = q_xt_xtm1(xs[-1], t, chain)
        xs.append(m + np.sqrt(v) * rng.standard_normal(x0.shape))
        log_q += log_normal_diag(xs[-1], m, np.log(v))
    log_p = log_normal_diag(xs[T], 0.0, 0.0)
    for t in range(T, 0, -1):
        x0_hat = g.x0_mean(xs[t], chain.times[t])
        mean = chain.posterior_mean_coef1[t] * x0_hat + chain.posterior_mean_coef2[t] * xs[t]
        log_p += log_normal_diag(xs[t - 1], mean, log_var[t])
    return log_q - log_p


@pytest.mark.parametrize("variance", ["large", "small"])
def test_closed_form_vlb_equals_the_monte_carlo_trajectory_bound(variance):
    g, _ = _gaussian(2, seed=7)
    rng = np.random.default_rng(8)
    T, R = 20, 40_000
    for x0_row in g.sample(3, rng):
        mc = _trajectory_bound(g, x0_row, T, R, rng, variance)
        closed = vlb(g, np.repeat(x0_row[None], R, 0), T, rng=rng, variance=variance).total
        se = np.sqrt(mc.var() / R + closed.var() / R)
        assert abs(mc.mean() - closed.mean()) < 4 * se, f"{variance}: {mc.mean():.4f} vs {closed.mean():.4f} (se {se:.4f})"


def test_vlb_bounds_the_entropy_and_tightens_with_T_for_the_large_variance():
    g, cov = _gaussian(3, seed=9)
    x = g.sample(10_000, np.random.default_rng(10))
    H = _entropy(cov)
    rng = np.random.default_rng(11)
    gaps = {}
    for T in (10, 1000):
        res = vlb(g, x, T, rng=rng, variance="large")
        se = res.total.std() / np.sqrt(x.shape[0])
        assert res.total.mean() >= H - 3 * se, f"T={T}: bound {res.total.mean():.4f} below entropy {H:.4f}"
        gaps[T] = res.total.mean() - H
        assert res.terms.shape == (x.shape[0], T + 1)
        np.testing.assert_allclose(res.total, res.terms.sum(1))
    assert gaps[1000] < gaps[10], gaps


def test_a_uniform_density_scores_log2_K_bits_per_dim():
    for K, D in [(2, 1), (17, 64), (256, 3)]:
        log_p_uniform = D * np.log((K - 1) / (2 * K))  # uniform over the union of the K bins
        assert np.isclose(density_to_bpd(log_p_uniform, K, D), np.log2(K), rtol=1e-14)


def test_ode_and_vlb_bits_per_dim_share_one_unit_on_k_level_data():
    # K-level data quantized from a diagonal Gaussian well inside [-1, 1]: the probability of
    # each bin is exact by ndtr. The ODE scores the continuous Gaussian (dequantized data);
    # the VLB scores the lattice distribution itself (a mixture of narrow Gaussians on the
    # levels, weighted by the bin probabilities). Both must land on the exact bits/dim.
    K, D, std = 17, 2, 0.3
    d = 1 / (K - 1)

    def log_bin_prob(x):
        upper = np.where(x > 1 - 1e-9, np.inf, (x + d) / std)
        lower = np.where(x < -1 + 1e-9, -np.inf, (x - d) / std)
        return np.log(ndtr(upper) - ndtr(lower)).sum(1)

    g = GaussianData(np.zeros(D), std**2 * np.eye(D))
    rng = np.random.default_rng(15)
    x = levels_to_data(np.clip(np.round((g.sample(600, rng) + 1) * (K - 1) / 2), 0, K - 1), K)
    exact_bpd = -log_bin_prob(x) / (D * np.log(2))

    grid = levels_to_data(np.stack(np.meshgrid(np.arange(K), np.arange(K), indexing="ij"), -1).reshape(-1, D), K)
    lattice = GaussianMixture(np.exp(log_bin_prob(grid)), grid, np.full(K * K, (0.05 * d) ** 2))

    ode = dequantized_bpd(g, x, K, rng, draws=4)
    # fixed-small variance: near t = 0 the lattice's reverse kernel has variance beta_tilde
    bound = vlb(lattice, x, 1000, rng=rng, K=K, variance="small").total / (D * np.log(2))
    # The dequantized ODE estimate is tight here (a smooth density, bins 0.4 std wide). The
    # VLB keeps a real slack at T = 1000 (0.17-0.26 bpd over seeds, from the steps where the
    # noise is comparable to the bin width), so it is held to 0.5 bpd, half the smallest shift
    # a unit error would cause here (nats for bits: 1.4 bpd; per point for per dimension: 3.3;
    # a missing bin volume: 3.0).
    for name, est, slack in [("ode", ode.bpd, 0.03), ("ode-mean", ode.bpd_mean, 0.03), ("vlb", bound, 0.5)]:
        gap = est.mean() - exact_bpd.mean()
        se = (est - exact_bpd).std() / np.sqrt(len(est))
        assert -3 * se < gap < slack, f"{name}: {est.mean():.4f} vs exact {exact_bpd.mean():.4f}"
    assert np.all(ode.bpd <= ode.bpd_mean + 1e-12), "log-mean-exp must be at least the mean (Jensen)"


@pytest.mark.parametrize("call, match", [
    (lambda g: ode_log_likelihood(g, np.zeros((4, 2)), t_min=0.0), "t_min must lie in"),
    (lambda g: ode_log_likelihood(g, np.zeros((4, 2)), t_min=1.0), "t_min must lie in"),
    (lambda g: ode_log_likelihood(g, np.zeros((4, 3))), "x must have 2 columns"),
    (lambda g: ode_log_likelihood(g, np.zeros((4, 2)), t_min=5e-324), "sigma\\(t_min\\) rounds to 0"),
    (lambda g: ode_log_likelihood(g, np.zeros((4, 2)), atol=5e-324), "atol must lie in"),
    (lambda g: ode_log_likelihood(g, np.zeros((4, 2)), rtol=1.0), "rtol must lie in"),
    (lambda g: ode_log_likelihood(g, np.zeros((4, 2)), atol=2.0), "atol must lie in"),
    (lambda g: vlb(g, np.full((4, 2), 0.01), 10, rng=np.random.default_rng(0), K=17), "x0 must lie on the 17 levels"),
    (lambda g: vlb(g, np.full((4, 2), 1.5), 10, rng=np.random.default_rng(0), K=256), "x0 must lie on the 256 levels"),
    (lambda g: vlb(g, np.zeros((4, 3)), 10, rng=np.random.default_rng(0)), "x0 must have 2 columns"),
    (lambda g: vlb(g, np.zeros((4, 2)), 1, rng=np.random.default_rng(0)), "T must be an integer >= 2"),
    (lambda g: vlb(g, np.zeros((4, 2)), 10, rng=np.random.default_rng(0), variance="tiny"), "variance must be"),
    (lambda g: dequantized_bpd(g, np.full((4, 2), 0.3), 17, np.random.default_rng(0)), "x must lie on the 17 levels"),
])
def test_bad_input(call, match):
    g, _ = _gaussian(2)
    with pytest.raises((ValueError, TypeError), match=match):
        call(g)
