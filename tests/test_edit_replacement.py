"""Replacement and RePaint against closed forms on Gaussian data, and their reproducibility.

On Gaussian data with the exact oracle every step of replacement is linear-Gaussian, so the law of its
samples is a Gaussian whose moments follow a recursion written here from the chain's coefficients and the
closed-form E[x0 | x_t]: the sampler must match it, and the recursion shows replacement's bias against the
true conditional (Gaussian conditioning).
"""

from __future__ import annotations

import numpy as np
import pytest

from npdiff.analytic import GaussianData
from npdiff.edit import keep_known, repaint_nfe, repaint_sample, repaint_times, replacement_sample
from npdiff.reverse import chain_for

MU = np.array([0.5, -0.3])
COV = np.array([[1.0, 0.9], [0.9, 1.2]])
KNOWN, MASK = np.array([1.5, 0.0]), np.array([True, False])


def replacement_moments(data: GaussianData, steps: int, known: np.ndarray, mask: np.ndarray):
    """Mean (D,) and covariance (D, D) of replacement's output: the linear-Gaussian recursion step by step."""
    chain = chain_for(data.schedule, 1000, steps)
    D = data.dim
    P, K = np.diag(~mask * 1.0), np.diag(mask * 1.0)
    u, S = np.zeros(D), np.eye(D)  # x_K ~ N(0, I)
    for i in range(chain.T, 0, -1):
        ab = chain.alpha_bar[i]
        sigma_t = ab * data.cov + (1 - ab) * np.eye(D)
        A = np.sqrt(ab) * data.cov @ np.linalg.inv(sigma_t)  # x0_hat = A x + b (Gaussian conditioning)
        b = data.mean - np.sqrt(ab) * A @ data.mean
        G = chain.posterior_mean_coef1[i] * A + chain.posterior_mean_coef2[i] * np.eye(D)
        u, S = G @ u + chain.posterior_mean_coef1[i] * b, G @ S @ G.T
        ab_prev = chain.alpha_bar[i - 1]
        if i > 1:  # fixed-large variance beta_i, and the known part drawn from q(x_{i-1} | y)
            S = S + chain.betas[i] * np.eye(D)
        u = P @ u + K @ (np.sqrt(ab_prev) * known)
        S = P @ S @ P + (1 - ab_prev) * K if i > 1 else P @ S @ P
    return u, S


def test_replacement_samples_the_closed_form_recursion_and_it_is_biased():
    data = GaussianData(MU, COV)
    n, steps = 20000, 50
    res = replacement_sample(data, KNOWN, MASK, n, np.random.default_rng(1), steps=steps)
    u, S = replacement_moments(data, steps, KNOWN, MASK)
    x2 = res.x[:, 1]
    se_mean, se_var = np.sqrt(S[1, 1] / n), S[1, 1] * np.sqrt(2.0 / n)
    assert abs(x2.mean() - u[1]) < 4 * se_mean, (x2.mean(), u[1])
    assert abs(x2.var() - S[1, 1]) < 4 * se_var, (x2.var(), S[1, 1])
    np.testing.assert_array_equal(res.x[:, 0], KNOWN[0])  # the known coordinate is the known value
    # the true conditional, by Gaussian conditioning: replacement misses its mean by many standard errors
    true_mean = MU[1] + COV[1, 0] / COV[0, 0] * (KNOWN[0] - MU[0])
    true_var = COV[1, 1] - COV[1, 0] ** 2 / COV[0, 0]
    assert abs(u[1] - true_mean) > 0.2 and abs(u[1] - true_mean) > 20 * se_mean, (u[1], true_mean)
    assert S[1, 1] > true_var  # and it is too wide: the known coordinate's noise does not agree with x2


def test_replacement_bias_does_not_vanish_with_more_steps():
    data = GaussianData(MU, COV)
    true_mean = MU[1] + COV[1, 0] / COV[0, 0] * (KNOWN[0] - MU[0])
    gaps = [abs(replacement_moments(data, k, KNOWN, MASK)[0][1] - true_mean) for k in (100, 1000)]
    assert min(gaps) > 0.2, gaps  # a bias of the method, not of the discretization


