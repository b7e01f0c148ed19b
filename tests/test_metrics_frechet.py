"""The Fréchet distance between fitted Gaussians: closed forms, its properties, and bad input."""

import numpy as np
import pytest

from npdiff import metrics


def orthogonal(F, rng):
    q, r = np.linalg.qr(rng.normal(size=(F, F)))
    return q * np.sign(np.diag(r))


def points_with_moments(mean, cov, n, rng):
    r"""n points whose sample mean is exactly ``mean`` and sample covariance (ddof = 1) exactly ``cov``."""
    z = rng.normal(size=(n, mean.size))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(z, rowvar=False)))).T  # whitened: sample covariance I
    w, V = np.linalg.eigh(cov)
    root = V * np.sqrt(np.clip(w, 0.0, None)) @ V.T  # cov^(1/2), which also serves a singular cov
    return mean + z @ root


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("F", [1, 3, 16])
def test_commuting_covariances_match_the_closed_form(seed, F):
    # for S_a = Q diag(l_a) Q^T and S_b = Q diag(l_b) Q^T the root of S_a S_b is Q diag(sqrt(l_a l_b)) Q^T, so
    # d^2 = |mu_a - mu_b|^2 + sum_i (sqrt(l_a,i) - sqrt(l_b,i))^2
    rng = np.random.default_rng(seed)
    Q = orthogonal(F, rng)
    la, lb = rng.uniform(0.1, 3.0, F), rng.uniform(0.1, 3.0, F)
    mu_a, mu_b = rng.normal(size=F), rng.normal(size=F)
    exact = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(la) - np.sqrt(lb)) ** 2)
    cov_a, cov_b = (Q * la) @ Q.T, (Q * lb) @ Q.T
    assert metrics.frechet_gaussians(mu_a, cov_a, mu_b, cov_b) == pytest.approx(exact, rel=1e-9, abs=1e-12)
    # the same through point sets whose fitted Gaussians are exactly these
    a, b = points_with_moments(mu_a, cov_a, 200, rng), points_with_moments(mu_b, cov_b, 150, rng)
    assert metrics.frechet_distance(a, b) == pytest.approx(exact, rel=1e-8, abs=1e-10)


