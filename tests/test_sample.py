"""Samplers against the analytic oracles, where the right answer is known."""

import numpy as np
import pytest
from scipy import stats

from npdiff import metrics, sample
from npdiff.analytic import GaussianData, GaussianMixture
from npdiff.schedule import cosine, vp_linear

N = 4000
NEG_ENTROPY_8GAUSSIANS = -2.833  # reference value of the issue, known to +-0.005


def eight_gaussians(schedule=None):
    # FFJORD's 8gaussians: centres 4 (cos, sin)(k 45 deg) / 1.414, std 0.5 / 1.414
    ang = np.arange(8) * np.pi / 4
    means = 4 * np.stack([np.cos(ang), np.sin(ang)], 1) / 1.414
    return GaussianMixture(np.full(8, 1 / 8), means, np.full(8, (0.5 / 1.414) ** 2), schedule=schedule)


@pytest.fixture(scope="module")
def oracle():
    return eight_gaussians()


@pytest.fixture(scope="module")
def energy_threshold(oracle):
    r"""99.9th percentile of the energy distance between two fresh data sets of size N.

    n * ED (the V-statistic, >= 0) between samples of one distribution converges to a weighted
    sum of chi-squares; a moment-matched gamma (Satterthwaite) gives its upper quantile from 40
    replicates.
    """
    rng = np.random.default_rng(12345)
    null = np.array([metrics.energy_distance(oracle.sample(N, rng), oracle.sample(N, rng), unbiased=False)
                     for _ in range(40)])
    mean, var = null.mean(), null.var(ddof=1)
    return float(stats.gamma(a=mean**2 / var, scale=var / mean).ppf(0.999))


SAMPLERS = {
    "ddpm": lambda d, r: sample.ddpm_sample(d, N, r),
    "ddim-eta0": lambda d, r: sample.ddim_sample(d, N, r),
    "ode-euler": lambda d, r: sample.ode_sample(d, N, r, method="euler"),
    "ode-heun": lambda d, r: sample.ode_sample(d, N, r, method="heun"),
    "ode-rk45": lambda d, r: sample.ode_sample(d, N, r, method="rk45"),
    "sde-euler-maruyama": lambda d, r: sample.sde_sample(d, N, r),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sampler_with_the_exact_score_reproduces_8gaussians(name, oracle, energy_threshold):
    res = SAMPLERS[name](oracle, np.random.default_rng(2024))
    assert res.x.shape == (N, 2) and res.nfe > 0
    logp = oracle.log_prob(res.x, 0.0)
    assert abs(logp.mean() - NEG_ENTROPY_8GAUSSIANS) < 0.05, f"{name}: mean log-density {logp.mean():.4f}"
    ed = metrics.energy_distance(res.x, oracle.sample(N, np.random.default_rng(99)), unbiased=False)
    assert ed <= energy_threshold, f"{name}: energy distance {ed:.2e} > null 99.9% {energy_threshold:.2e}"


@pytest.mark.parametrize("name", ["ddpm", "ddim-eta0", "ode-heun", "sde-euler-maruyama"])
def test_gaussian_data_mean_and_covariance_within_monte_carlo_error(name):
    mean = np.array([1.0, -0.5, 0.25])
    A = np.array([[0.5, 0.2, 0.0], [0.0, 0.4, -0.1], [0.1, 0.0, 0.3]])
    cov = A @ A.T
    data = GaussianData(mean, cov, schedule=cosine())
    x = SAMPLERS[name](data, np.random.default_rng(7)).x
    # sample mean: SE = sqrt(diag(cov) / N); sample covariance entries: SE = sqrt((S_ii S_jj + S_ij^2) / N)
    se_mean = np.sqrt(np.diag(cov) / N)
    assert np.all(np.abs(x.mean(0) - mean) < 4.5 * se_mean + 2e-3), f"{name}: {x.mean(0)} vs {mean}"
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / N)
    assert np.all(np.abs(np.cov(x.T) - cov) < 4.5 * se_cov + 2e-3), f"{name}: {np.cov(x.T)} vs {cov}"


def test_fixed_small_variance_is_biased_towards_the_modes(oracle):
    # same noise stream for both variances: the paired difference is far less noisy than either
    x_T = np.random.default_rng(6).standard_normal((N, 2))
    small = sample.ddpm_sample(oracle, None, np.random.default_rng(9), x_T=x_T, variance="small").x
    large = sample.ddpm_sample(oracle, None, np.random.default_rng(9), x_T=x_T, variance="large").x
    gap = oracle.log_prob(small, 0.0).mean() - oracle.log_prob(large, 0.0).mean()
    assert 0.01 < gap < 0.04, f"small minus large mean log-density {gap:.4f} (documented: about 0.025)"


def test_ode_is_a_bijection():
    d = eight_gaussians()
    x = d.sample(200, np.random.default_rng(3))
    z = sample.ode_encode(d, x, rtol=1e-8, atol=1e-8).x
    assert np.abs(z).max() < 6 and abs(z.std() - 1) < 0.2  # it really moved to the noise end
    back = sample.ode_sample(d, None, np.random.default_rng(0), x_T=z, denoise=False, rtol=1e-8, atol=1e-8).x
    np.testing.assert_allclose(back, x, atol=1e-4)


def test_ddim_eta0_is_deterministic_given_x_T(oracle):
    x_T = np.random.default_rng(4).standard_normal((50, 2))
    a = sample.ddim_sample(oracle, None, np.random.default_rng(1), x_T=x_T, steps=20).x
    b = sample.ddim_sample(oracle, None, np.random.default_rng(2), x_T=x_T, steps=20).x
    np.testing.assert_array_equal(a, b)


