"""The exact density of a deterministic sampler's samples and its KL to the data, where the answer is known."""

import numpy as np
import pytest

from npdiff import likelihood as lk
from npdiff import sample
from npdiff.analytic import GaussianData
from npdiff.data import toy2d
from npdiff.gaussian import log_normal_full

T_MIN = 1e-3


def kl_gaussians(m0, S0, m1, S1):
    r"""KL(N(m0, S0) || N(m1, S1)) in closed form."""
    S1_inv = np.linalg.inv(S1)
    d = m1 - m0
    return 0.5 * (np.trace(S1_inv @ S0) + d @ S1_inv @ d - m0.size + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1])


@pytest.mark.parametrize("flip", [False, True], ids=["orientation-preserving", "reflecting"])
def test_linear_map_of_a_gaussian(flip):
    # F(z) = A z + b pushes N(0, I) to N(b, A A^T): log p_F, the KL to another Gaussian and E[q/p_F] = 1 in closed form
    A = np.array([[1.3, 0.4], [-0.2, 0.7]]) * (np.array([1.0, -1.0]) if flip else 1.0)
    b = np.array([0.5, -1.0])
    m, S = np.array([0.3, -0.8]), np.array([[1.5, 0.2], [0.2, 0.6]])
    z = np.random.default_rng(0).standard_normal((20_000, 2))
    res = lk.sampler_kl(lambda zz: zz @ A.T + b, z, lambda x: log_normal_full(x, m, S))
    np.testing.assert_allclose(res.density.x, z @ A.T + b, atol=1e-12)
    np.testing.assert_allclose(res.density.log_p, log_normal_full(res.density.x, b, A @ A.T), atol=1e-8)
    np.testing.assert_allclose(res.density.log_det, np.log(abs(np.linalg.det(A))), atol=1e-8)
    assert res.density.folded == (z.shape[0] if flip else 0)
    if flip:  # det < 0 everywhere: the rule calls every orientation-reversing sample a fold, not estimable
        assert not res.estimable and res.folded_share == 1.0 and "folded" in res.reason
        with pytest.raises(lk.KLNotEstimableError, match="folded"):
            res.kl_cv  # noqa: B018
        return
    exact = kl_gaussians(b, A @ A.T, m, S)
    assert abs(res.kl - exact) < 4 * res.se, (res.kl, res.se, exact)
    assert abs(res.kl_cv - exact) < 4 * res.se_cv, (res.kl_cv, res.se_cv, exact)
    assert abs(res.ratio - 1.0) < 4 * res.ratio_se


def test_sampler_on_gaussian_data_samples_the_gaussian_its_linear_map_gives():
    # with the exact denoiser of Gaussian data every solver is affine in z: F(z) = F(0) + A z, so p_F = N(F(0), A A^T)
    data = GaussianData(np.array([1.0, -0.5]), np.array([[0.29, 0.06], [0.06, 0.09]]))

    def F(z):
        return sample.fast_sample(data, None, np.random.default_rng(0), sampler="dpmpp2m", nfe=6, t_min=T_MIN,
                                  denoise=False, x_T=z).x

    f0 = F(np.zeros((1, 2)))[0]
    A = np.stack([F(np.eye(2)[j][None])[0] - f0 for j in range(2)], axis=1)  # (2, 2) columns F(e_j) - F(0)
    z = np.random.default_rng(1).standard_normal((5000, 2))
    q_mean = np.sqrt(data.schedule.alpha_bar(T_MIN)) * data.mean  # q_{t_min} = N(sqrt(ab) mu, ab C + sigma^2 I)
    q_cov = data.schedule.alpha_bar(T_MIN) * data.cov + data.schedule.sigma(T_MIN) ** 2 * np.eye(2)
    res = lk.sampler_kl(F, z, lambda x: data.log_prob(x, T_MIN))
    np.testing.assert_allclose(res.density.log_p, log_normal_full(res.density.x, f0, A @ A.T), atol=1e-7)
    exact = kl_gaussians(f0, A @ A.T, q_mean, q_cov)
    assert exact > 1e-3  # six evaluations leave a measurable error
    assert abs(res.kl_cv - exact) < 4 * res.se_cv, (res.kl_cv, res.se_cv, exact)
    assert abs(res.kl - exact) < 4 * res.se, (res.kl, res.se, exact)