def test_replacement_is_exact_in_law_for_independent_coordinates():
    # with C diagonal the known coordinate says nothing about the other: the recursion of x2 does not see y
    data = GaussianData(MU, np.diag([1.0, 1.2]))
    u1, S1 = replacement_moments(data, 50, KNOWN, MASK)
    u2, S2 = replacement_moments(data, 50, np.array([-3.0, 0.0]), MASK)
    assert u1[1] == pytest.approx(u2[1], abs=1e-12) and S1[1, 1] == pytest.approx(S2[1, 1], abs=1e-12)
    u1000, S1000 = replacement_moments(data, 1000, KNOWN, MASK)
    assert u1000[1] == pytest.approx(MU[1], abs=2e-3) and S1000[1, 1] == pytest.approx(1.2, rel=1e-2)


def test_repaint_moves_towards_the_true_conditional():
    data = GaussianData(MU, COV)
    true_mean = MU[1] + COV[1, 0] / COV[0, 0] * (KNOWN[0] - MU[0])
    n = 8000
    plain = replacement_sample(data, KNOWN, MASK, n, np.random.default_rng(2), steps=50).x[:, 1].mean()
    resampled = repaint_sample(data, KNOWN, MASK, n, np.random.default_rng(2), steps=50, jump_length=5,
                               resamplings=8).x[:, 1].mean()
    assert abs(resampled - true_mean) < 0.5 * abs(plain - true_mean), (plain, resampled, true_mean)


def test_repaint_without_resampling_is_replacement_draw_for_draw():
    data = GaussianData(MU, COV)
    a = replacement_sample(data, KNOWN, MASK, 64, np.random.default_rng(5), steps=30)
    b = repaint_sample(data, KNOWN, MASK, 64, np.random.default_rng(5), steps=30, jump_length=4, resamplings=1)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.nfe == b.nfe == 30


@pytest.mark.parametrize("steps, j, r", [(10, 1, 1), (10, 1, 3), (12, 3, 2), (250, 10, 10), (7, 6, 4)])
def test_repaint_times_move_one_step_and_count_evaluations(steps, j, r):
    times = repaint_times(steps, j, r)
    assert times[0] == steps and times[-1] == 0
    assert set(np.abs(np.diff(times)).tolist()) == {1}
    assert np.count_nonzero(np.diff(times) < 0) == repaint_nfe(steps, j, r)
    # every jump goes up exactly j indices in a row
    ups = np.diff(times) > 0
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], ups.astype(int), [0]]))))[::2]
    assert np.all(runs == j) and runs.size == (r - 1) * len(range(1, steps - j + 1, j))


@pytest.mark.parametrize("fn, kw", [(replacement_sample, {}), (repaint_sample, dict(jump_length=2, resamplings=2))])
def test_inpainting_is_reproducible_from_a_seed(fn, kw):
    data = GaussianData(MU, COV)
    a = fn(data, KNOWN, MASK, 32, np.random.default_rng(7), steps=10, **kw).x
    b = fn(data, KNOWN, MASK, 32, 7, steps=10, **kw).x
    c = fn(data, KNOWN, MASK, 32, np.random.default_rng(8), steps=10, **kw).x
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_per_row_masks_and_known_values():
    data = GaussianData(MU, COV)
    known = np.array([[1.0, 0.0], [0.0, -2.0]])
    mask = np.array([[1, 0], [0, 1]])
    res = replacement_sample(data, known, mask, None, np.random.default_rng(0), steps=5)
    assert res.x.shape == (2, 2) and res.x[0, 0] == 1.0 and res.x[1, 1] == -2.0
    np.testing.assert_array_equal(keep_known(np.zeros((2, 2)) + 9.0, known, mask), [[1.0, 9.0], [9.0, -2.0]])
