r"""Step times by the exact KL: the parameterization is monotone and invertible, folds are never scored as
KLs, and the search lowers the KL on fresh points."""

import numpy as np
import pytest

from npdiff.analytic import GaussianData
from npdiff.data import toy2d
from npdiff.sample import fast_sample
from npdiff.sample.fast import grid_steps
from npdiff.sample.grids import time_grid
from npdiff.sample.step_search import (
    FOLD_PENALTY,
    flow_log_density,
    log_snr_positions,
    optimize_steps,
    steps_kl,
    times_from_positions,
)
from npdiff.schedule import vp_linear

T_MIN = 1e-3


@pytest.fixture(scope="module")
def oracle():
    return toy2d.load("8gaussians").oracle()


def log_q_of(oracle):
    return lambda x: oracle.log_prob(x, T_MIN)


@pytest.mark.parametrize("seed", range(5))
def test_positions_give_decreasing_times_with_fixed_ends(seed):
    s = vp_linear()
    theta = np.random.default_rng(seed).normal(0.0, 4.0, size=7)  # wild values too
    t = times_from_positions(s, theta, T_MIN)
    assert t.shape == (9,)
    assert t[0] == s.t_max and t[-1] == T_MIN
    assert np.all(np.diff(t) < 0.0), t


@pytest.mark.parametrize("grid", ["uniform", "log_snr", "karras", "quadratic"])
def test_positions_of_a_grid_give_the_grid_back(grid):
    s = vp_linear()
    times = time_grid(s, 8, grid, T_MIN)
    np.testing.assert_allclose(times_from_positions(s, log_snr_positions(s, times), T_MIN), times, rtol=1e-9,
                               err_msg=grid)


def test_log_snr_increments_are_the_softmax_of_the_positions():
    # lambda_k - lambda_{k-1} = Lambda e^{theta_k} / sum e^theta, with theta_0 = 0: computed here by hand
    s = vp_linear()
    theta = np.array([0.3, -1.0, 2.0])
    lam = s.log_snr(times_from_positions(s, theta, T_MIN))
    w = np.exp([0.0, 0.3, -1.0, 2.0])
    np.testing.assert_allclose(np.diff(lam), (s.log_snr(T_MIN) - s.log_snr(1.0)) * w / w.sum(), rtol=1e-8)


def test_steps_kl_is_the_control_variate_kl_of_sampler_kl(oracle):
    from npdiff.likelihood import sampler_kl

    z = np.random.default_rng(0).standard_normal((100, 2))
    times = time_grid(oracle.schedule, 6, "quadratic", T_MIN)
    kl, se, folded = steps_kl(oracle, log_q_of(oracle), z, times, sampler="dpmpp2m", nfe=6)
    ref = sampler_kl(lambda zz: fast_sample(oracle, None, 0, sampler="dpmpp2m", nfe=6, grid="quadratic",
                                            denoise=False, x_T=zz).x, z, log_q_of(oracle))
    assert folded == 0
    assert kl == pytest.approx(ref.kl_cv, rel=1e-12) and se == pytest.approx(ref.se_cv, rel=1e-12)


def test_a_folded_sampler_has_no_kl(oracle):
    # EDM's Heun on Karras's grid at 8 evaluations folds 8gaussians (det dF/dz < 0 at some points)
    z = np.random.default_rng(5).standard_normal((200, 2))
    kl, se, folded = steps_kl(oracle, log_q_of(oracle), z, time_grid(oracle.schedule, 4, "karras", T_MIN),
                              sampler="edm", nfe=8)
    assert folded > 0
    assert kl == np.inf and se == np.inf


def test_search_walks_away_from_a_folding_start(oracle):
    start = time_grid(oracle.schedule, grid_steps("edm", 8), "karras", T_MIN)
    res = optimize_steps(oracle, log_q_of(oracle), 0, sampler="edm", nfe=8, n_fit=100, n_check=200, start=start,
                         max_evaluations=60)
    assert res.kl_start == np.inf  # the start folds on the validation points
    assert res.kl_fit < FOLD_PENALTY and np.isfinite(res.kl) and res.folded == 0


