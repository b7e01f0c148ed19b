"""Numerical edge cases: the ends of every schedule, the chain's first and last steps, the decoder's
tails, long float32 training, a divergent learning rate and likelihoods far from the data.

References are computed independently: with mpmath at 50 digits for the schedules and the
decoder, and in closed form (the probability flow of Gaussian data is linear) for the ODE.
"""

import math
import warnings

import mpmath
import numpy as np
import pytest

from npdiff import analytic, checkpoint, forward, gaussian, parameterization, reverse
from npdiff.likelihood import ode_log_likelihood
from npdiff.nn import MLPConfig
from npdiff.schedule import DiscreteSchedule, cosine, log_snr_linear, vp_linear
from npdiff.train import train

mpmath.mp.dps = 50
SCHEDULES = [vp_linear(), cosine(), log_snr_linear()]
T_MIN = 1e-5  # the training default and the likelihood's


def _ref(s, t):
    """(alpha_bar, beta) at t in mpmath, from each schedule's defining formula."""
    t = mpmath.mpf(t)
    if s.name == "vp_linear":
        return mpmath.exp(-(s.beta_min * t + (s.beta_max - s.beta_min) * t**2 / 2)), s.beta_min + t * (s.beta_max - s.beta_min)
    if s.name == "cosine":
        ss = mpmath.mpf(s.s)
        angle = lambda u: (u + ss) / (1 + ss) * mpmath.pi / 2  # noqa: E731
        if t == 1:  # cos(pi/2) = 0: the singular end
            return mpmath.mpf(0), mpmath.inf
        return mpmath.cos(angle(t)) ** 2 / mpmath.cos(angle(0)) ** 2, mpmath.pi / (1 + ss) * mpmath.tan(angle(t))
    lam = s.log_snr_max + t * (s.log_snr_min - s.log_snr_max)
    return 1 / (1 + mpmath.exp(-lam)), (s.log_snr_max - s.log_snr_min) / (1 + mpmath.exp(lam))


def _close(got, want, what, rtol=1e-12):
    if want in (mpmath.inf, -mpmath.inf) or want == 0:
        assert got == float(want), f"{what}: got {got!r}, want exactly {float(want)!r}"
    else:
        assert math.isclose(got, float(want), rel_tol=rtol), f"{what}: got {got!r}, want {float(want)!r}"


@pytest.mark.parametrize("s", SCHEDULES, ids=lambda s: s.name)
@pytest.mark.parametrize("t", [0.0, T_MIN, 0.5, "t_max", 1.0])
def test_every_schedule_at_its_ends_matches_its_formula(s, t):
    t = s.t_max if t == "t_max" else t
    ab, beta = _ref(s, t)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero or overflow warnings on the way
        got = {k: float(getattr(s, k)(t)) for k in ("alpha_bar", "sigma", "log_alpha_bar", "log_snr", "beta")}
    where = f"{s.name} at t={t}"
    _close(got["alpha_bar"], ab, f"alpha_bar {where}")
    _close(got["sigma"], mpmath.sqrt(1 - ab), f"sigma {where}", rtol=1e-9)  # sigma(1e-5) ~ 6e-4 from 1 - ab
    _close(got["log_alpha_bar"], -mpmath.inf if ab == 0 else mpmath.log(ab), f"log_alpha_bar {where}")
    want_snr = mpmath.inf if ab == 1 else (-mpmath.inf if ab == 0 else mpmath.log(ab / (1 - ab)))
    _close(got["log_snr"], want_snr, f"log_snr {where}", rtol=1e-9)
    _close(got["beta"], beta, f"beta {where}")
    assert got["sigma"] >= 0 and math.copysign(1.0, got["sigma"]) == 1.0, f"sigma {where} is {got['sigma']!r}"
    # genuinely infinite only where the math is: log SNR at sigma = 0, the cosine schedule's end at t = 1
    singular = (t == 0.0 and s.name != "log_snr_linear") or (t == 1.0 and s.name == "cosine")
    assert all(math.isfinite(v) for v in got.values()) != singular, f"{where}: {got}"


