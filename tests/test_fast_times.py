r"""fast_sample's explicit step times: the same samples as the named grid they copy, and clear errors at the door."""

import numpy as np
import pytest

from npdiff.data import toy2d
from npdiff.sample import FAST_SAMPLERS, fast_sample
from npdiff.sample.fast import DEFAULT_GRIDS, grid_steps
from npdiff.sample.grids import time_grid


@pytest.fixture(scope="module")
def oracle():
    return toy2d.load("8gaussians").oracle()


@pytest.mark.parametrize("sampler", FAST_SAMPLERS)
@pytest.mark.parametrize("nfe", [5, 10])
def test_times_of_a_named_grid_give_that_grids_samples(oracle, sampler, nfe):
    z = np.random.default_rng(3).standard_normal((20, 2))
    grid = "quadratic" if sampler != "edm" else DEFAULT_GRIDS[sampler]
    times = time_grid(oracle.schedule, grid_steps(sampler, nfe), grid, 1e-3)
    by_name = fast_sample(oracle, None, 0, sampler=sampler, nfe=nfe, grid=grid, x_T=z)
    by_times = fast_sample(oracle, None, 0, sampler=sampler, nfe=nfe, times=times, x_T=z)
    np.testing.assert_array_equal(by_times.x, by_name.x, err_msg=f"{sampler} at nfe={nfe}")
    assert by_times.nfe == by_name.nfe


def test_times_move_the_samples(oracle):
    # the times are used, not ignored: another interior time gives other samples
    z = np.random.default_rng(4).standard_normal((20, 2))
    times = time_grid(oracle.schedule, 4, "quadratic", 1e-3)
    moved = times.copy()
    moved[2] = 0.5 * (times[1] + times[2])
    a = fast_sample(oracle, None, 0, sampler="dpmpp2m", nfe=4, times=times, x_T=z).x
    b = fast_sample(oracle, None, 0, sampler="dpmpp2m", nfe=4, times=moved, x_T=z).x
    assert np.abs(a - b).max() > 1e-4


def test_times_recorded_are_the_times_given(oracle):
    times = np.array([1.0, 0.4, 0.1, 0.02, 1e-3])
    for sampler in ("dpmpp2m", "euler"):
        res = fast_sample(oracle, 5, 0, sampler=sampler, nfe=4, times=times, record=True)
        np.testing.assert_array_equal(res.times, times, err_msg=sampler)


def test_times_may_stop_elsewhere_with_a_matching_t_min(oracle):
    times = np.array([1.0, 0.4, 0.1, 1e-2])
    res = fast_sample(oracle, 5, 0, sampler="ddim", nfe=3, times=times, t_min=1e-2, denoise=False, record=True)
    assert res.times[-1] == 1e-2


@pytest.mark.parametrize("times, kwargs, match", [
    ([1.0, 0.5, 1e-3], {}, r"times must hold 5 times \(4 steps of dpmpp2m on a budget of nfe=4\), got 3"),
    ([1.0, 0.1, 0.5, 0.05, 1e-3], {}, "times must decrease strictly"),
    ([0.9, 0.5, 0.1, 0.05, 1e-3], {}, r"times\[0\] must be schedule.t_max = 1.0"),
    ([1.0, 0.5, 0.1, 0.05, 2e-3], {}, r"times\[-1\] must be t_min = 0.001"),
    ([1.0, 0.5, 0.1, 0.05, 1e-3], {"grid": "log_snr"}, "pass either grid or times, not both"),
    ([[1.0, 0.5], [0.1, 1e-3]], {}, "1-D array"),
])
def test_bad_times_are_refused_by_name(oracle, times, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fast_sample(oracle, 5, 0, sampler="dpmpp2m", nfe=4, times=times, **kwargs)


def test_heun_times_count_its_steps_not_its_evaluations(oracle):
    # heun spends two evaluations a step: 10 evaluations buy 5 steps, 6 times
    with pytest.raises(ValueError, match="6 times"):
        fast_sample(oracle, 5, 0, sampler="heun", nfe=10, times=time_grid(oracle.schedule, 10, "uniform", 1e-3))
