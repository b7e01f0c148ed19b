"""The "diagonal" reverse variance: Tweedie's covariance one dimension at a time, against the oracles' exact posteriors."""

import numpy as np
import pytest

import npdiff.denoiser as denoiser_module
from npdiff.analytic import GaussianData
from npdiff.denoiser import call_eps_and_jacobian_diagonal
from npdiff.likelihood import vlb
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.reverse import chain_for, log_variance_columns, p_mean_log_variance
from npdiff.reverse_variance import (
    ReverseVariance,
    reverse_log_variance,
    x0_variance_bound,
    x0_variance_from_divergence,
    x0_variance_from_jacobian_diagonal,
)
from npdiff.sample import ddpm_sample
from npdiff.schedule import vp_linear

from .test_reverse_variance import _kl_to_standard_normal, _mixture, _mixture_x0_covariance, _noised, _random_cov

#: per-dimension variances far apart, so that one number per point cannot be the reverse kernel
SPREAD = np.array([0.02, 0.3, 1.5])


def _central_jacobian_diagonal(f, x, t, h=1e-5):
    r"""d f_d / d x_d (B, D) by central differences in float64, one coordinate at a time."""
    out = np.empty_like(x)
    for d in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[d] = h
        out[:, d] = (f(x + e, t)[:, d] - f(x - e, t)[:, d]) / (2 * h)
    return out


@pytest.mark.parametrize("t", [0.01, 0.2, 0.6, 0.95])
def test_diagonal_variance_is_the_exact_posterior_variance_of_each_dimension_of_gaussian_data(t):
    # Cov[x_0 | x_t] = (C^{-1} + alpha_bar / sigma^2 I)^{-1} for x_0 ~ N(mu, C): its diagonal, dimension by dimension
    rng = np.random.default_rng(1)
    C = _random_cov(rng, 4, 0.5)
    g = GaussianData(rng.normal(size=4), C)
    x, ab = _noised(g, t, 5, seed=2)
    _, jac = call_eps_and_jacobian_diagonal(g, x, t)
    exact = np.diag(np.linalg.inv(np.linalg.inv(C) + ab / (1 - ab) * np.eye(4)))  # (D,)
    np.testing.assert_allclose(x0_variance_from_jacobian_diagonal(jac, ab), np.broadcast_to(exact, x.shape), rtol=1e-10)


@pytest.mark.parametrize("t", [0.02, 0.3, 0.7])
def test_diagonal_variance_is_the_exact_posterior_variance_of_a_gaussian_mixture(t):
    m = _mixture()
    x, ab = _noised(m, t, 50, seed=3)
    eps, jac = call_eps_and_jacobian_diagonal(m, x, t)
    exact = np.diagonal(_mixture_x0_covariance(m, x, ab), axis1=1, axis2=2)  # (B, D) Bayes' rule, no derivative
    np.testing.assert_allclose(x0_variance_from_jacobian_diagonal(jac, ab), exact, rtol=1e-8)
    # its mean over the dimensions is the trace variance, and eps is the denoiser's own
    _, div = m.eps_and_divergence(x, t)
    np.testing.assert_allclose(x0_variance_from_jacobian_diagonal(jac, ab).mean(axis=1),
                               x0_variance_from_divergence(div, ab, m.dim), rtol=1e-10)
    np.testing.assert_allclose(eps, m.eps(x, t), rtol=1e-10, atol=1e-13)


