"""The analytic oracles against independent computations of the same quantities.

Identities checked: score = gradient of log_prob (central differences); divergence = trace
of the Jacobian of eps (central differences); Tweedie's formula; Gaussian data against the
closed-form Gaussian conditioning of the foundation's gaussian/forward modules; noised
marginals against Monte Carlo convolution of the clean data; Numba kernels against their
NumPy twins; bad input raising clear errors.
"""

import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npdiff import cosine, forward, log_snr_linear, vp_linear
from npdiff.analytic import BoxMixture, EmpiricalData, GaussianData, GaussianMixture, RingMixture
from npdiff.analytic import _kernels as kernels
from npdiff.denoiser import call_eps_and_divergence, check_denoiser
from npdiff.gaussian import log_normal_full


def _spd(rng, K, D, floor=0.2):
    A = rng.standard_normal((K, D, D))
    return A @ np.swapaxes(A, 1, 2) / D + floor * np.eye(D)


def _oracles():
    rng = np.random.default_rng(0)
    D = 3
    return {
        "gaussian": (GaussianData(rng.standard_normal(D), _spd(rng, 1, D)[0]), 1e-5),
        "mixture_full": (GaussianMixture([0.2, 0.5, 0.3], 2 * rng.standard_normal((3, D)), _spd(rng, 3, D)), 1e-5),
        "mixture_iso": (GaussianMixture([0.6, 0.4], rng.standard_normal((2, D)), [0.3, 1.5], cosine()), 1e-5),
        "empirical": (EmpiricalData(rng.standard_normal((40, D))), 1e-5),
        "boxes": (BoxMixture([0.3, 0.7], [[0, 0, 0], [-2, -1, 1]], [[1, 2, 1.5], [-1, 0, 3]]), 1e-5),
        "boxes_blurred": (BoxMixture([0.5, 0.5], [[0, 0, 0], [-2, -1, 1]], [[1, 2, 1.5], [-1, 0, 3]], 0.2,
                                     log_snr_linear()), 1e-5),
        "rings": (RingMixture([0.3, 0.5, 0.2], [3.0, 0.75, 0.0], 0.15), 1e-6),
    }


ORACLES = _oracles()
# per-point times, plus one shared time; the smallest keeps the blurred-free boxes and the
# Dirac masses away from sigma = 0, where they have no smooth density
TIMES = {"shared": 0.3, "per_point": None}


def _queries(oracle, n, rng):
    x = oracle.sample(n, rng)
    return x + rng.standard_normal(x.shape) * 0.7  # points on and between the modes


def _times(n, rng, key):
    return TIMES[key] if TIMES[key] is not None else rng.uniform(0.02, 1.0, size=n)


@pytest.mark.parametrize("key", ["shared", "per_point"])
@pytest.mark.parametrize("name", sorted(ORACLES))
def test_score_is_gradient_of_log_prob(name, key):
    # d/dx_d log q_t(x) = [log q_t(x + h e_d) - log q_t(x - h e_d)] / 2h + O(h^2)
    oracle, h = ORACLES[name]
    rng = np.random.default_rng(1)
    x = _queries(oracle, 25, rng)
    t = _times(25, rng, key)
    score = oracle.score(x, t)
    fd = np.empty_like(x)
    for d in range(oracle.dim):
        e = np.zeros(oracle.dim)
        e[d] = h
        fd[:, d] = (oracle.log_prob(x + e, t) - oracle.log_prob(x - e, t)) / (2 * h)
    np.testing.assert_allclose(score, fd, rtol=1e-6, atol=1e-6, err_msg=f"{name}, t={t}")


