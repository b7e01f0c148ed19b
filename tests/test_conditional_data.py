"""Labelled toy sets: the labels are the generator's own choices, drawn by the same draws as the points, and the
class-conditional densities are those of the labels' shares of the mixture (Bayes' rule holds point by point)."""

import numpy as np
import pytest
from scipy.special import logsumexp

from npdiff._check import as_labels
from npdiff.data import toy2d

LABELLED = {"8gaussians": 8, "checkerboard": 2, "rings": 4, "circles": 2, "moons": 2, "pinwheel": 5, "2spirals": 2}


@pytest.mark.parametrize("name", sorted(LABELLED))
def test_labels_are_drawn_with_the_points_and_are_a_draw_of_the_posterior(name):
    d = toy2d.load(name)
    C = LABELLED[name]
    assert d.num_classes == C
    x, y = d.sample_labelled(3000, np.random.default_rng(1))
    np.testing.assert_array_equal(x, d.sample(3000, np.random.default_rng(1)))  # the same draws as sample
    assert y.dtype == np.int64 and set(np.unique(y)) == set(range(C))
    freq = np.bincount(y, minlength=C) / y.size  # every set draws its label uniformly
    assert np.all(np.abs(freq - 1 / C) < 5 * np.sqrt((1 / C) * (1 - 1 / C) / y.size)), freq
    # Bayes' rule point by point: log p(x) = logsumexp_c (log pi_c + log p(x | c)) with pi_c = 1/C
    cond = np.stack([d.log_prob(x, c) for c in range(C)], axis=1)  # (n, C)
    np.testing.assert_allclose(logsumexp(cond, axis=1) - np.log(C), d.log_prob(x), rtol=1e-10, atol=1e-10)
    # if y ~ p(y | x) then E[p(y | x)] = E[sum_c p(c | x)^2]: a label drawn from the generator is one such draw
    post = np.exp(cond - logsumexp(cond, axis=1, keepdims=True))
    own = post[np.arange(y.size), y]
    diff = own - np.sum(post**2, axis=1)
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(diff.size) + 1e-12, (diff.mean(), diff.std())
    # one label per point and one label for all agree
    np.testing.assert_allclose(d.log_prob(x[:20], y[:20]), cond[np.arange(20), y[:20]], rtol=1e-12)


@pytest.mark.parametrize("name", ["8gaussians", "2spirals", "pinwheel"])
def test_each_class_conditional_density_integrates_to_one(name):
    d = toy2d.load(name)
    h, spacing = {"8gaussians": (6.5, 0.1), "2spirals": (4.5, 0.075), "pinwheel": (6.0, 0.05)}[name]
    pts = toy2d.grid_points(h, spacing)
    c = d.num_classes - 1
    mass = np.exp(d.log_prob(pts, c)).sum() * spacing**2
    np.testing.assert_allclose(mass, 1.0, atol=1e-6, err_msg=f"{name}, class {c}")


def test_labelled_oracle_of_a_set_is_its_conditional_at_time_zero():
    d = toy2d.load("moons")
    x, y = d.sample_labelled(50, np.random.default_rng(2))
    np.testing.assert_allclose(d.oracle().log_prob(x, 0.0, y), d.log_prob(x, y), rtol=1e-13)
    assert d.oracle().num_classes == 2


def test_a_set_without_labels_and_bad_labels_say_so():
    d = toy2d.load("swissroll")
    assert d.num_classes == 0
    with pytest.raises(ValueError, match="swissroll has no labels"):
        d.sample_labelled(3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="y must be None"):
        d.log_prob(np.zeros((2, 2)), 0)
    g = toy2d.load("8gaussians")
    with pytest.raises(ValueError, match=r"y must be integers in 0\.\.7"):
        g.log_prob(np.zeros((2, 2)), 8)
    with pytest.raises(ValueError, match=r"y must be an int or an array of shape \(2,\)"):
        g.log_prob(np.zeros((2, 2)), [1, 2, 3])


def test_as_labels_accepts_ints_and_refuses_everything_else():
    np.testing.assert_array_equal(as_labels(3, 4, 5), [3, 3, 3, 3])
    np.testing.assert_array_equal(as_labels(np.array([0, 4]), 2, 5), [0, 4])
    np.testing.assert_array_equal(as_labels([1.0, 2.0], None, 5), [1, 2])  # integral floats convert exactly
    assert as_labels(None, 3, 0) is None and as_labels(None, 3, 5) is None
    for bad, err in ((-1, ValueError), (5, ValueError), (1.5, ValueError), (np.nan, ValueError), (True, TypeError),
                     ("2", TypeError), (np.array([1 + 0j]), TypeError), ([[1, 2]], ValueError), ([1, 2, 3], ValueError)):
        with pytest.raises(err, match="y must"):
            as_labels(bad, 2, 5)
    with pytest.raises(ValueError, match="y must be None"):
        as_labels(0, 2, 0)
