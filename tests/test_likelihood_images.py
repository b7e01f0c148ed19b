"""Bits/dim of K-level images (npdiff.likelihood.image_bpd and dequantized_bpd): the units against
closed forms, the draws' log-mean-exp, both estimators against direct calls, and diverged solves."""

import numpy as np
import pytest
from scipy.stats import norm

from npdiff.analytic import GaussianData
from npdiff.likelihood import DIVERGED_RMS, dequantized_bpd, image_bpd, ode_log_likelihood, vlb
from npdiff.schedule import vp_linear

K = 17
DELTA = 1.0 / (K - 1)  # half a bin
S2 = 0.3  # the oracles' data variance per pixel


def _images(n, D, seed):
    return 2.0 * np.random.default_rng(seed).integers(0, K, size=(n, D)) / (K - 1) - 1.0  # (n, D) on the levels


def _bpd(log_p, D):
    # written out here, not through npdiff: bits/dim of a bin from the density at a dequantized point
    return -(log_p + D * np.log(2.0 / (K - 1))) / (D * np.log(2.0))


def _gaussian_flow_log_p(xd, sched, t_min=1e-5):
    # Gaussian data N(0, S2 I): q_t = N(0, v_t I), v_t = S2 alpha_bar(t) + 1 - alpha_bar(t), and the flow maps x at
    # t_min to z = x sqrt(v_1 / v_{t_min}). The ODE estimate is log q_{t_min}(x) + log N(z; 0, I) - log q_1(z)
    # (its prior is N(0, I), not q_1).
    def log_normal(y, var):
        return -0.5 * np.sum(np.log(2 * np.pi * var) + y**2 / var, axis=1)

    v0, v1 = (S2 * sched.alpha_bar(t) + 1.0 - sched.alpha_bar(t) for t in (t_min, sched.t_max))
    z = xd * np.sqrt(v1 / v0)
    return log_normal(xd, v0) + log_normal(z, 1.0) - log_normal(z, v1)  # (B,)


def _uniforms(seed, draws, shape):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-DELTA, DELTA, size=shape) for _ in range(draws)]  # how dequantize draws, in order


# -- the units ----------------------------------------------------------------------------------------


def test_ode_bits_per_dim_is_the_dequantized_density_in_bits_per_dim():
    D = 64
    sched = vp_linear()
    x = _images(6, D, 3)
    res = image_bpd(GaussianData(np.zeros(D), S2, sched), x, K, np.random.default_rng(5), method="ode", rtol=1e-9,
                    atol=1e-9)
    (u,) = _uniforms(5, 1, x.shape)
    expected = _bpd(_gaussian_flow_log_p(x + u, sched), D)
    np.testing.assert_allclose(res.ode.bpd, expected, rtol=1e-6, err_msg="per-image bits/dim")
    s = res.summary()
    assert s["ode_diverged"] == 0 and s["bpd_ode"] == pytest.approx(expected.mean(), rel=1e-6)
    assert s["bpd_ode_se"] == pytest.approx(expected.std(ddof=1) / np.sqrt(6), rel=1e-4)
    assert res.vlb is None and "bpd_vlb" not in s


def test_draws_are_combined_by_log_mean_exp_and_the_mean_is_jensens_bound():
    D, draws = 8, 3
    sched = vp_linear()
    x = _images(5, D, 4)
    res = dequantized_bpd(GaussianData(np.zeros(D), S2, sched), x, K, np.random.default_rng(9), draws=draws,
                          rtol=1e-9, atol=1e-9)
    log_p = np.stack([_gaussian_flow_log_p(x + u, sched) for u in _uniforms(9, draws, x.shape)])  # (S, B)
    np.testing.assert_allclose(res.log_p, log_p, rtol=1e-7)
    log_mean_p = np.log(np.mean(np.exp(log_p - log_p.max(0)), axis=0)) + log_p.max(0)  # (B,)
    np.testing.assert_allclose(res.bpd, _bpd(log_mean_p, D), rtol=1e-7, err_msg="log-mean-exp over draws")
    np.testing.assert_allclose(res.bpd_mean, _bpd(log_p.mean(0), D), rtol=1e-7, err_msg="mean of log p")
    assert np.all(res.bpd <= res.bpd_mean) and np.any(res.bpd < res.bpd_mean - 1e-6)
    assert not res.diverged.any()