@pytest.mark.parametrize("key", ["shared", "per_point"])
@pytest.mark.parametrize("name", sorted(ORACLES))
def test_divergence_is_trace_of_eps_jacobian(name, key):
    # tr d eps / dx = sum_d [eps_d(x + h e_d) - eps_d(x - h e_d)] / 2h + O(h^2)
    oracle, h = ORACLES[name]
    rng = np.random.default_rng(2)
    x = _queries(oracle, 25, rng)
    t = _times(25, rng, key)
    eps, div = oracle.eps_and_divergence(x, t)
    np.testing.assert_allclose(eps, oracle.eps(x, t), rtol=1e-13, atol=1e-13)
    fd = np.zeros(x.shape[0])
    for d in range(oracle.dim):
        e = np.zeros(oracle.dim)
        e[d] = h
        fd += (oracle.eps(x + e, t)[:, d] - oracle.eps(x - e, t)[:, d]) / (2 * h)
    np.testing.assert_allclose(div, fd, rtol=1e-6, atol=1e-5, err_msg=f"{name}, t={t}")


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_x0_mean_is_tweedie(name):
    # E[x0 | x_t] = (x_t + sigma^2 score) / sqrt(alpha_bar); GaussianData and EmpiricalData compute
    # the left side by another route (Gaussian conditioning, posterior mean of the points)
    oracle, _ = ORACLES[name]
    rng = np.random.default_rng(3)
    x = _queries(oracle, 30, rng)
    t = rng.uniform(0.02, 0.99, size=30)
    ab = oracle.schedule.alpha_bar(t)[:, None]
    tweedie = (x + (1 - ab) * oracle.score(x, t)) / np.sqrt(ab)
    np.testing.assert_allclose(oracle.x0_mean(x, t), tweedie, rtol=1e-9, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(oracle.eps(x, t), -np.sqrt(1 - ab) * oracle.score(x, t), rtol=1e-12, atol=1e-14)


@given(t=st.floats(0.0, 1.0), D=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_gaussian_data_matches_closed_form(t, D, seed):
    # q_t = N(sqrt(ab) mu, ab C + (1 - ab) I), with the forward kernel taken from npdiff.forward;
    # score = -Sigma_t^{-1}(x - m_t); E[x0|x_t] = mu + sqrt(ab) C Sigma_t^{-1}(x - m_t) (Bishop Eq. 2.116);
    # div eps = sigma tr Sigma_t^{-1}
    rng = np.random.default_rng(seed)
    mu, C = rng.standard_normal(D), _spd(rng, 1, D)[0]
    oracle = GaussianData(mu, C)
    x = rng.standard_normal((6, D)) * 2
    mean_t, var_t = forward.q_xt_x0(mu[None], t, vp_linear())  # (1, D), (1, 1)
    ab = oracle.schedule.alpha_bar(t)
    Sigma = ab * C + var_t[0, 0] * np.eye(D)
    diff = x - mean_t
    msg = f"t={t}, D={D}, seed={seed}"
    np.testing.assert_allclose(oracle.log_prob(x, t), log_normal_full(x, mean_t[0], Sigma), rtol=1e-10, atol=1e-10,
                               err_msg=msg)
    np.testing.assert_allclose(oracle.score(x, t), -np.linalg.solve(Sigma, diff.T).T, rtol=1e-9, atol=1e-9,
                               err_msg=msg)
    np.testing.assert_allclose(oracle.x0_mean(x, t), mu + np.sqrt(ab) * (C @ np.linalg.solve(Sigma, diff.T)).T,
                               rtol=1e-9, atol=1e-9, err_msg=msg)
    _, div = oracle.eps_and_divergence(x, t)
    np.testing.assert_allclose(div, np.sqrt(var_t[0, 0]) * np.trace(np.linalg.inv(Sigma)), rtol=1e-9, atol=1e-12,
                               err_msg=msg)


def test_mixture_posterior_mean_is_bayes_rule():
    # E[x0|x_t] = sum_k r_k E_k[x0|x_t], r_k = w_k N_k(x_t) / q_t(x_t): Bayes' rule over components,
    # each component conditioned as a Gaussian; the oracle gets it from Tweedie's formula instead
    oracle, _ = ORACLES["mixture_full"]
    rng = np.random.default_rng(4)
    x = _queries(oracle, 20, rng)
    t = 0.4
    ab = float(oracle.schedule.alpha_bar(t))
    log_r, cond = [], []
    for w, mu, C in zip(oracle.weights, oracle.means, oracle.covs):
        Sigma = ab * C + (1 - ab) * np.eye(oracle.dim)
        log_r.append(np.log(w) + log_normal_full(x, np.sqrt(ab) * mu, Sigma))
        cond.append(mu + np.sqrt(ab) * (C @ np.linalg.solve(Sigma, (x - np.sqrt(ab) * mu).T)).T)
    log_r = np.array(log_r)  # (K, B)
    r = np.exp(log_r - np.logaddexp.reduce(log_r, axis=0))
    expected = np.einsum("kb,kbd->bd", r, np.array(cond))
    np.testing.assert_allclose(oracle.x0_mean(x, t), expected, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(oracle.log_prob(x, t), np.logaddexp.reduce(log_r, axis=0), rtol=1e-11)


def test_one_component_mixture_is_gaussian_data():
    rng = np.random.default_rng(5)
    mu, C = rng.standard_normal(3), _spd(rng, 1, 3)[0]
    g, m = GaussianData(mu, C), GaussianMixture([1.0], mu[None], C[None])
    x, t = rng.standard_normal((10, 3)), rng.uniform(0, 1, 10)
    np.testing.assert_allclose(m.log_prob(x, t), g.log_prob(x, t), rtol=1e-12)
    np.testing.assert_allclose(m.score(x, t), g.score(x, t), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.eps_and_divergence(x, t)[1], g.eps_and_divergence(x, t)[1], rtol=1e-11)


@pytest.mark.parametrize("name", ["mixture_full", "boxes", "rings", "boxes_blurred"])
def test_log_prob_matches_monte_carlo_convolution(name):
    # q_t(x) = E_{x0 ~ p}[N(x; sqrt(ab) x0, sigma^2 I)], estimated with the oracle's own sampler
    # of clean data; |log mean - log q_t| within 4 standard errors (delta method)
    oracle, _ = ORACLES[name]
    rng = np.random.default_rng(6)
    t = 0.25
    ab = float(oracle.schedule.alpha_bar(t))
    x0 = oracle.sample(50_000, rng)  # (N, D)
    x = np.sqrt(ab) * oracle.sample(20, rng) + np.sqrt(1 - ab) * rng.standard_normal((20, oracle.dim))
    sq = np.sum((x[:, None, :] - np.sqrt(ab) * x0[None]) ** 2, axis=2)  # (20, N)
    dens = np.exp(-sq / (2 * (1 - ab))) / (2 * np.pi * (1 - ab)) ** (oracle.dim / 2)
    mc, se = dens.mean(axis=1), dens.std(axis=1) / np.sqrt(x0.shape[0])
    exact = oracle.log_prob(x, t)
    assert np.all(np.abs(np.log(mc) - exact) < 4 * se / mc), (name, np.log(mc) - exact, se / mc)


def test_clean_mixture_density_at_t0():
    # at t = 0 (sigma = 0 under vp_linear) the marginal is the clean mixture itself
    oracle, _ = ORACLES["mixture_full"]
    x = np.random.default_rng(7).standard_normal((8, 3))
    terms = [np.log(w) + log_normal_full(x, mu, C) for w, mu, C in zip(oracle.weights, oracle.means, oracle.covs)]
    np.testing.assert_allclose(oracle.log_prob(x, 0.0), np.logaddexp.reduce(terms, axis=0), rtol=1e-11)
    eps, div = oracle.eps_and_divergence(x, 0.0)
    assert np.all(eps == 0.0) and np.all(div == 0.0)


def test_cosine_end_is_standard_normal():
    # cosine at t = 1: alpha_bar ~ 4e-33, every component is N(0, I) to float64 precision, and
    # x_t says nothing about x_0: Tweedie's formula refuses, direct posteriors give the prior mean
    x = np.random.default_rng(8).standard_normal((5, 3))
    base, _ = ORACLES["boxes"]
    for oracle in [ORACLES["mixture_iso"][0], BoxMixture(base.weights, base.lows, base.highs, 0.0, cosine())]:
        np.testing.assert_allclose(oracle.log_prob(x, 1.0), log_normal_full(x, np.zeros(3), np.eye(3)), rtol=1e-12)
        np.testing.assert_allclose(oracle.score(x, 1.0), -x, rtol=1e-12)
        with pytest.raises(ValueError, match="alpha_bar"):
            oracle.x0_mean(x, 1.0)
    gauss = GaussianData(np.arange(3.0), np.eye(3), cosine())
    np.testing.assert_allclose(gauss.x0_mean(x, 1.0), np.broadcast_to(np.arange(3.0), x.shape), atol=1e-15)


def test_far_points_stay_finite():
    # log-sum-exp over components: a point 1e3 away keeps a finite log-density and score,
    # equal to the nearest component's alone
    oracle, _ = ORACLES["mixture_iso"]
    x = np.array([[1e3, -1e3, 5e2]])
    for t in [0.0, 0.5]:
        lp, s = oracle.log_prob(x, t), oracle.score(x, t)
        assert np.all(np.isfinite(lp)) and np.all(np.isfinite(s))
        ab = float(oracle.schedule.alpha_bar(t))
        k = np.argmin(np.sum((x - np.sqrt(ab) * oracle.means) ** 2, axis=1) / (ab * np.array([0.3, 1.5]) + 1 - ab))
        var = ab * [0.3, 1.5][k] + 1 - ab
        alone = np.log(oracle.weights[k]) + log_normal_full(x, np.sqrt(ab) * oracle.means[k], var * np.eye(3))
        np.testing.assert_allclose(lp, alone, rtol=1e-12)
    box = BoxMixture([0.5, 0.5], [[0.0], [5.0]], [[1.0], [6.0]])
    assert np.all(np.isfinite(box.eps_and_divergence(np.array([[-300.0], [400.0]]), 0.01)[1]))


def test_oracles_follow_the_denoiser_protocol():
    for name, (oracle, _) in ORACLES.items():
        assert check_denoiser(oracle) is oracle.schedule
        x = _queries(oracle, 7, np.random.default_rng(9))
        eps, div = call_eps_and_divergence(oracle, x, np.linspace(0.1, 1.0, 7))
        assert eps.shape == (7, oracle.dim) and div.shape == (7,), name
    assert ORACLES["gaussian"][0].schedule == vp_linear()


# -- Numba kernels against their NumPy twins ------------------------------------------------


def _levels(rng, B):
    t = rng.uniform(0.0, 1.0, size=B)
    log_ab = vp_linear().log_alpha_bar(t)
    return np.exp(0.5 * log_ab), np.exp(log_ab), -np.expm1(log_ab)


def _agree(numba_out, numpy_out, what):
    for name, a, b in zip(("log_prob", "score", "laplacian"), numba_out, numpy_out):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * max(1.0, np.max(np.abs(b))), err_msg=f"{what} {name}")


@pytest.mark.parametrize("rotate", [True, False])
def test_gmm_kernel_matches_numpy_twin(rotate):
    rng = np.random.default_rng(10)
    B, K, D = 60, 7, 4
    sqrt_ab, ab, s2 = _levels(rng, B)
    s2[0] = 0.0  # t = 0 included
    sqrt_ab[0] = ab[0] = 1.0
    rot = np.linalg.qr(rng.standard_normal((K, D, D)))[0] if rotate else np.zeros((1, 1, 1))
    args = (rng.standard_normal((B, D)) * 3, sqrt_ab, ab, s2, np.log(rng.dirichlet(np.ones(K))),
            rng.standard_normal((K, D)) * 2, rot, rng.uniform(0.1, 2.0, (K, D)), rotate)
    _agree(kernels._gmm_numba(*args), kernels._gmm_numpy(*args), f"gmm rotate={rotate}")


def test_empirical_kernel_matches_numpy_twin():
    rng = np.random.default_rng(11)
    B, N, D = 50, 300, 3
    sqrt_ab, _, s2 = _levels(rng, B)
    s2 = np.maximum(s2, 1e-4)
    args = (rng.standard_normal((B, D)), sqrt_ab, s2, rng.standard_normal((N, D)))
    _agree(kernels._empirical_numba(*args), kernels._empirical_numpy(*args), "empirical")


def test_box_kernel_matches_numpy_twin():
    rng = np.random.default_rng(12)
    B, K, D = 60, 9, 2
    sqrt_ab, ab, s2 = _levels(rng, B)
    lows = rng.uniform(-3, 2, (K, D))
    args = (rng.standard_normal((B, D)) * 4, sqrt_ab, ab * 0.01 + s2 + 1e-3, np.log(rng.dirichlet(np.ones(K))) - 1.0,
            lows, lows + rng.uniform(0.1, 2, (K, D)))
    _agree(kernels._box_numba(*args), kernels._box_numpy(*args), "box")
    # many small boxes along a circle with little blur: both sides skip the far boxes. Queries
    # stay within ~1 of the circle (z = distance / std <= ~10): much farther out, the Laplacian's
    # cancellation costs ~z^4 1e-16 relative in both (see BoxMixture)
    theta = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    lows = 3 * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    phi = rng.uniform(0, 2 * np.pi, B)
    x = 3 * np.stack([np.cos(phi), np.sin(phi)], axis=1) + 0.3 * rng.standard_normal((B, D))
    args = (x, sqrt_ab, np.full(B, 0.01), np.full(400, -np.log(400 * 0.05**2)), lows, lows + 0.05)
    _agree(kernels._box_numba(*args), kernels._box_numpy(*args), "small boxes")
    z = np.concatenate([np.linspace(-40, 40, 81), [-1e3, 7.5]])
    np.testing.assert_allclose([kernels._log_ndtr_numba(v) for v in z], kernels.log_ndtr(z), rtol=1e-10, atol=1e-300)


def test_empirical_oracle_scales_to_ten_thousand_points_and_queries():
    # 10,000 points x 10,000 queries in bounded memory (a dense (B, N, D) float64 array would
    # take 1.6 GB); a few rows checked against a dense computation
    rng = np.random.default_rng(13)
    points, x = rng.standard_normal((10_000, 2)), rng.standard_normal((10_000, 2)) * 1.5
    oracle = EmpiricalData(points)
    oracle.eps_and_divergence(x[:2], 0.1)  # compile outside the measurement
    tracemalloc.start()
    eps, div = oracle.eps_and_divergence(x, 0.1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200e6, f"peak traced memory {peak / 1e6:.0f} MB"
    ab = float(oracle.schedule.alpha_bar(0.1))
    s2 = 1 - ab
    rows = x[:5]
    ell = -np.sum((rows[:, None] - np.sqrt(ab) * points[None]) ** 2, axis=2) / (2 * s2)  # (5, N)
    r = np.exp(ell - ell.max(axis=1, keepdims=True))
    r /= r.sum(axis=1, keepdims=True)
    mean = r @ points
    np.testing.assert_allclose(eps[:5], (rows - np.sqrt(ab) * mean) / np.sqrt(s2), rtol=1e-9, atol=1e-10)
    assert np.all(np.isfinite(div))


# -- bad input --------------------------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    mu, C = np.zeros(2), np.eye(2)
    with pytest.raises(ValueError, match="sum to 1"):
        GaussianMixture([0.5, 0.6], np.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        GaussianMixture([1.5, -0.5], np.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match="positive definite"):
        GaussianData(mu, np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture([1.0], np.zeros((1, 2)), np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianData(mu, np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive variances"):
        GaussianMixture([0.5, 0.5], np.zeros((2, 2)), [1.0, 0.0])
    with pytest.raises(ValueError, match="means must have shape"):
        GaussianMixture([0.5, 0.5], np.zeros((3, 2)), 1.0)
    with pytest.raises(ValueError, match="cov must be"):
        GaussianData(mu, np.eye(3))
    with pytest.raises(ValueError, match="highs must exceed lows"):
        BoxMixture([1.0], [[0.0, 0.0]], [[1.0, 0.0]])
    with pytest.raises(ValueError, match="noise_std"):
        RingMixture([1.0], [1.0], 0.0)
    oracle = GaussianData(mu, C)
    with pytest.raises(ValueError, match="2 columns"):
        oracle.log_prob(np.zeros((4, 3)), 0.5)
    with pytest.raises(ValueError, match=r"t must lie in \[0.0, 1.0\]"):
        oracle.eps(np.zeros((4, 2)), 1.5)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        oracle.eps(np.zeros((4, 2)), np.full(3, 0.5))
    with pytest.raises(TypeError, match="Generator"):
        oracle.sample(3, None)
    with pytest.raises(TypeError, match="Schedule"):
        GaussianData(mu, C, schedule="vp_linear")


def test_undefined_at_sigma_zero_raises():
    # Dirac masses and sharp boxes have no smooth density at t = 0 (sigma = 0 under vp_linear)
    x = np.zeros((3, 3))
    emp, _ = ORACLES["empirical"]
    for method in (emp.log_prob, emp.score, emp.eps, emp.eps_and_divergence, emp.x0_mean):
        with pytest.raises(ValueError, match="sigma"):
            method(x, np.array([0.5, 0.0, 0.5]))
    box, _ = ORACLES["boxes"]
    with pytest.raises(ValueError, match="sigma"):
        box.eps(x, 0.0)
    inside = np.array([[0.5, 1.0, 0.7], [5.0, 5.0, 5.0]])
    np.testing.assert_allclose(box.log_prob(inside, 0.0), [np.log(0.3 / 3.0), -np.inf])


@pytest.mark.parametrize("name", ["8gaussians", "checkerboard", "rings", "2spirals"])
def test_oracles_refuse_points_their_float64_closed_forms_cannot_represent(name):
    # far from the data the squares overflow or the erfc tails cancel: a clear error, never a silent NaN
    from npdiff._check import InputOverflowError
    from npdiff.data import toy2d

    oracle = toy2d.load(name).oracle(vp_linear())
    far = np.array([[1e155, 0.0], [0.5, 0.5]])
    for call in (lambda: oracle.eps(far, 0.3), lambda: oracle.eps_and_divergence(far, 0.3),
                 lambda: oracle.eps_jvp(far, 0.3, np.ones_like(far))):
        with pytest.raises(InputOverflowError, match=r"\|x\| up to 1e\+155"):
            call()
    try:  # a log-density of -inf (the boxes' exact answer out there) is an answer; NaN is not
        assert oracle.log_prob(far, 0.3)[0] == -np.inf
    except InputOverflowError as err:
        assert "1e+155" in str(err)
    assert np.all(np.isfinite(oracle.eps_and_divergence(far[1:], 0.3)[1]))