def test_search_lowers_the_kl_on_fresh_points(oracle):
    res = optimize_steps(oracle, log_q_of(oracle), 1, sampler="dpmpp2m", nfe=5, n_fit=200, n_check=1000,
                         max_evaluations=80)
    assert res.times.shape == (6,) and res.times[0] == oracle.schedule.t_max and res.times[-1] == T_MIN
    assert res.evaluations <= 80 + 2 * 4  # Powell may finish its last line search
    assert res.kl < res.kl_start - 3.0 * np.hypot(res.kl_se, res.kl_start_se), res
    # the times it reports are the times it scored: re-scored on other points they keep their KL
    z = np.random.default_rng(9).standard_normal((1000, 2))
    kl, se, _ = steps_kl(oracle, log_q_of(oracle), z, res.times, sampler="dpmpp2m", nfe=5)
    assert abs(kl - res.kl) < 4.0 * np.hypot(se, res.kl_se)


def test_search_is_reproducible(oracle):
    kw = dict(sampler="dpmpp2m", nfe=4, n_fit=50, n_check=50, max_evaluations=20)
    a = optimize_steps(oracle, log_q_of(oracle), 7, **kw)
    b = optimize_steps(oracle, log_q_of(oracle), 7, **kw)
    np.testing.assert_array_equal(a.times, b.times)


def test_flow_log_density_is_the_data_density_for_an_oracle(oracle):
    x = oracle.sample(30, np.random.default_rng(2)) + 0.03 * np.random.default_rng(3).standard_normal((30, 2))
    np.testing.assert_allclose(flow_log_density(oracle, rtol=1e-8, atol=1e-8)(x), oracle.log_prob(x, T_MIN),
                               atol=2e-3)


def test_gaussian_data_steps_need_no_search():
    # Gaussian data: every 2nd-order sampler is near exact; the search may not make it worse on fresh points
    data = GaussianData(np.array([1.0, -1.0]), 0.5)
    res = optimize_steps(data, lambda x: data.log_prob(x, T_MIN), 0, nfe=6, n_fit=100, n_check=500,
                         max_evaluations=40)
    assert res.kl <= res.kl_start + 3.0 * np.hypot(res.kl_se, res.kl_start_se)
    assert res.kl < 1e-3


@pytest.mark.parametrize("kwargs, error, match", [
    ({"sampler": "rk45"}, ValueError, "sampler"),
    ({"nfe": 1}, ValueError, "nfe"),
    ({"n_fit": 1}, ValueError, "n_fit"),
    ({"n_check": 0}, ValueError, "n_check"),
    ({"start": "cosine"}, ValueError, "start"),
    ({"start": np.array([1.0, 0.5, 1e-3])}, ValueError, r"times must hold 11 times"),
    ({"max_evaluations": 0}, ValueError, "max_evaluations"),
    ({"t_min": 2.0}, ValueError, "t_min"),
])
def test_bad_arguments_are_refused_by_name(oracle, kwargs, error, match):
    with pytest.raises(error, match=match):
        optimize_steps(oracle, log_q_of(oracle), 0, **kwargs)


def test_log_q_must_be_callable(oracle):
    with pytest.raises(TypeError, match="log_q must be callable"):
        optimize_steps(oracle, np.zeros(3), 0)


def test_the_examples_of_the_module_run():
    import doctest
    import inspect

    from npdiff.sample import step_search

    result = doctest.testmod(step_search, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
    missing = [n for n in step_search.__all__ if inspect.isfunction(getattr(step_search, n))
               and "Examples\n" not in (inspect.getdoc(getattr(step_search, n)) or "")]
    assert not missing, missing