def test_one_dimension_is_the_difference_of_means_and_of_standard_deviations():
    # d^2 = (m_a - m_b)^2 + (s_a - s_b)^2, the 2-Wasserstein distance of two normals
    assert metrics.frechet_gaussians([1.0], [[4.0]], [-0.5], [[0.25]]) == pytest.approx(1.5**2 + 1.5**2, rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_non_commuting_two_by_two_closed_form(seed):
    # in 2-D, S_a S_b has eigenvalues l1, l2 >= 0, and tr (S_a S_b)^(1/2) = sqrt(l1) + sqrt(l2)
    # = sqrt(tr(S_a S_b) + 2 sqrt(det S_a det S_b))
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    cov_a, cov_b = A @ A.T + 0.1 * np.eye(2), B @ B.T + 0.1 * np.eye(2)
    mu_a, mu_b = rng.normal(size=2), rng.normal(size=2)
    root_trace = np.sqrt(np.trace(cov_a @ cov_b) + 2 * np.sqrt(np.linalg.det(cov_a) * np.linalg.det(cov_b)))
    exact = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * root_trace
    assert metrics.frechet_gaussians(mu_a, cov_a, mu_b, cov_b) == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_general_covariances_match_the_symmetric_route(seed):
    # S_a S_b is similar to S_a^(1/2) S_b S_a^(1/2), which is symmetric: an independent route by eigh alone
    rng = np.random.default_rng(seed)
    F = 12
    A, B = rng.normal(size=(F, 2 * F)), rng.normal(size=(F, F))
    cov_a, cov_b = A @ A.T / (2 * F), B @ B.T / F
    w, V = np.linalg.eigh(cov_a)
    half = V * np.sqrt(w) @ V.T
    root_trace = np.sqrt(np.clip(np.linalg.eigvalsh(half @ cov_b @ half), 0.0, None)).sum()
    exact = np.trace(cov_a) + np.trace(cov_b) - 2 * root_trace
    assert metrics.frechet_gaussians(np.zeros(F), cov_a, np.zeros(F), cov_b) == pytest.approx(exact, rel=1e-9)


def test_singular_covariances_are_handled():
    # features that never vary (dead ReLU units) make both covariances singular: the closed form still holds
    rng = np.random.default_rng(5)
    F = 10
    Q = orthogonal(F, rng)
    la, lb = rng.uniform(0.5, 2.0, F), rng.uniform(0.5, 2.0, F)
    la[:3] = 0.0
    lb[2:5] = 0.0
    exact = np.sum((np.sqrt(la) - np.sqrt(lb)) ** 2)
    got = metrics.frechet_gaussians(np.zeros(F), (Q * la) @ Q.T, np.zeros(F), (Q * lb) @ Q.T)
    assert got == pytest.approx(exact, rel=1e-7)
    # and as point sets with constant columns, fewer points than features included
    a, b = rng.normal(size=(40, F)), rng.normal(size=(7, F)) * 2.0
    a[:, :3], b[:, 2:6] = 0.5, -1.0
    d2 = metrics.frechet_distance(a, b)
    assert np.isfinite(d2) and d2 == pytest.approx(metrics.frechet_distance(b, a), rel=1e-8)


def test_symmetric_zero_for_identical_sets_and_shifts_add_their_square():
    rng = np.random.default_rng(7)
    a = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8))
    b = rng.gamma(2.0, size=(250, 8))
    assert metrics.frechet_distance(a, b) == pytest.approx(metrics.frechet_distance(b, a), rel=1e-10)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert metrics.frechet_distance(a, a[::-1]) == pytest.approx(0.0, abs=1e-9)  # order does not matter
    # a shifted copy has the same covariance: the trace term vanishes and d^2 = |shift|^2
    shift = rng.normal(size=8)
    assert metrics.frechet_distance(a, a + shift) == pytest.approx(np.sum(shift**2), rel=1e-8)
    # scaling both sets by c scales d^2 by c^2
    assert metrics.frechet_distance(3 * a, 3 * b) == pytest.approx(9 * metrics.frechet_distance(a, b), rel=1e-9)


def test_two_samples_of_one_distribution_are_closer_than_two_of_different_ones():
    rng = np.random.default_rng(8)
    same = metrics.frechet_distance(rng.normal(size=(2000, 4)), rng.normal(size=(2000, 4)))
    wider = metrics.frechet_distance(rng.normal(size=(2000, 4)), 1.5 * rng.normal(size=(2000, 4)))
    # the Gaussians behind the second pair are at d^2 = 4 (1.5 - 1)^2 = 1; those behind the first at 0
    assert 0.0 <= same < 0.05 and wider > 0.5


@pytest.mark.parametrize("call, match", [
    (lambda: metrics.frechet_distance(np.zeros((5, 2)), np.zeros((5, 3))), "b must have 2 columns"),
    (lambda: metrics.frechet_distance(np.zeros((1, 2)), np.zeros((5, 2))), "at least 2 points"),
    (lambda: metrics.frechet_distance(np.zeros(5), np.zeros((5, 1))), "a must be a 2-D array"),
    (lambda: metrics.frechet_distance(np.full((3, 2), np.nan), np.zeros((5, 2))), "a must be finite"),
    (lambda: metrics.frechet_gaussians(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2)), r"cov_a must have shape \(2, 2\)"),
    (lambda: metrics.frechet_gaussians(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)),
     r"mean_b must be a vector of shape \(2,\)"),
    (lambda: metrics.frechet_gaussians(np.zeros(2), [[1, 0.5], [0, 1]], np.zeros(2), np.eye(2)), "cov_a must be symmetric"),
    (lambda: metrics.frechet_gaussians(np.zeros(2), np.eye(2), np.zeros(2), np.diag([1.0, -1.0])),
     "cov_b must be positive semi-definite"),
    (lambda: metrics.frechet_gaussians(np.zeros((2, 2)), np.eye(2), np.zeros(2), np.eye(2)), "mean_a must be a vector"),
    (lambda: metrics.frechet_gaussians("0", np.eye(1), np.zeros(1), np.eye(1)), "mean_a must be a real number"),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