def test_ddim_eta1_is_the_ancestral_sampler(oracle):
    chain = vp_linear().discretize(1000).respace(40)
    for i in range(1, 41):
        assert np.isclose(sample.ddim_variance(chain, i, 1.0), chain.posterior_variance[i], rtol=1e-12, atol=0)
    # same noise stream, same update: the two samplers draw identical samples
    x_T = np.random.default_rng(5).standard_normal((64, 2))
    a = sample.ddim_sample(oracle, None, np.random.default_rng(8), x_T=x_T, steps=40, eta=1.0).x
    b = sample.ddpm_sample(oracle, None, np.random.default_rng(8), x_T=x_T, steps=40, variance="small").x
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_trajectory_recording(oracle):
    res = sample.ddpm_sample(oracle, 10, np.random.default_rng(0), steps=25, record=True)
    assert res.trajectory.shape == (26, 10, 2) and res.times[0] == 1.0 and res.times[-1] == 0.0
    np.testing.assert_array_equal(res.trajectory[-1], res.x)
    res = sample.ode_sample(oracle, 10, np.random.default_rng(0), record=True)
    assert res.trajectory.shape[1:] == (10, 2) and np.all(np.diff(res.times) < 0)


def test_samples_are_reproducible_from_the_seed(oracle):
    a = sample.sde_sample(oracle, 20, np.random.default_rng(11), steps=30).x
    b = sample.sde_sample(oracle, 20, np.random.default_rng(11), steps=30).x
    np.testing.assert_array_equal(a, b)


class _BadShape:
    schedule, dim = vp_linear(), 2

    def eps(self, x, t):
        return np.zeros((x.shape[0], 3))

    def eps_and_divergence(self, x, t):
        return self.eps(x, t), np.zeros(x.shape[0])


class _NaNLater(_BadShape):
    def eps(self, x, t):
        return np.full(x.shape, np.nan) if np.max(t) < 0.5 else np.zeros(x.shape)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda d: sample.ddpm_sample(d, 10, np.random.default_rng(0), steps=0), ValueError, "steps must be an integer in 1"),
        (lambda d: sample.ddpm_sample(d, 10, np.random.default_rng(0), steps=1001), ValueError, "steps must be"),
        (lambda d: sample.ddim_sample(d, 10, np.random.default_rng(0), eta=1.5), ValueError, r"eta must lie in \[0.0, 1.0\]"),
        (lambda d: sample.ddpm_sample(d, 10, np.random.default_rng(0), variance="medium"), ValueError, "variance must be"),
        (lambda d: sample.ddpm_sample(d, 10, None), TypeError, "rng must be a numpy.random.Generator or an int seed"),
        (lambda d: sample.ddpm_sample(d, 0, np.random.default_rng(0)), ValueError, "n must be an integer >= 1"),
        (lambda d: sample.ode_sample(d, 10, np.random.default_rng(0), method="rk4"), ValueError, "method must be one of"),
        (lambda d: sample.ode_sample(d, 10, np.random.default_rng(0), t_min=0.0), ValueError, "t_min must lie in"),
        (lambda d: sample.ode_sample(d, 10, np.random.default_rng(0), steps=10), ValueError, "rk45 chooses its own"),
        (lambda d: sample.ode_encode(d, np.zeros((4, 3))), ValueError, "x must have 2 columns"),
        (lambda d: sample.ddpm_sample(object(), 10, np.random.default_rng(0)), TypeError, "denoiser protocol"),
    ],
)
def test_bad_input_raises_clear_errors(call, exc, match, oracle):
    with pytest.raises(exc, match=match):
        call(oracle)


def test_denoiser_returning_the_wrong_shape_is_caught():
    with pytest.raises(ValueError, match=r"returned shape \(5, 3\), expected \(5, 2\)"):
        sample.ddpm_sample(_BadShape(), 5, np.random.default_rng(0), steps=3)


@pytest.mark.parametrize("run", [
    lambda d: sample.ddpm_sample(d, 5, np.random.default_rng(0), steps=10),
    lambda d: sample.ode_sample(d, 5, np.random.default_rng(0), method="heun", steps=10),
    lambda d: sample.sde_sample(d, 5, np.random.default_rng(0), steps=10),
])
def test_nan_produced_mid_run_stops_with_a_clear_error(run):
    with pytest.raises(FloatingPointError, match="NaN or Inf"):
        run(_NaNLater())


def test_rk45_may_probe_one_ulp_past_t_max_without_an_error():
    # RK45's last stage evaluates at t + h, which rounds past cosine's t_max = 0.999 from these starts
    g = GaussianData(np.zeros(2), 0.5 * np.eye(2), schedule=cosine())
    x = np.random.default_rng(0).standard_normal((8, 2))
    for t_min, tol in ((0.249, 1e-4), (0.28, 1e-3)):
        res = sample.ode_encode(g, x, rtol=tol, atol=tol, t_min=t_min)
        assert np.all(np.isfinite(res.x)), f"t_min={t_min}, tol={tol}"


@pytest.mark.parametrize("method, steps", [("euler", 10), ("heun", 10), ("rk45", None)])
def test_a_flow_that_runs_away_is_a_floating_point_error_for_every_solver(method, steps):
    # A diverging flow is the solver's failure, not bad input: the same exception type for every method.
    class RunAway:
        schedule, dim = cosine(), 2

        def eps(self, x, t):
            return np.sign(x) * 1e308

        def eps_and_divergence(self, x, t):
            return self.eps(x, t), np.zeros(len(x))

    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(FloatingPointError, match="NaN or Inf"):
        sample.ode_sample(RunAway(), 4, np.random.default_rng(0), method=method, steps=steps)
