"""Sample-quality distances: kernels against their NumPy twins, and the statistics' properties."""

import numpy as np
import pytest

from npdiff import metrics


@pytest.mark.parametrize("kind, scale", [(0, 0.0), (1, 0.7)])
@pytest.mark.parametrize("distinct", [False, True])
def test_pair_sum_kernel_matches_numpy_twin(kind, scale, distinct):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(57, 3)), rng.normal(size=(57 if distinct else 41, 3))
    if distinct:
        b = a
    got = metrics._pair_sum_numba(a, b, kind, scale, distinct)
    ref = metrics._pair_sum_numpy(a, b, kind, scale, distinct)
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_energy_distance_brute_force_and_properties():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 2)), rng.normal(loc=1.0, size=(25, 2))
    dxy = np.linalg.norm(x[:, None] - y[None], axis=-1).mean()
    dxx = np.linalg.norm(x[:, None] - x[None], axis=-1).sum() / (30 * 29)
    dyy = np.linalg.norm(y[:, None] - y[None], axis=-1).sum() / (25 * 24)
    assert np.isclose(metrics.energy_distance(x, y), 2 * dxy - dxx - dyy, rtol=1e-12)
    assert np.isclose(metrics.energy_distance(x, y), metrics.energy_distance(y, x), rtol=1e-12)
    v_stat = 2 * dxy - dxx * 29 / 30 - dyy * 24 / 25
    assert np.isclose(metrics.energy_distance(x, y, unbiased=False), v_stat, rtol=1e-12)
    # shifted sets are farther apart than two draws of one distribution
    same = metrics.energy_distance(rng.normal(size=(500, 2)), rng.normal(size=(500, 2)))
    shifted = metrics.energy_distance(rng.normal(size=(500, 2)), rng.normal(loc=0.5, size=(500, 2)))
    assert abs(same) < 0.02 < shifted


def test_mmd_brute_force():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(20, 2)), rng.normal(size=(15, 2)) * 2
    h = 0.8

    def k(a, b):
        return np.exp(-np.sum((a[:, None] - b[None]) ** 2, -1) / (2 * h * h))

    kxx, kyy = k(x, x), k(y, y)
    ref = (kxx.sum() - np.trace(kxx)) / (20 * 19) + (kyy.sum() - np.trace(kyy)) / (15 * 14) - 2 * k(x, y).mean()
    assert np.isclose(metrics.mmd_rbf(x, y, h), ref, rtol=1e-12)


def test_mean_log_density():
    class Std:
        def log_prob(self, x):
            return -0.5 * np.sum(x**2, 1) - np.log(2 * np.pi)

    x = np.random.default_rng(3).normal(size=(20000, 2))
    mean, se = metrics.mean_log_density(x, Std())
    entropy = 1 + np.log(2 * np.pi)  # of N(0, I_2)
    assert abs(mean + entropy) < 4 * se and se < 0.01


@pytest.mark.parametrize("call, match", [
    (lambda: metrics.energy_distance(np.zeros((5, 2)), np.zeros((5, 3))), "y must have 2 columns"),
    (lambda: metrics.energy_distance(np.zeros((1, 2)), np.zeros((5, 2))), "at least 2 points"),
    (lambda: metrics.mmd_rbf(np.zeros((5, 2)), np.zeros((5, 2)), bandwidth=0), "bandwidth must lie in"),
    (lambda: metrics.mean_log_density(np.zeros((5, 2)), object()), "log_prob"),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("h", [1e-160, 1e-200, 5e-324])
def test_mmd_bandwidth_whose_square_underflows_is_refused_as_the_message_says(h):
    with pytest.raises(ValueError, match="bandwidth must be at least 1e-150"):
        metrics.mmd_rbf(np.zeros((3, 2)), np.ones((3, 2)), bandwidth=h)