def test_cosine_end_where_alpha_bar_reaches_1e_9():
    # the classic clipped chain (betas <= 0.999) ends at alpha_bar ~ 2.4e-9; every derived array stays finite
    chain = cosine().discretize(1000)
    ab = [_ref(cosine(), i / 1000)[0] for i in range(1001)]
    betas = [min(1 - ab[i] / ab[i - 1], mpmath.mpf("0.999")) for i in range(1, 1001)]
    want = mpmath.fprod(1 - b for b in betas)
    assert math.isclose(chain.alpha_bar[-1], float(want), rel_tol=1e-9) and 1e-9 < chain.alpha_bar[-1] < 1e-8
    for name in ("posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2"):
        assert np.all(np.isfinite(getattr(chain, name))), name
    x0, eps = np.random.default_rng(0).standard_normal((2, 4, 3))
    xt = forward.q_sample_discrete(x0, chain.T, eps, chain)
    mean, var, log_var = forward.q_posterior_discrete(x0, xt, chain.T, chain)
    assert np.all(np.isfinite(mean)) and np.all(var > 0) and np.all(np.isfinite(log_var))
    # the conversions at alpha_bar = 2.4e-9 invert each other: x0 -> eps -> x0 loses at most 1/sqrt(ab) ulps
    a = np.full((4, 1), chain.alpha_bar[-1])
    for kind in parameterization.KINDS:
        pred = parameterization.from_eps(eps, kind, xt, a)
        np.testing.assert_allclose(parameterization.to_eps(pred, kind, xt, a), eps, rtol=1e-9, atol=1e-9,
                                   err_msg=kind)
    # at the singular end t = 1 (alpha_bar = 0): Gaussian conditioning gives the data mean exactly;
    # Tweedie's formula would divide by sqrt(alpha_bar) = 0 and is refused with a clear error
    g = analytic.GaussianData(np.array([0.5, -1.0]), np.array([0.3, 2.0]), cosine())
    np.testing.assert_array_equal(g.x0_mean(np.ones((2, 2)), 1.0), np.tile([0.5, -1.0], (2, 1)))
    mix = analytic.GaussianMixture(np.array([0.5, 0.5]), np.array([[0.0, 1.0], [1.0, 0.0]]), 0.2, cosine())
    with pytest.raises(ValueError, match="t_max"):
        mix.x0_mean(np.ones((2, 2)), 1.0)


@pytest.mark.parametrize("s", SCHEDULES, ids=lambda s: s.name)
@pytest.mark.parametrize("T", [1, 2, 10, 1000])
def test_posterior_variance_at_the_first_step_is_zero_and_its_clipped_log_finite(s, T):
    chain = s.discretize(T, t_end=s.t_max, clip=False)
    assert chain.posterior_variance[1] == 0.0  # q(x_0 | x_1, x_0) is a point mass
    clipped = chain.posterior_log_variance_clipped
    assert np.all(np.isfinite(clipped)), clipped
    floor = chain.posterior_variance[2] if T >= 2 else chain.betas[1]
    assert clipped[1] == math.log(floor) and clipped[0] == clipped[1]
    # the posterior mean at t = 1 is x_0 itself: beta_1 sqrt(1) / (1 - alpha_bar_1) = 1, the x_t coefficient 0;
    # alpha_bar_1 = 1 - beta_1 is rounded, so 1 - alpha_bar_1 carries a relative error up to eps / beta_1
    x0, x1 = np.random.default_rng(T).standard_normal((2, 5, 2))
    mean, var, _ = forward.q_posterior_discrete(x0, x1, 1, chain)
    np.testing.assert_allclose(mean, x0, rtol=2 * np.finfo(float).eps * (1 + 1 / chain.betas[1]), atol=0)
    assert np.all(var == 0.0)
    for variance in ("small", "large"):  # the choices that need no model
        assert np.all(np.isfinite(reverse.reverse_log_variance(chain, variance))), variance
    # continuous time: s = 0 on a schedule with alpha_bar(0) = 1 gives variance exactly 0 and mean x0
    if s.name != "log_snr_linear":
        mean, var = forward.q_posterior(x0, x1, 0.0, s.t_max, s)
        assert np.all(var == 0.0)
        np.testing.assert_allclose(mean, x0, rtol=1e-14)


def test_betas_below_float64_resolution_are_refused():
    # 1 - 1e-20 == 1.0: the step would add no noise and the clipped log-variance would be -inf
    with pytest.raises(ValueError, match="betas must exceed float64 resolution"):
        DiscreteSchedule([1e-20, 1e-20, 0.1])
    assert np.all(np.isfinite(DiscreteSchedule([2e-16, 2e-16, 0.1]).posterior_log_variance_clipped))


def _decoder_ref(x, mean, log_var, K):
    delta = mpmath.mpf(1) / (K - 1)
    std = mpmath.exp(mpmath.mpf(log_var) / 2)
    x, mean = mpmath.mpf(x), mpmath.mpf(mean)
    b = mpmath.inf if x > 1 - 1e-9 else (x + delta - mean) / std
    a = -mpmath.inf if x < -1 + 1e-9 else (x - delta - mean) / std
    if a > 0:  # Phi(b) - Phi(a) = Phi(-a) - Phi(-b): both small, so no digits are lost to 1 - 1
        a, b = -b, -a
    return mpmath.log(mpmath.ncdf(b) - mpmath.ncdf(a))


