"""The exact 2D conditional by quadrature against closed forms, and the exact 1-D Wasserstein-1 distance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from npdiff.data import toy2d
from npdiff.edit import exact_conditional
from npdiff.metrics import wasserstein1_to_cdf

CENTERS = 4.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)], dtype=float)
CENTERS[4:] /= np.sqrt(2.0)
CENTERS /= 1.414
S = 0.5 / 1.414  # the 8 Gaussians' standard deviation


@pytest.mark.parametrize("a", [0.0, 1.0, 3.5])
def test_8gaussians_conditional_is_the_closed_form_mixture(a):
    cond = exact_conditional(toy2d.load("8gaussians"), a)
    w = stats.norm.pdf(a, CENTERS[:, 0], S) / 8  # (8,) the joint's weight of each component at x1 = a
    x = np.linspace(-5, 5, 41)
    F = np.sum(w[:, None] * stats.norm.cdf(x[None, :], CENTERS[:, 1:2], S), axis=0) / w.sum()
    np.testing.assert_allclose(cond.cdf_at(x), F, atol=2e-7)
    assert cond.log_marginal == pytest.approx(np.log(w.sum()), abs=1e-7)


def test_checkerboard_conditional_is_uniform_on_two_squares():
    cond = exact_conditional(toy2d.load("checkerboard"), 1.0)  # the column [0, 2): x2 in [-4, -2) or [0, 2)
    x = np.array([-5.0, -4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    F = np.array([0.0, 0.0, 0.25, 0.5, 0.5, 0.5, 0.75, 1.0, 1.0])
    np.testing.assert_allclose(cond.cdf_at(x), F, atol=1e-3)
    assert cond.log_marginal == pytest.approx(np.log(4 / 32), abs=1e-3)  # two squares of side 2 at 1/32


def test_exact_draws_follow_the_cdf():
    cond = exact_conditional(toy2d.load("rings"), 1.875)
    x = cond.sample(20000, np.random.default_rng(0))
    # Kolmogorov-Smirnov against the tabulated CDF: the draws are exact draws of it
    assert stats.kstest(x, cond.cdf_at).pvalue > 1e-3
    assert cond.wasserstein1(x) < 0.03
    np.testing.assert_array_equal(x, cond.sample(20000, np.random.default_rng(0)))


def test_w1_of_one_point_to_a_uniform():
    assert wasserstein1_to_cdf([0.0], [0.0, 1.0], [0.0, 1.0]) == pytest.approx(0.5, abs=1e-15)
    assert wasserstein1_to_cdf([0.5], [0.0, 1.0], [0.0, 1.0]) == pytest.approx(0.25, abs=1e-15)
    assert wasserstein1_to_cdf([3.0], [0.0, 1.0], [0.0, 1.0]) == pytest.approx(2.5, abs=1e-15)  # beyond the grid


def test_w1_matches_a_fine_numerical_integral():
    rng = np.random.default_rng(1)
    samples = rng.normal(size=50) * 0.8
    grid = np.linspace(-3, 3, 13)
    cdf = np.concatenate([[0.0], np.cumsum(rng.random(12))])
    cdf /= cdf[-1]
    z = np.linspace(-6, 6, 2_000_001)
    mid = 0.5 * (z[:-1] + z[1:])
    Fn = np.searchsorted(np.sort(samples), mid, side="right") / samples.size
    integral = np.sum(np.abs(Fn - np.interp(mid, grid, cdf))) * (z[1] - z[0])
    assert wasserstein1_to_cdf(samples, grid, cdf) == pytest.approx(integral, abs=1e-5)


def test_w1_equals_the_sorted_difference_between_two_equal_size_sets():
    # a CDF with a step at each point of a second set (steep linear ramps) gives the classical formula
    rng = np.random.default_rng(2)
    x, y = np.sort(rng.normal(size=40)), np.sort(rng.normal(size=40))
    eps = 1e-9
    grid = np.sort(np.concatenate([y - eps, y + eps]))
    cdf = np.concatenate([[0.0], np.repeat(np.arange(1, 40) / 40, 2), [1.0]])
    assert wasserstein1_to_cdf(x, grid, cdf) == pytest.approx(np.mean(np.abs(x - y)), abs=1e-7)


@pytest.mark.parametrize("kw, match", [(dict(a=5.0, dataset="checkerboard"), "zero density"),
                                       (dict(a=0.0, dataset="8gaussians", lo=-1.0, hi=1.0), "cuts off"),
                                       (dict(a=0.0, dataset="8gaussians", known=2), "known"),
                                       (dict(a=np.nan, dataset="8gaussians"), "a"),
                                       (dict(a=0.0, dataset="8gaussians", lo=2.0, hi=1.0), "lo")])
def test_conditional_bad_input(kw, match):
    kw["dataset"] = toy2d.load(kw["dataset"])
    with pytest.raises(ValueError, match=match):
        exact_conditional(**kw)


@pytest.mark.parametrize("args, match", [(([0.0], [0.0, 1.0], [0.1, 1.0]), "cdf"),
                                         (([0.0], [1.0, 0.0], [0.0, 1.0]), "grid"),
                                         (([np.nan], [0.0, 1.0], [0.0, 1.0]), "samples"),
                                         (([[0.0]], [0.0, 1.0], [0.0, 1.0]), "samples"),
                                         (([0.0], [0.0, 1.0, 2.0], [0.0, 1.0]), "cdf")])
def test_w1_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        wasserstein1_to_cdf(*args)
