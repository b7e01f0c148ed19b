"""Schedules: the continuous functions, their discretization and the chain's conventions."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npdiff import schedule as sch

SCHEDULES = [sch.vp_linear(), sch.cosine(), sch.log_snr_linear(), sch.vp_linear(0.5, 5.0)]
IDS = [repr(s) for s in SCHEDULES]


@pytest.mark.parametrize("s", SCHEDULES, ids=IDS)
def test_beta_is_minus_derivative_of_log_alpha_bar(s):
    # beta(t) = -d/dt log alpha_bar(t), checked by central differences away from singular ends
    t = np.linspace(0.01, min(0.98, s.t_max - 0.01), 37)
    h = 1e-6
    fd = -(s.log_alpha_bar(t + h) - s.log_alpha_bar(t - h)) / (2 * h)
    np.testing.assert_allclose(s.beta(t), fd, rtol=1e-6, err_msg=repr(s))


@pytest.mark.parametrize("s", SCHEDULES, ids=IDS)
def test_sigma_snr_and_alpha_bar_are_consistent(s):
    t = np.linspace(0.0, s.t_max, 101)
    ab = s.alpha_bar(t)
    np.testing.assert_allclose(s.sigma(t) ** 2, 1.0 - ab, rtol=1e-9, atol=1e-15)
    inner = t[1:]  # log_snr(0) is +inf for schedules with alpha_bar(0) = 1
    np.testing.assert_allclose(np.exp(s.log_snr(inner)), ab[1:] / (1.0 - ab[1:]), rtol=1e-9)
    assert np.all(np.diff(ab) < 0), "alpha_bar must be strictly decreasing"
    assert np.all(s.beta(t) > 0)


def test_closed_forms_at_the_ends():
    vp = sch.vp_linear()
    assert vp.alpha_bar(0.0) == 1.0
    assert math.isclose(float(vp.log_alpha_bar(1.0)), -(0.1 + 0.5 * 19.9), rel_tol=1e-14)
    assert math.isclose(float(vp.beta(1.0)), 20.0) and math.isclose(float(vp.beta(0.0)), 0.1)
    cos = sch.cosine()
    assert math.isclose(float(cos.alpha_bar(0.0)), 1.0, rel_tol=1e-15)
    assert cos.alpha_bar(1.0) < 1e-30 and cos.t_max < 1.0
    assert 1e-7 < cos.alpha_bar(cos.t_max) < 1e-5
    ls = sch.log_snr_linear(10.0, -10.0)
    np.testing.assert_allclose(ls.log_snr([0.0, 0.5, 1.0]), [10.0, 0.0, -10.0])
    assert math.isclose(float(ls.alpha_bar(0.5)), 0.5, rel_tol=1e-14)


def _classic_cosine_betas(T, s=0.008, max_beta=0.999):
    # improved-diffusion's betas_for_alpha_bar, written independently as a plain loop
    def f(t):
        return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2

    return np.array([min(1 - f((i + 1) / T) / f(i / T), max_beta) for i in range(T)])


def test_cosine_discretization_reproduces_the_classic_betas():
    chain = sch.cosine().discretize(1000)
    np.testing.assert_allclose(chain.betas[1:], _classic_cosine_betas(1000), rtol=1e-12, atol=1e-15)
    assert chain.betas[-1] == 0.999
    np.testing.assert_allclose(chain.alpha_bar, np.cumprod(1 - chain.betas), rtol=1e-14)
    assert 1e-9 < chain.alpha_bar[-1] < 1e-8  # ~2.4e-9 after clipping, not 0


def test_vp_linear_is_close_to_ddpm_linear_but_not_equal():
    a = sch.vp_linear().discretize(1000).alpha_bar
    b = sch.ddpm_linear(1000).alpha_bar
    gap = np.max(np.abs(a - b))
    assert gap < 1e-3, gap
    assert gap > 1e-6, "they should differ: log(1 - beta) is not -beta"


def test_ddpm_linear_table():
    c = sch.ddpm_linear(1000)
    assert c.betas[1] == 1e-4 and math.isclose(c.betas[1000], 0.02)
    np.testing.assert_allclose(c.alpha_bar[1:], np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)), rtol=1e-13)


@pytest.mark.parametrize("T", [1, 2, 10, 1000])
@pytest.mark.parametrize("s", SCHEDULES, ids=IDS)
def test_chain_conventions_at_both_ends(s, T):
    c = s.discretize(T)
    assert len(c.betas) == len(c.alpha_bar) == len(c.posterior_variance) == T + 1
    assert c.alpha_bar[0] == 1.0 and c.betas[0] == 0.0 and c.alpha_bar_prev[0] == 1.0
    assert np.all(np.diff(c.alpha_bar) < 0)
    np.testing.assert_allclose(c.alpha_bar_prev[1:], c.alpha_bar[:-1])
    # t = 1: the posterior of x_0 is a point mass at x_0
    assert c.posterior_variance[1] == 0.0
    assert math.isclose(c.posterior_mean_coef1[1], 1.0, rel_tol=1e-12) and c.posterior_mean_coef2[1] == 0.0
    assert np.all(np.isfinite(c.posterior_log_variance_clipped))
    # t = T: beta_tilde_T = beta_T (1 - ab_{T-1}) / (1 - ab_T)
    if T >= 2:
        expect = c.betas[T] * (1 - c.alpha_bar[T - 1]) / (1 - c.alpha_bar[T])
        assert math.isclose(c.posterior_variance[T], expect, rel_tol=1e-12)
        assert c.posterior_log_variance_clipped[1] == np.log(c.posterior_variance[2])
    # without clipping, the chain hits the continuous alpha_bar at every i / T
    if s.max_beta == 1.0:
        np.testing.assert_allclose(c.alpha_bar[1:], s.alpha_bar(np.arange(1, T + 1) / T), rtol=1e-10)


@given(K=st.integers(1, 60), T=st.integers(60, 400))
def test_respacing_preserves_alpha_bar_at_kept_steps(K, T):
    c = sch.vp_linear().discretize(T)
    r = c.respace(K)
    assert r.T == K and r.kept[0] == 0 and r.kept[-1] == T
    np.testing.assert_allclose(r.alpha_bar, c.alpha_bar[r.kept], rtol=1e-12)
    np.testing.assert_allclose(r.times, r.kept / T)
    steps = np.diff(r.kept)
    assert steps.max() - steps.min() <= 1, f"kept steps should be evenly spaced, got {r.kept}"


def test_respace_with_explicit_indices():
    c = sch.cosine().discretize(100)
    r = c.respace([1, 10, 50, 100])
    np.testing.assert_array_equal(r.kept, [0, 1, 10, 50, 100])
    # alpha_bar is rebuilt as a product of (1 - beta): round-off of ~1e-16 per factor, absolute
    np.testing.assert_allclose(r.alpha_bar, c.alpha_bar[[0, 1, 10, 50, 100]], rtol=1e-12, atol=1e-15)


def test_config_round_trip():
    for s in SCHEDULES:
        assert sch.schedule_from_config(s.config()) == s


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sch.vp_linear().alpha_bar(1.5), "t must lie in"),
        (lambda: sch.vp_linear().beta(-0.1), "t must lie in"),
        (lambda: sch.vp_linear().sigma(np.nan), "t must be finite"),
        (lambda: sch.vp_linear().alpha_bar("0.5"), "t must be a real"),
        (lambda: sch.vp_linear().discretize(0), "T must be an integer >= 1"),
        (lambda: sch.vp_linear().discretize(10.0), "T must be an integer"),
        (lambda: sch.DiscreteSchedule([0.1, -0.2]), "betas must lie in"),
        (lambda: sch.DiscreteSchedule([0.1, 1.2]), "betas must lie in"),
        (lambda: sch.DiscreteSchedule([[0.1]]), "betas must be a 1-D"),
        (lambda: sch.ddpm_linear(0), "T must be"),
        (lambda: sch.vp_linear(beta_min=-1.0), "beta_min"),
        (lambda: sch.vp_linear(beta_min=5.0, beta_max=1.0), "beta_max must be >= beta_min"),
        (lambda: sch.cosine(max_beta=1.0), "max_beta"),
        (lambda: sch.log_snr_linear(-1.0, 1.0), "log_snr_min must be < log_snr_max"),
        (lambda: sch.vp_linear().discretize(10).respace(11), "steps must be an integer in 1..10"),
        (lambda: sch.vp_linear().discretize(10).respace([3, 2]), "strictly increasing"),
        (lambda: sch.schedule_from_config({"kind": "nope"}), "schedule kind"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("s", SCHEDULES, ids=IDS)
@pytest.mark.parametrize("T", [5, 1000])
def test_sampler_chain_agrees_with_the_continuous_schedule(s, T):
    # the chain samplers use: T steps on [0, t_max], unclipped, so alpha_bar matches at every call time
    from npdiff.reverse import chain_for

    c = chain_for(s, T)
    assert c.times[-1] == s.t_max
    np.testing.assert_allclose(c.alpha_bar[1:], s.alpha_bar(c.times[1:]), rtol=1e-9)
    r = chain_for(s, T, steps=3)
    np.testing.assert_allclose(r.alpha_bar[1:], s.alpha_bar(r.times[1:]), rtol=1e-9)