def test_vlb_bits_per_dim_is_the_bound_in_nats_over_d_ln2_and_bounds_the_bin_mass():
    D, T = 64, 200
    oracle = GaussianData(np.zeros(D), S2, vp_linear())
    x = _images(5, D, 4)
    res = image_bpd(oracle, x, K, np.random.default_rng(8), method="vlb", T=T)
    direct = vlb(oracle, x, T, rng=np.random.default_rng(8), variance="large", K=K)
    np.testing.assert_allclose(res.bpd_vlb, direct.total / (D * np.log(2.0)), rtol=1e-12)
    np.testing.assert_allclose(res.vlb_terms_bpd.sum(axis=1), res.bpd_vlb, rtol=1e-12)
    # a bound on -log2 P(bin) per dimension of the model; the model's bins carry about the Gaussian's
    # mass of each bin, so the bound cannot be below that figure (by more than the model's blur)
    s = np.sqrt(S2)
    hi = np.where(x > 1 - 1e-9, np.inf, x + DELTA)
    lo = np.where(x < -1 + 1e-9, -np.inf, x - DELTA)
    bin_bpd = -np.log2(norm.cdf(hi / s) - norm.cdf(lo / s)).mean(axis=1)  # (B,)
    assert np.all(res.bpd_vlb > bin_bpd - 0.02), (res.bpd_vlb, bin_bpd)
    summary = res.summary()
    assert summary["vlb_T"] == T and summary["vlb_diverged"] == 0 and summary["vlb_variance"] == "large"
    assert res.ode is None and "bpd_ode" not in summary


def test_both_estimators_equal_direct_calls_on_the_same_dequantized_points():
    # rng feeds the ODE's dequantizations first, then the VLB: replay that order by hand
    D, T, draws = 4, 20, 2
    oracle = GaussianData(np.linspace(-0.2, 0.2, D), np.full(D, S2), vp_linear())
    x = _images(5, D, 11)
    res = image_bpd(oracle, x, K, np.random.default_rng(12), method="both", draws=draws, T=T, variance="small",
                    rtol=1e-6, atol=1e-6, batch_size=2)
    rng = np.random.default_rng(12)
    direct = [ode_log_likelihood(oracle, x + rng.uniform(-DELTA, DELTA, x.shape), rtol=1e-6, atol=1e-6, batch_size=2)
              for _ in range(draws)]
    bound = vlb(oracle, x, T, rng=rng, variance="small", K=K)
    log_p = np.stack([r.log_p for r in direct])  # (S, B)
    np.testing.assert_array_equal(res.ode.log_p, log_p)
    np.testing.assert_allclose(res.ode.bpd, _bpd(np.logaddexp(log_p[0], log_p[1]) - np.log(2.0), D), rtol=1e-12)
    np.testing.assert_array_equal(res.vlb.total, bound.total)
    np.testing.assert_array_equal(res.vlb.terms, bound.terms)
    assert res.ode.nfe == sum(r.nfe for r in direct)  # the same chunks of 2: batch_size reached the solver
    s = res.summary()
    assert (s["ode_nfe"], s["vlb_nfe"]) == (res.ode.nfe, bound.nfe) and s["n"] == 5 and (s["K"], s["D"]) == (K, D)
    assert s["bpd_vlb"] == pytest.approx(np.mean(bound.total) / (D * np.log(2.0)), rel=1e-12)
    assert s["ode_draws"] == draws and s["vlb_variance"] == "small"


# -- diverged solves --------------------------------------------------------------------------------------


class _ThreeFlows:
    r"""A protocol denoiser with three kinds of points, told apart by signs the flows below never change:

    - x[:, 0] < 0: the exact oracle of N(0, S2 I) (its flow scales each coordinate);
    - x[:, 0] > 0, x[:, 1] < 0: eps = 2 sigma(t) x, whose flow dx/dt = beta/2 x grows every coordinate by
      exp(1/2 int beta dt) ~ 150 on vp_linear: it finishes, finite, far outside the prior;
    - x[:, 0] > 0, x[:, 1] > 0: eps is NaN, so the solve fails.
    """

    def __init__(self, D):
        self.dim = D
        self.schedule = vp_linear()
        self.base = GaussianData(np.zeros(D), S2, self.schedule)

    def eps_and_divergence(self, x, t):
        sigma = np.broadcast_to(np.asarray(self.schedule.sigma(t), dtype=float), (x.shape[0],))[:, None]  # (B, 1)
        eps, div = self.base.eps_and_divergence(x, t)
        away = x[:, 0] > 0
        eps = np.where(away[:, None], 2.0 * sigma * x, eps)
        div = np.where(away, 2.0 * sigma[:, 0] * x.shape[1], div)
        eps[away & (x[:, 1] > 0)] = np.nan
        return eps, div

    def eps(self, x, t):
        return self.eps_and_divergence(x, t)[0]