@pytest.fixture(scope="module")
def rk45_density():
    o = toy2d.load("8gaussians").oracle()

    def F(z):
        return sample.ode_sample(o, None, np.random.default_rng(0), x_T=z, rtol=1e-10, atol=1e-10, t_min=T_MIN,
                                 denoise=False).x

    z = np.random.default_rng(2).standard_normal((100, 2))
    return o, F, z, lk.sampler_log_density(F, z)


def test_rk45_flow_density_is_the_ode_likelihood_of_its_samples(rk45_density):
    # the tight RK45 flow and the likelihood ODE are the same map, run in opposite directions
    o, _, z, d = rk45_density
    ll = lk.ode_log_likelihood(o, d.x, t_min=T_MIN, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ll.x_end, z, atol=1e-8)
    np.testing.assert_allclose(d.log_p, ll.log_p, atol=1e-5)
    assert d.folded == 0


def test_density_at_given_samples_inverts_the_sampler(rk45_density):
    o, _, z, _ = rk45_density

    def F(zz):
        return sample.fast_sample(o, None, np.random.default_rng(0), sampler="unipc", nfe=10, t_min=T_MIN,
                                  denoise=False, x_T=zz).x

    forward = lk.sampler_log_density(F, z[:30])
    start = z[:30] + 0.05 * np.random.default_rng(3).standard_normal((30, 2))
    back = lk.sampler_log_density_at(F, forward.x, start)
    np.testing.assert_allclose(back.z, z[:30], atol=1e-9)
    np.testing.assert_allclose(back.log_p, forward.log_p, atol=1e-6)
    assert back.residual.max() < 1e-10


def test_a_sample_where_the_data_has_no_density_makes_the_kl_infinite():
    z = np.random.default_rng(4).standard_normal((50, 2))
    res = lk.sampler_kl(lambda zz: zz.copy(), z, lambda x: np.where(x[:, 0] > 2.0, -np.inf, -1.0))
    assert res.kl == np.inf and res.kl_cv == np.inf and np.isfinite(res.ratio)


class Wrong:
    def __call__(self, z):
        return z[:, :1]


@pytest.mark.parametrize("call, exc, match", [
    (lambda z: lk.sampler_log_density(3, z), TypeError, "sampler"),
    (lambda z: lk.sampler_log_density(Wrong(), z), ValueError, "sampler"),
    (lambda z: lk.sampler_log_density(lambda zz: zz * np.nan, z), FloatingPointError, "sampler"),
    (lambda z: lk.sampler_log_density(lambda zz: zz, z, h=0.0), ValueError, "h"),
    (lambda z: lk.sampler_log_density(lambda zz: np.zeros_like(zz), z), FloatingPointError, "singular"),
    (lambda z: lk.sampler_kl(lambda zz: zz, z[:1], lambda x: np.zeros(1)), ValueError, "z"),
    (lambda z: lk.sampler_kl(lambda zz: zz, z, "8gaussians"), TypeError, "log_q"),
    (lambda z: lk.sampler_kl(lambda zz: zz, z, lambda x: np.zeros(2)), ValueError, "log_q"),
    (lambda z: lk.sampler_kl(lambda zz: zz, z, lambda x: np.full(x.shape[0], np.nan)), ValueError, "log_q"),
    (lambda z: lk.sampler_log_density_at(lambda zz: zz, z, z[:2]), ValueError, "z0"),
    (lambda z: lk.sampler_log_density_at(lambda zz: zz, z, z, max_iter=0), ValueError, "max_iter"),
])
def test_bad_input_raises_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call(np.random.default_rng(5).standard_normal((4, 2)))
