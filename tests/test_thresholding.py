"""Imagen's static and dynamic thresholding of x0_hat, and the samplers' ``threshold`` option.

Expected values are worked out by hand in the comments (sorted absolute values, linear interpolation
between order statistics), not by the code under test.
"""

import numpy as np
import pytest

from npdiff.analytic import GaussianData
from npdiff.reverse import chain_for, p_mean_variance, p_mean_variance_unchecked
from npdiff.sample import ddim_sample, ddpm_sample
from npdiff.schedule import vp_linear
from npdiff.thresholding import IMAGEN_PERCENTILE, THRESHOLDS, dynamic_threshold, static_threshold, threshold_x0


def test_dynamic_thresholding_on_hand_made_rows():
    x = np.array([[0.5, -1.0, 2.0, 4.0],     # |x| sorted 0.5 1 2 4; p = 0.5: position 1.5 -> (1 + 2) / 2 = 1.5
                  [3.0, -3.0, 0.0, 1.0],     # |x| sorted 0 1 3 3;   position 1.5 -> (1 + 3) / 2 = 2
                  [0.2, -0.4, 0.9, -1.2]])   # |x| sorted .2 .4 .9 1.2; position 1.5 -> 0.65 < 1, so s = 1
    got = dynamic_threshold(x, 0.5)
    want = np.array([[0.5 / 1.5, -1.0 / 1.5, 1.0, 1.0],   # clip to [-1.5, 1.5], then / 1.5
                     [1.0, -1.0, 0.0, 0.5],               # clip to [-2, 2], then / 2
                     [0.2, -0.4, 0.9, -1.0]])             # s = 1: static clipping
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)


def test_dynamic_thresholding_at_a_high_percentile_divides_by_nearly_the_largest_value():
    # p = 0.995 of 5 values: position 0.995 * 4 = 3.98 -> 8 + 0.98 * (10 - 8) = 9.96
    x = np.array([[1.0, -2.0, 4.0, 8.0, -10.0]])
    s = 8.0 + 0.98 * 2.0
    np.testing.assert_allclose(dynamic_threshold(x), [[1 / s, -2 / s, 4 / s, 8 / s, -1.0]], rtol=1e-14)
    # p -> 1 tends to the maximum |x|: every value then survives the clip and the row is x / max|x|
    np.testing.assert_allclose(dynamic_threshold(x, 1 - 1e-12), x / 10.0, rtol=1e-10)


def test_dynamic_thresholding_leaves_in_range_rows_unchanged():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, size=(50, 16))
    for p in (0.01, 0.5, IMAGEN_PERCENTILE, 0.999999):
        assert np.array_equal(dynamic_threshold(x, p), x)  # s = max(Q_p, 1) = 1 and nothing is outside [-1, 1]
    assert np.all(np.abs(dynamic_threshold(4.0 * x, 0.7)) <= 1.0)


def test_static_is_the_old_clip_and_none_is_the_identity():
    x = np.array([[-3.0, -1.0, -0.25, 0.0, 0.999, 1.0, 7.5]])
    np.testing.assert_array_equal(static_threshold(x), [[-1.0, -1.0, -0.25, 0.0, 0.999, 1.0, 1.0]])
    np.testing.assert_array_equal(threshold_x0(x, "none"), x)
    assert THRESHOLDS == ("none", "static", "dynamic")


def test_static_threshold_in_the_reverse_step_is_the_clipped_posterior_mean():
    # the mean at a clipped x0_hat, by Ho et al. 2020, Eq. 7 written out here
    oracle = GaussianData(np.array([3.0, -3.0]), np.array([0.1, 0.1]), vp_linear())
    chain = chain_for(oracle.schedule, 100, 20)
    x = np.array([[2.0, -2.5], [0.3, 0.1]])
    i = 4
    _, _, x0_raw = p_mean_variance(oracle, x, i, chain)
    mean, _, x0 = p_mean_variance(oracle, x, i, chain, threshold="static")
    np.testing.assert_array_equal(x0, np.clip(x0_raw, -1.0, 1.0))
    ab, ab_prev = chain.alpha_bar[i], chain.alpha_bar[i - 1]
    beta = 1.0 - ab / ab_prev
    want = np.sqrt(ab_prev) * beta / (1 - ab) * x0 + np.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab) * x
    np.testing.assert_allclose(mean, want, rtol=1e-12)


@pytest.mark.parametrize("sampler", [ddpm_sample, ddim_sample])
def test_thresholded_samplers_stay_in_range_and_none_is_the_default(sampler):
    oracle = GaussianData(np.array([1.5, -0.5]), np.array([0.3, 0.3]), vp_linear())  # mass outside [-1, 1]
    plain = sampler(oracle, 300, 0, steps=30).x
    assert np.array_equal(sampler(oracle, 300, 0, steps=30, threshold="none").x, plain)
    assert np.abs(plain).max() > 1.5
    for threshold in ("static", "dynamic"):
        x = sampler(oracle, 300, 0, steps=30, threshold=threshold).x
        assert np.abs(x).max() <= 1.0 + 1e-12, threshold  # the last step returns the thresholded x0_hat


def test_thresholding_reproducible_from_a_seed():
    oracle = GaussianData(np.array([1.5, -0.5]), np.array([0.3, 0.3]), vp_linear())
    a = ddpm_sample(oracle, 50, 7, steps=10, threshold="dynamic", percentile=0.8).x
    b = ddpm_sample(oracle, 50, np.random.default_rng(7), steps=10, threshold="dynamic", percentile=0.8).x
    assert np.array_equal(a, b)


@pytest.mark.parametrize("percentile", [0.0, 1.0, -0.5, 99.5, float("nan")])
def test_bad_percentile_is_refused_by_name(percentile):
    oracle = GaussianData(np.zeros(2), np.ones(2), vp_linear())
    with pytest.raises(ValueError, match="percentile"):
        ddpm_sample(oracle, 4, 0, steps=2, threshold="dynamic", percentile=percentile)
    with pytest.raises(ValueError, match="percentile"):
        dynamic_threshold(np.zeros((1, 3)), percentile)


def test_bad_threshold_and_shape_are_refused():
    oracle = GaussianData(np.zeros(2), np.ones(2), vp_linear())
    with pytest.raises(ValueError, match="threshold"):
        ddim_sample(oracle, 4, 0, steps=2, threshold="clip")
    with pytest.raises(ValueError, match="threshold"):
        ddim_sample(oracle, 4, 0, steps=2, threshold=True)
    with pytest.raises(ValueError, match="x0_hat"):
        static_threshold(np.zeros(3))
    with pytest.raises(TypeError):
        ddpm_sample(oracle, 4, 0, steps=2, clip_x0=1.0)  # the old name is gone: threshold="static" is its meaning
    # the reverse step takes the thresholding by name only: the old positional clip_x0 (None or a float) must fail
    # loudly, not be read as a thresholding method
    chain = chain_for(oracle.schedule, 10)
    for old in (None, 1.0):
        with pytest.raises(TypeError):
            p_mean_variance(oracle, np.zeros((1, 2)), 3, chain, old)
        with pytest.raises(TypeError):
            p_mean_variance_unchecked(oracle, np.zeros((1, 2)), 3, chain, old)
