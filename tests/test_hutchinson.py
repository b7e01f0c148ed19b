"""Hutchinson's estimate: unbiased, its standard error honest, exact for a diagonal Jacobian with Rademacher probes."""

import numpy as np
import pytest

from npdiff.analytic import GaussianData
from npdiff.data import toy2d
from npdiff.likelihood import hutchinson_divergence
from npdiff.nn.config import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.schedule import vp_linear


def test_rademacher_probes_are_exact_for_a_diagonal_jacobian():
    # Gaussian data with a diagonal covariance: J = -sigma diag(1/d), and v^T J v = tr J for every v in {-1, 1}^D
    data = GaussianData(np.zeros(3), np.array([0.5, 1.0, 2.0]))
    x = np.random.default_rng(0).normal(size=(4, 3))
    est = hutchinson_divergence(data, x, 0.4, np.random.default_rng(1), 5)
    np.testing.assert_allclose(est.div, data.eps_and_divergence(x, 0.4)[1], rtol=1e-12)
    np.testing.assert_allclose(est.se, 0.0, atol=1e-12)
    np.testing.assert_allclose(est.eps, data.eps(x, 0.4), rtol=1e-12)


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_estimate_is_unbiased_and_its_standard_error_honest(kind):
    oracle = toy2d.load("8gaussians").oracle()
    x = np.repeat(np.array([[0.7, -1.1]]), 400, axis=0)  # one point, 400 independent estimates
    est = hutchinson_divergence(oracle, x, 0.3, np.random.default_rng(2), 8, kind=kind)
    exact = oracle.eps_and_divergence(x[:1], 0.3)[1][0]
    assert abs(est.div.mean() - exact) < 4 * est.div.std(ddof=1) / 20  # unbiased
    # the reported standard error of one estimate matches the spread of the 400 estimates (within ~15%)
    assert est.div.std(ddof=1) == pytest.approx(np.sqrt(np.mean(est.se**2)), rel=0.15)


def test_vjp_only_denoiser_gives_the_same_estimate():
    cfg = MLPConfig(dim=3, width=8, depth=1, emb_dim=4)
    model = DiffusionMLP(cfg, vp_linear(), rng=np.random.default_rng(3))

    class VjpOnly:
        schedule, dim = model.schedule, 3
        eps, eps_and_divergence, eps_vjp = model.eps, model.eps_and_divergence, model.eps_vjp

    x = np.random.default_rng(4).normal(size=(5, 3))
    a = hutchinson_divergence(model, x, 0.5, np.random.default_rng(5), 6)
    b = hutchinson_divergence(VjpOnly(), x, 0.5, np.random.default_rng(5), 6)
    np.testing.assert_allclose(a.div, b.div, rtol=1e-10)


def test_refuses_a_denoiser_without_derivatives_and_one_probe():
    class Plain:
        schedule, dim = vp_linear(), 2

        def eps(self, x, t):
            return x

        def eps_and_divergence(self, x, t):
            return x, np.full(x.shape[0], 2.0)

    with pytest.raises(TypeError, match="eps_jvp or eps_vjp"):
        hutchinson_divergence(Plain(), np.zeros((2, 2)), 0.5, np.random.default_rng(0), 4)
    with pytest.raises(ValueError, match="probes"):
        hutchinson_divergence(toy2d.load("8gaussians").oracle(), np.zeros((2, 2)), 0.5, np.random.default_rng(0), 1)