@pytest.mark.parametrize("K", [2, 17, 256])
@pytest.mark.parametrize("log_var", [-30.0, -10.0, 0.0, 10.0, 40.0, 80.0])
def test_discretized_decoder_edge_bins_and_tails_are_finite_and_exact(K, log_var):
    levels = sorted({0, 1, K // 2, K - 2, K - 1})
    x = np.array([2.0 * v / (K - 1) - 1.0 for v in levels])
    for offset in [0.0, 0.3 / (K - 1), -0.5, 3.0, -3.0, 1e3, -1e3]:
        mean = x + offset
        got = gaussian.discretized_gaussian_log_likelihood(x, mean, np.full_like(x, log_var), K=K)
        assert np.all(np.isfinite(got)) and np.all(got <= 0.0), (offset, got)
        for xi, mi, gi in zip(x, mean, got):
            want = _decoder_ref(xi, mi, log_var, K)
            assert math.isclose(gi, float(want), rel_tol=1e-9, abs_tol=1e-12), (
                f"K={K} x={xi} mean={mi} log_var={log_var}: got {gi!r}, mpmath {float(want)!r}")
    # the K probabilities of one decoder sum to one, whatever its mean and width
    all_x = 2.0 * np.arange(K) / (K - 1) - 1.0
    for mean in (-50.0, 0.1, 50.0):
        lp = gaussian.discretized_gaussian_log_likelihood(all_x, np.full(K, mean), np.full(K, log_var), K=K)
        assert abs(np.logaddexp.reduce(lp)) < 1e-9, (mean, np.logaddexp.reduce(lp))


def _data(n, rng):
    return rng.standard_normal((n, 2)) * np.array([1.0, 0.2]) + np.array([0.5, -1.0])


@pytest.mark.parametrize("parameterization_, loss", [("eps", None), ("x0", "eps"), ("v", None)])
def test_float32_training_for_many_steps_stays_finite(parameterization_, loss):
    # x0-prediction with the eps-loss weights examples by SNR, up to ~1e10 at t_min = 1e-5 on vp_linear
    cfg = MLPConfig(width=32, depth=2, emb_dim=16, parameterization=parameterization_)
    model, hist = train(cfg, _data, rng=1, steps=400, batch_size=32, lr=2e-3, loss=loss, t_min=T_MIN, progress=False)
    for key in ("loss", "grad_norm", "lr"):
        assert hist[key].shape == (400,) and np.all(np.isfinite(hist[key])), key
    assert np.all(np.isfinite(model.params))
    x = np.random.default_rng(2).standard_normal((8, 2))
    for t in (0.0 if parameterization_ != "x0" else T_MIN, T_MIN, 0.5, 1.0):
        assert np.all(np.isfinite(model.eps(x, t))), t


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow under test happens on purpose
@pytest.mark.parametrize("lr", [1e10, 1e30, 1e38])
def test_a_divergent_learning_rate_stops_training_and_never_writes_nan_weights(tmp_path, lr):
    path = tmp_path / "run.npz"
    cfg = MLPConfig(width=16, depth=1, emb_dim=8)
    with pytest.raises(FloatingPointError, match=r"at step \d+"):
        train(cfg, _data, rng=0, steps=50, batch_size=16, lr=lr, clip_norm=0.0, checkpoint_path=path,
              checkpoint_every=1, progress=False)
    if path.exists():  # whatever was written before the failure is a valid, finite checkpoint
        ck = checkpoint.load(path)
        assert np.all(np.isfinite(ck.model.params)) and np.all(np.isfinite(ck.optimizer["ema"]))


def _gaussian_flow_log_p(oracle, x, t_min):
    """log p of x under the ODE with prior N(0, I): for Gaussian data the flow is linear in the eigenbasis."""
    s = oracle.schedule
    ab_s, ab_T = float(s.alpha_bar(t_min)), float(s.alpha_bar(s.t_max))
    d_s = ab_s * oracle._eig + (1 - ab_s)  # (D,) eigenvalues of Sigma_t at both ends
    d_T = ab_T * oracle._eig + (1 - ab_T)
    y = (x - math.sqrt(ab_s) * oracle.mean) @ oracle._rot
    z = math.sqrt(ab_T) * oracle.mean + (y * np.sqrt(d_T / d_s)) @ oracle._rot.T
    return -0.5 * (x.shape[1] * gaussian.LOG_2PI + np.sum(z * z, axis=1)) + 0.5 * np.sum(np.log(d_T / d_s))


@pytest.mark.parametrize("s", [vp_linear(), cosine()], ids=lambda s: s.name)
def test_ode_likelihood_far_outside_the_data_matches_the_linear_flow(s):
    oracle = analytic.GaussianData(np.array([0.5, -0.5]), np.array([[0.5, 0.2], [0.2, 2.0]]), s)
    x = np.array([[3.0, -3.0], [10.0, -10.0], [100.0, 30.0], [-1e3, 1e3]])
    res = ode_log_likelihood(oracle, x, t_min=1e-3, rtol=1e-8, atol=1e-8)
    want = _gaussian_flow_log_p(oracle, x, 1e-3)
    assert np.all(np.isfinite(res.log_p))
    np.testing.assert_allclose(res.log_p, want, rtol=1e-7, err_msg=f"{s.name}: far points")