def test_jacobian_diagonal_of_the_mlp_against_central_differences_in_pieces():
    net = DiffusionMLP(MLPConfig(dim=3, width=16, depth=2, emb_dim=8), vp_linear(), rng=np.random.default_rng(0))
    x, t = np.random.default_rng(1).normal(size=(9, 3)), np.linspace(0.05, 0.9, 9)
    eps, jac = call_eps_and_jacobian_diagonal(net, x, t)
    np.testing.assert_allclose(jac, _central_jacobian_diagonal(net.eps, x, t), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(jac.sum(axis=1), net.eps_and_divergence(x, t)[1], rtol=1e-10)
    np.testing.assert_allclose(eps, net.eps(x, t), rtol=1e-12)


def test_jacobian_diagonal_is_the_same_whatever_the_pieces(monkeypatch):
    m = _mixture()
    x, _ = _noised(m, 0.3, 11, seed=4)
    whole = call_eps_and_jacobian_diagonal(m, x, 0.3)
    monkeypatch.setattr(denoiser_module, "JACOBIAN_ROWS", 2 * m.dim)  # two points a piece, the last piece one point
    pieces = call_eps_and_jacobian_diagonal(m, x, 0.3)
    for a, b in zip(whole, pieces):
        np.testing.assert_allclose(a, b, rtol=1e-14)


@pytest.mark.parametrize("T", [5, 20])
def test_diagonal_bound_on_anisotropic_gaussian_data_is_the_nll_plus_the_prior_mismatch(T):
    # Cov[x_0 | x_t] is diagonal, so Sigma_t = diag(beta_tilde_t + c_1^2 v_{t,d}) is the true reverse kernel: the bound
    # is -log q(x_0) plus the prior's mismatch; "trace", one number per point, is not the kernel here
    mu, n = np.array([0.5, -1.0, 0.0]), 20_000
    g = GaussianData(mu, SPREAD)
    x = g.sample(n, np.random.default_rng(T))
    ab_T = chain_for(g.schedule, T).alpha_bar[T]
    prior_mismatch = _kl_to_standard_normal(np.sqrt(ab_T) * mu, ab_T * SPREAD + 1 - ab_T)
    gaps = {}
    for variance in ("diagonal", "trace"):
        gap = vlb(g, x, T, rng=np.random.default_rng(100 + T), variance=variance).total + g.log_prob(x, 0.0)  # (n,)
        gaps[variance] = (gap.mean(), gap.std() / np.sqrt(n))
    mean, se = gaps["diagonal"]
    assert abs(mean - prior_mismatch) < 4 * se, f"T={T}: gap {mean:.4f} +- {se:.4f}, prior mismatch {prior_mismatch:.4f}"
    assert gaps["trace"][0] - prior_mismatch > 10 * gaps["trace"][1], gaps


def test_ancestral_chain_with_the_diagonal_variance_keeps_each_dimensions_marginal():
    # with the true reverse kernels, x_t ~ N(sqrt(alpha_bar_t) mu, alpha_bar_t c_d + sigma_t^2) in each dimension d
    mu, T, n = np.array([0.8, -0.3, 0.1]), 10, 20_000
    g = GaussianData(mu, SPREAD)
    chain = chain_for(g.schedule, T)
    x_T = np.random.default_rng(0).standard_normal((n, 3))
    res = ddpm_sample(g, None, np.random.default_rng(1), T=T, steps=T, variance="diagonal", x_T=x_T, record=True)
    for k in range(1, T):  # trajectory[k] is the state at chain index T - k
        i = T - k
        want = chain.alpha_bar[i] * SPREAD + 1 - chain.alpha_bar[i]  # (D,)
        np.testing.assert_allclose(res.trajectory[k].var(axis=0), want, rtol=0.04, err_msg=f"i={i}")


def test_the_reverse_step_gives_one_variance_per_point_and_dimension():
    g = GaussianData(np.zeros(3), SPREAD)
    chain = chain_for(g.schedule, 10)
    x, _ = _noised(g, chain.times[4], 6, seed=2)
    mean, log_var, _, _ = p_mean_log_variance(g, x, 4, ReverseVariance(chain, "diagonal"))
    _, jac = call_eps_and_jacobian_diagonal(g, x, chain.times[4])
    v = np.clip(x0_variance_from_jacobian_diagonal(jac, chain.alpha_bar[4]), 0, x0_variance_bound(chain)[4])
    assert log_var.shape == (6, 3)
    np.testing.assert_allclose(np.exp(log_var), chain.posterior_variance[4] + chain.posterior_mean_coef1[4] ** 2 * v)
    assert np.ptp(log_var[0]) > 0.1  # the dimensions differ
    # the mean is the other variances' mean: the choice of variance does not move it
    np.testing.assert_array_equal(mean, p_mean_log_variance(g, x, 4, ReverseVariance(chain, "large"))[0])
    assert log_variance_columns(log_var) is log_var
    _, log_var_large, _, _ = p_mean_log_variance(g, x, 4, ReverseVariance(chain, "large"))
    assert log_variance_columns(log_var_large).shape == (6, 1)


class _EpsOnly:
    r"""A denoiser of the protocol's required part alone: no eps_jvp."""

    def __init__(self):
        self._g = GaussianData(np.zeros(2), np.ones(2))
        self.schedule = self._g.schedule

    def eps(self, x, t):
        return self._g.eps(x, t)

    def eps_and_divergence(self, x, t):
        return self._g.eps_and_divergence(x, t)


def test_clear_errors_for_what_the_diagonal_needs():
    chain = chain_for(vp_linear(), 10)
    with pytest.raises(ValueError, match="per point"):
        reverse_log_variance(chain, "diagonal")
    with pytest.raises(TypeError, match="eps_jvp"):
        vlb(_EpsOnly(), np.zeros((3, 2)), 10, rng=np.random.default_rng(0), variance="diagonal")
    with pytest.raises(ValueError, match="alpha_bar"):
        x0_variance_from_jacobian_diagonal(np.zeros((2, 2)), 1.5)


def test_jacobian_diagonal_of_the_unet_sums_to_its_divergence_and_matches_central_differences():
    from npdiff.nn import DiffusionUNet, UNetConfig

    cfg = UNetConfig(widths=(8, 8, 8), groups=2, heads=2, time_dim=16, emb_dim=8)
    rng = np.random.default_rng(3)
    net = DiffusionUNet(cfg, vp_linear(), cfg.init_params(rng, np.float64) + 0.2 * rng.standard_normal(cfg.n_params))
    x, t = rng.standard_normal((2, 64)), np.array([0.2, 0.7])
    _, jac = call_eps_and_jacobian_diagonal(net, x, t)
    np.testing.assert_allclose(jac.sum(axis=1), net.eps_and_divergence(x, t)[1], rtol=1e-9)
    np.testing.assert_allclose(jac[:, :6], _central_jacobian_diagonal(net.eps, x, t)[:, :6], rtol=1e-5, atol=1e-7)
