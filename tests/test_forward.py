"""The forward process and its posteriors: Monte Carlo moments, composition and Bayes' rule."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npdiff import forward as fw
from npdiff import schedule as sch
from npdiff.gaussian import log_normal_diag

SCHEDULES = [sch.vp_linear(), sch.cosine(), sch.log_snr_linear()]
times = st.floats(0.02, 0.97)


def _logq(x, mean, var):
    return log_normal_diag(x, mean, np.log(var))


def _alpha_bar_by_hand(s, t):
    """alpha_bar(t) from each schedule's defining formula, in plain floats (not the schedule's code)."""
    if s.name == "vp_linear":
        return math.exp(-(s.beta_min * t + 0.5 * (s.beta_max - s.beta_min) * t * t))
    if s.name == "cosine":
        f = lambda u: math.cos((u + s.s) / (1 + s.s) * math.pi / 2) ** 2  # noqa: E731
        return f(t) / f(0.0)
    return 1.0 / (1.0 + math.exp(-(s.log_snr_max + t * (s.log_snr_min - s.log_snr_max))))


@pytest.mark.parametrize("s", SCHEDULES, ids=repr)
@given(t=times, seed=st.integers(0, 2**16))
def test_q_sample_is_sqrt_alpha_bar_x0_plus_sigma_eps(s, t, seed):
    # x_t = sqrt(ab) x0 + sqrt(1 - ab) eps (Ho et al. 2020, Eq. 4), so (x_t - sqrt(ab) x0) / sqrt(1 - ab) = eps
    x0, eps = np.random.default_rng(seed).normal(size=(2, 5, 3))
    ab = _alpha_bar_by_hand(s, t)
    xt = fw.q_sample(x0, t, eps, s)
    np.testing.assert_allclose(xt, math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps, rtol=1e-10, atol=1e-12,
                               err_msg=f"t={t}")
    np.testing.assert_allclose((xt - math.sqrt(ab) * x0) / math.sqrt(1 - ab), eps, rtol=1e-8, atol=1e-10,
                               err_msg=f"t={t}")
    mean, var = fw.q_xt_x0(x0, t, s)
    np.testing.assert_allclose(mean, math.sqrt(ab) * x0, rtol=1e-10, atol=1e-12, err_msg=f"t={t}")
    np.testing.assert_allclose(var, 1 - ab, rtol=1e-10, err_msg=f"t={t}")


def test_q_sample_discrete_by_hand_on_a_four_step_chain():
    # betas 0.1, 0.2, 0.3, 0.4: alpha_bar_t = prod_{s <= t} (1 - beta_s) = 1, 0.9, 0.72, 0.504, 0.3024
    chain = sch.DiscreteSchedule([0.1, 0.2, 0.3, 0.4])
    ab = np.array([1.0, 0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.7, 0.9 * 0.8 * 0.7 * 0.6])
    x0, eps = np.random.default_rng(3).normal(size=(2, 5, 2))
    t = np.array([0, 1, 2, 3, 4])
    want = np.sqrt(ab)[:, None] * x0 + np.sqrt(1 - ab)[:, None] * eps
    np.testing.assert_allclose(fw.q_sample_discrete(x0, t, eps, chain), want, rtol=1e-14, atol=1e-15)
    mean, var = fw.q_xt_x0_discrete(x0, t, chain)
    np.testing.assert_allclose(mean, np.sqrt(ab)[:, None] * x0, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(var[:, 0], 1 - ab, rtol=1e-14, atol=1e-15)
    for k in range(5):  # one index for the whole batch is the same draw
        np.testing.assert_allclose(fw.q_sample_discrete(x0, k, eps, chain), np.sqrt(ab[k]) * x0 + np.sqrt(1 - ab[k]) * eps,
                                   rtol=1e-14, atol=1e-15, err_msg=f"t={k}")


@pytest.mark.parametrize("s", SCHEDULES, ids=repr)
@given(t=times, seed=st.integers(0, 2**16))
def test_monte_carlo_moments_of_q_xt_x0(s, t, seed):
    rng = np.random.default_rng(seed)
    n, x0 = 100_000, np.array([[1.5, -0.7]])
    xt = fw.q_sample(np.repeat(x0, n, 0), t, rng.standard_normal((n, 2)), s)
    mean, var = fw.q_xt_x0(x0, t, s)
    se = np.sqrt(var[0] / n)
    assert np.all(np.abs(xt.mean(0) - mean[0]) < 5 * se), f"t={t}"
    # sample variance has SE ~ var * sqrt(2 / n)
    assert np.all(np.abs(xt.var(0) - var[0]) < 5 * var[0] * np.sqrt(2 / n)), f"t={t}"


@pytest.mark.parametrize("s", SCHEDULES, ids=repr)
@given(a=times, b=times)
def test_composing_q_xs_x0_with_q_xt_xs_gives_q_xt_x0(s, a, b):
    s_, t = min(a, b), max(a, b)
    x0 = np.array([[0.3, -2.0, 1.0]])
    m_s, v_s = fw.q_xt_x0(x0, s_, s)
    m_ts_unit, v_ts = fw.q_xt_xs(np.ones((1, 3)), s_, t, s)  # the transition is linear: mean = c * x_s
    c = m_ts_unit[0, 0]
    m_t, v_t = fw.q_xt_x0(x0, t, s)
    # x_t = c x_s + N(0, v_ts), x_s ~ N(m_s, v_s)  =>  x_t ~ N(c m_s, c^2 v_s + v_ts)
    np.testing.assert_allclose(c * m_s, m_t, rtol=1e-12, atol=1e-15, err_msg=f"s={s_}, t={t}")
    np.testing.assert_allclose(c**2 * v_s + v_ts, v_t, rtol=1e-12, err_msg=f"s={s_}, t={t}")


def test_composition_by_sampling():
    rng = np.random.default_rng(5)
    s, n = sch.cosine(), 200_000
    x0 = np.full((n, 1), 2.0)
    xs = fw.q_sample(x0, 0.3, rng.standard_normal((n, 1)), s)
    m, v = fw.q_xt_xs(xs, 0.3, 0.6, s)
    xt = m + np.sqrt(v) * rng.standard_normal((n, 1))
    mean, var = fw.q_xt_x0(x0[:1], 0.6, s)
    assert abs(xt.mean() - mean[0, 0]) < 5 * np.sqrt(var[0, 0] / n)
    assert abs(xt.var() - var[0, 0]) < 5 * var[0, 0] * np.sqrt(2 / n)


@pytest.mark.parametrize("s", SCHEDULES, ids=repr)
@given(a=st.floats(0.01, 0.99), b=st.floats(0.01, 0.99), seed=st.integers(0, 2**16))
def test_continuous_posterior_is_bayes_rule(s, a, b, seed):
    # q(x_s | x_t, x_0) = q(x_t | x_s) q(x_s | x_0) / q(x_t | x_0), evaluated pointwise
    if abs(a - b) < 1e-3:
        return
    s_, t = min(a, b), max(a, b)
    rng = np.random.default_rng(seed)
    x0, xs, xt = rng.normal(size=(3, 5, 2))
    m_post, v_post = fw.q_posterior(x0, xt, s_, t, s)
    lhs = _logq(xs, m_post, v_post)
    m1, v1 = fw.q_xt_xs(xs, s_, t, s)
    m2, v2 = fw.q_xt_x0(x0, s_, s)
    m3, v3 = fw.q_xt_x0(x0, t, s)
    rhs = _logq(xt, m1, v1) + _logq(xs, m2, v2) - _logq(xt, m3, v3)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9, err_msg=f"s={s_}, t={t}")


@pytest.mark.parametrize("T", [2, 10, 1000])
@pytest.mark.parametrize("s", SCHEDULES, ids=repr)
def test_discrete_posterior_is_bayes_rule(s, T):
    chain = s.discretize(T)
    rng = np.random.default_rng(T)
    for t in sorted({2, T, max(2, T // 2)}):
        x0, x_prev, xt = rng.normal(size=(3, 4, 3))
        m_post, v_post, _ = fw.q_posterior_discrete(x0, xt, t, chain)
        lhs = _logq(x_prev, m_post, v_post)
        m1, v1 = fw.q_xt_xtm1(x_prev, t, chain)
        m2, v2 = fw.q_xt_x0_discrete(x0, t - 1, chain)
        m3, v3 = fw.q_xt_x0_discrete(x0, t, chain)
        rhs = _logq(xt, m1, v1) + _logq(x_prev, m2, v2) - _logq(xt, m3, v3)
        np.testing.assert_allclose(lhs, rhs, rtol=1e-8, atol=1e-8, err_msg=f"T={T}, t={t}")


def test_discrete_posterior_matches_continuous_at_grid_times():
    s = sch.vp_linear()
    chain = s.discretize(50)
    rng = np.random.default_rng(1)
    x0, xt = rng.normal(size=(2, 3, 2))
    for t in [2, 17, 50]:
        m_d, v_d, _ = fw.q_posterior_discrete(x0, xt, t, chain)
        m_c, v_c = fw.q_posterior(x0, xt, (t - 1) / 50, t / 50, s)
        np.testing.assert_allclose(m_d, m_c, rtol=1e-10)
        np.testing.assert_allclose(v_d, v_c, rtol=1e-10)


def test_posterior_at_the_first_step_is_a_point_mass_at_x0():
    rng = np.random.default_rng(2)
    x0, xt = rng.normal(size=(2, 6, 2))
    for s in SCHEDULES[:2]:  # alpha_bar(0) = 1
        m, v = fw.q_posterior(x0, xt, 0.0, 0.4, s)
        np.testing.assert_allclose(m, x0, rtol=1e-12, atol=1e-14)
        assert np.all(v == 0)
    chain = sch.cosine().discretize(100)
    m, v, log_v = fw.q_posterior_discrete(x0, xt, 1, chain)
    np.testing.assert_allclose(m, x0, rtol=1e-12, atol=1e-14)
    assert np.all(v == 0) and np.all(np.isfinite(log_v))


def test_chain_of_one_step_transitions_gives_alpha_bar():
    chain = sch.cosine().discretize(40)
    x = np.ones((1, 1))
    var = np.zeros((1, 1))
    for t in range(1, 41):
        m, v = fw.q_xt_xtm1(x, t, chain)
        var = chain.alphas[t] * var + v
        x = m
    np.testing.assert_allclose(x[0, 0], np.sqrt(chain.alpha_bar[40]), rtol=1e-12)
    np.testing.assert_allclose(var[0, 0], 1 - chain.alpha_bar[40], rtol=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: fw.q_sample(np.zeros((2, 2)), 1.5, np.zeros((2, 2)), sch.vp_linear()), "t must lie in"),
        (lambda: fw.q_sample(np.zeros((2, 2)), 0.5, np.zeros((3, 2)), sch.vp_linear()), "x0 and eps must have the same shape"),
        (lambda: fw.q_sample(np.zeros((2, 2)), np.ones(3) / 2, np.zeros((2, 2)), sch.vp_linear()), r"shape \(2,\)"),
        (lambda: fw.q_sample(np.full((2, 2), np.nan), 0.5, np.zeros((2, 2)), sch.vp_linear()), "x0 must be finite"),
        (lambda: fw.q_sample(np.zeros(2), 0.5, np.zeros(2), sch.vp_linear()), r"x0 must be a 2-D array"),
        (lambda: fw.q_sample(np.zeros((2, 2)), 0.5, np.zeros((2, 2)), "vp"), "schedule must be"),
        (lambda: fw.q_posterior(np.zeros((1, 2)), np.zeros((1, 2)), 0.5, 0.5, sch.vp_linear()), "s must be < t"),
        (lambda: fw.q_posterior(np.zeros((1, 2)), np.zeros((2, 2)), 0.1, 0.5, sch.vp_linear()), "same shape"),
        (lambda: fw.q_xt_xs(np.zeros((1, 2)), 0.6, 0.5, sch.vp_linear()), "s must be <= t"),
        (
            lambda: fw.q_posterior_discrete(np.zeros((1, 2)), np.zeros((1, 2)), 0, sch.vp_linear().discretize(10)),
            r"t must be integers in 1..10",
        ),
        (lambda: fw.q_xt_x0_discrete(np.zeros((1, 2)), 11, sch.vp_linear().discretize(10)), r"t must be integers in 0..10"),
        (lambda: fw.q_xt_x0_discrete(np.zeros((1, 2)), 0.5, sch.vp_linear().discretize(10)), "integer step indices"),
        (lambda: fw.q_xt_xtm1(np.zeros((1, 2)), 1, sch.vp_linear()), "chain must be a DiscreteSchedule"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