def _three_kinds(D):
    x = _images(7, D, 6)
    x[:, 0] = [-1.0, 0.5, -0.5, -1.0, 0.75, -0.25, 0.5]  # rows 1, 4 and 6 leave the oracle
    x[:, 1] = [0.5, -0.5, 0.5, -1.0, 0.5, 0.25, -0.75]  # rows 1 and 6 run away finite, row 4 fails
    return x


def test_a_runaway_flow_ends_finite_but_far_outside_the_prior():
    # the case DIVERGED_RMS exists for: without the flag this point would get a finite, silly figure
    D = 16
    x = _three_kinds(D)[1:2] + _uniforms(0, 1, (1, D))[0]
    res = ode_log_likelihood(_ThreeFlows(D), x)
    assert np.isfinite(res.log_p[0]) and np.sqrt(np.mean(res.x_end**2)) > DIVERGED_RMS
    assert DIVERGED_RMS > 5.0  # a sane flow ends near the prior N(0, I), rms ~ 1


def test_diverged_images_are_flagged_and_the_others_keep_their_exact_figure():
    D = 16
    sched = vp_linear()
    x = _three_kinds(D)
    # chunks of 3: the failing image 4 sits with images 3 and 5, which the retry solves one by one
    res = image_bpd(_ThreeFlows(D), x, K, np.random.default_rng(2), method="ode", rtol=1e-8, atol=1e-8, batch_size=3)
    bad = np.array([False, True, False, False, True, False, True])
    np.testing.assert_array_equal(res.ode.diverged, bad)
    assert np.all(np.isnan(res.ode.bpd[bad])) and np.all(np.isnan(res.ode.log_p[:, bad]))
    (u,) = _uniforms(2, 1, x.shape)
    expected = _bpd(_gaussian_flow_log_p(x[~bad] + u[~bad], sched), D)
    np.testing.assert_allclose(res.ode.bpd[~bad], expected, rtol=1e-6, err_msg="the images that did not diverge")
    s = res.summary()
    assert s["ode_diverged"] == 3 and s["bpd_ode"] is None and s["n"] == 7
    assert s["bpd_ode_finite"] == pytest.approx(expected.mean(), rel=1e-6)


def test_a_diverged_draw_flags_the_image_in_dequantized_bpd():
    D = 16
    x = _three_kinds(D)
    res = dequantized_bpd(_ThreeFlows(D), x, K, np.random.default_rng(3), draws=2, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(res.diverged, [False, True, False, False, True, False, True])
    assert np.all(np.isnan(res.bpd_mean[res.diverged])) and np.all(np.isfinite(res.bpd[~res.diverged]))


def test_nothing_to_report_when_every_image_diverges():
    D = 16
    x = _three_kinds(D)[[1, 4, 6]]
    with pytest.raises(FloatingPointError, match=r"diverged for every point \(3 of 3\).*denoiser"):
        image_bpd(_ThreeFlows(D), x, K, np.random.default_rng(0), method="ode")
    with pytest.raises(FloatingPointError, match=r"diverged for every point \(1 of 1\)"):
        image_bpd(_ThreeFlows(D), x[1:2], K, np.random.default_rng(0), method="ode")


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="exact"), "method must be one of"),
    (dict(T=1), "T must be an integer >= 2"),
    (dict(variance="tiny"), "variance must be"),
    (dict(draws=0), "draws must be an integer >= 1"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
])
def test_bad_arguments_are_refused_before_any_solve(kwargs, match):
    oracle = GaussianData(np.zeros(2), S2, vp_linear())
    with pytest.raises(ValueError, match=match):
        image_bpd(oracle, _images(3, 2, 0), K, np.random.default_rng(0), **kwargs)
    with pytest.raises(ValueError, match="x must lie on the 17 levels"):
        image_bpd(oracle, np.full((3, 2), 0.3), K, np.random.default_rng(0))
