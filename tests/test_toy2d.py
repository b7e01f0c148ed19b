"""The 2-D toy sets: samplers against densities, densities against normalization and the
reference entropies, oracles against Monte Carlo convolution of the samplers.

The reference entropies (nats) were computed independently of npdiff, each to about
+-0.005: the package's own figures must agree within 0.015.
"""

import numpy as np
import pytest

from npdiff import cosine
from npdiff.analytic import BoxMixture, GaussianMixture, RingMixture
from npdiff.data import _toy_sets, toy2d

REFERENCE_ENTROPY = {
    "8gaussians": 2.833,
    "checkerboard": np.log(32.0),
    "rings": 2.623,
    "circles": 3.270,
    "moons": 2.394,
    "swissroll": 2.670,
    "pinwheel": 2.318,
    "2spirals": 2.646,
}
WITH_ORACLE = [n for n in toy2d.NAMES if n != "pinwheel"]


def test_names_and_unknown_name():
    assert set(toy2d.NAMES) == set(REFERENCE_ENTROPY) and len(toy2d.NAMES) == 8
    with pytest.raises(ValueError, match="8gaussians, checkerboard, rings, circles, moons, swissroll, pinwheel"):
        toy2d.load("9gaussians")
    with pytest.raises(ValueError, match="unknown toy2d dataset"):
        toy2d.load(3)


@pytest.mark.parametrize("name", toy2d.NAMES)
def test_entropy_matches_reference(name):
    d = toy2d.load(name)
    assert abs(d.entropy - REFERENCE_ENTROPY[name]) < 0.015, (name, d.entropy, REFERENCE_ENTROPY[name])


@pytest.mark.parametrize("name", toy2d.NAMES)
def test_sampler_and_density_agree(name):
    # E_{x ~ p}[log p(x)] = -H: the mean log-density of fresh samples is -entropy within 4 SE
    d = toy2d.load(name)
    x = d.sample(20_000, np.random.default_rng(100 + toy2d.NAMES.index(name)))
    assert x.shape == (20_000, 2) and x.dtype == np.float64
    log_p = d.log_prob(x)
    assert np.all(np.isfinite(log_p)), name
    se = log_p.std() / np.sqrt(x.shape[0])
    gap = log_p.mean() + d.entropy
    # the checkerboard's log-density is constant on its support, so its SE is 0: exact equality
    assert abs(gap) <= max(4 * se, 1e-12), (name, gap, se)


@pytest.mark.parametrize("name", toy2d.NAMES)
def test_density_integrates_to_one(name):
    # midpoint rule on [-7, 7]^2, cells of side 0.1 (another grid than the entropy's); for the
    # checkerboard the cells tile the squares, for the others the rule converges fast
    n = 140
    c = -7 + (np.arange(n) + 0.5) * 0.1
    xx, yy = np.meshgrid(c, c, indexing="ij")
    p = np.exp(toy2d.load(name).log_prob(np.stack([xx.ravel(), yy.ravel()], axis=1)))
    assert abs(p.sum() * 0.01 - 1.0) < 1e-3, (name, p.sum() * 0.01)


def test_checkerboard_density_is_one_over_32_on_its_squares():
    d = toy2d.load("checkerboard")
    inside = np.array([[-3.0, 1.0], [-1.0, 3.0], [1.0, 1.0], [3.0, 3.0], [-3.0, -3.0], [-1.0, -1.0], [1.0, -3.0],
                       [3.0, -1.0]])  # one point per square
    outside = np.array([[-3.0, 3.0], [-1.0, 1.0], [1.0, -1.0], [3.0, 1.0], [5.0, 0.0], [0.0, 4.5]])
    np.testing.assert_array_equal(d.log_prob(inside), np.full(8, -np.log(32.0)))
    np.testing.assert_array_equal(d.log_prob(outside), np.full(6, -np.inf))


def test_eight_gaussians_oracle_is_the_stated_mixture():
    # centres 4 (cos, sin)(k 45 deg) / 1.414, std 0.5 / 1.414, equal weights
    oracle = toy2d.load("8gaussians").oracle()
    assert isinstance(oracle, GaussianMixture)
    angles = np.arctan2(oracle.means[:, 1], oracle.means[:, 0])
    np.testing.assert_allclose(np.sort(np.mod(angles, 2 * np.pi)), np.arange(8) * np.pi / 4, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(oracle.means, axis=1), 4 / 1.414, rtol=1e-12)
    np.testing.assert_allclose(oracle.covs, np.broadcast_to((0.5 / 1.414) ** 2 * np.eye(2), (8, 2, 2)), rtol=1e-12)
    np.testing.assert_allclose(oracle.weights, 1 / 8)


@pytest.mark.parametrize("name", WITH_ORACLE)
def test_oracle_matches_monte_carlo_convolution_of_the_sampler(name):
    # q_t(x) = E_{x0 ~ p}[N(x; sqrt(ab) x0, sigma^2 I)] with x0 from the FFJORD-style sampler:
    # checks the oracle's closed form (or quadrature) against the generative process itself
    d = toy2d.load(name)
    oracle = d.oracle(cosine())
    assert oracle.schedule == cosine() and oracle.dim == 2
    rng = np.random.default_rng(200 + WITH_ORACLE.index(name))
    t = 0.2
    ab = float(oracle.schedule.alpha_bar(t))
    x0 = d.sample(40_000, rng)
    x = np.sqrt(ab) * d.sample(25, rng) + np.sqrt(1 - ab) * rng.standard_normal((25, 2))
    sq = np.sum((x[:, None, :] - np.sqrt(ab) * x0[None]) ** 2, axis=2)  # (25, N)
    dens = np.exp(-sq / (2 * (1 - ab))) / (2 * np.pi * (1 - ab))
    mc, se = dens.mean(axis=1), dens.std(axis=1) / np.sqrt(x0.shape[0])
    exact = oracle.log_prob(x, t)
    assert np.all(np.abs(np.log(mc) - exact) < 4 * se / mc), (name, np.log(mc) - exact, se / mc)


@pytest.mark.parametrize("name", WITH_ORACLE)
def test_oracle_at_t0_is_the_clean_density(name):
    d = toy2d.load(name)
    x = d.sample(200, np.random.default_rng(300))
    np.testing.assert_allclose(d.oracle().log_prob(x, 0.0), d.log_prob(x), rtol=1e-12)


@pytest.mark.parametrize("name", ["checkerboard", "rings", "2spirals"])
def test_toy_oracle_score_and_divergence_by_finite_differences(name):
    # the oracle classes are tested in test_analytic.py; here on the toy sets' own parameters
    oracle = toy2d.load(name).oracle()
    rng = np.random.default_rng(400)
    x = oracle.sample(20, rng) + 0.3 * rng.standard_normal((20, 2))
    t = rng.uniform(0.05, 1.0, size=20)
    _, div = oracle.eps_and_divergence(x, t)
    h = 1e-5
    fd_score, fd_div = np.empty_like(x), np.zeros(20)
    for k in range(2):
        e = np.zeros(2)
        e[k] = h
        fd_score[:, k] = (oracle.log_prob(x + e, t) - oracle.log_prob(x - e, t)) / (2 * h)
        fd_div += (oracle.eps(x + e, t)[:, k] - oracle.eps(x - e, t)[:, k]) / (2 * h)
    np.testing.assert_allclose(oracle.score(x, t), fd_score, rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(div, fd_div, rtol=1e-6, atol=1e-5, err_msg=name)


@pytest.mark.parametrize(("name", "builder", "nodes"), [
    ("moons", _toy_sets.oracle_moons, (48, 12)),
    ("swissroll", _toy_sets.oracle_swissroll, (128, 12)),
    ("2spirals", _toy_sets.oracle_2spirals, (192, 10)),
])
def test_quadrature_densities_are_converged(name, builder, nodes):
    # doubling the Gauss-Legendre panels changes log p by < 1e-9 wherever log p > -20
    d = toy2d.load(name)
    rng = np.random.default_rng(500)
    x = np.concatenate([d.sample(500, rng), rng.uniform(-5, 5, (500, 2))])
    log_p = d.log_prob(x)
    finer = builder(None, *nodes).log_prob(x, 0.0)
    keep = log_p > -20
    assert keep.sum() > 500
    np.testing.assert_allclose(log_p[keep], finer[keep], rtol=0, atol=1e-9, err_msg=name)


def test_pinwheel_preimages_solve_the_map():
    # each preimage angle found by the root finder maps back onto its point (pushed through the
    # sampler's map), and the number of preimages per (point, arm) equals the number of
    # crossings of F = psi - a_k - phi through multiples of 2 pi counted on a 100,000-cell grid
    d = toy2d.load("pinwheel")
    rng = np.random.default_rng(600)
    x = np.concatenate([d.sample(300, rng), rng.uniform(-6, 6, (300, 2))])
    s, phi = np.linalg.norm(x, axis=1) / 2, np.arctan2(x[:, 1], x[:, 0])
    point, arm, psi = _toy_sets._pw_roots(s, phi)
    f0, f1 = s[point] * np.cos(psi), s[point] * np.sin(psi)
    a = 2 * np.pi * arm / 5 + 0.25 * np.exp(f0)
    back = 2 * np.stack([f0 * np.cos(a) + f1 * np.sin(a), -f0 * np.sin(a) + f1 * np.cos(a)], axis=1)
    np.testing.assert_allclose(back, x[point], atol=1e-12)
    counts = np.bincount(point * 5 + arm, minlength=3000).reshape(600, 5)
    assert counts.max() >= 3, "the sample should include folded points"
    grid = np.linspace(0, 2 * np.pi, 100_001)
    for i in np.flatnonzero(counts.max(axis=1) >= 3)[:10]:
        for k in range(5):
            F = grid - 2 * np.pi * k / 5 - 0.25 * np.exp(s[i] * np.cos(grid)) - phi[i]
            level = np.floor(F / (2 * np.pi))
            assert np.count_nonzero(level[1:] != level[:-1]) == counts[i, k], (x[i], k)
    with pytest.raises(NotImplementedError, match="pinwheel"):
        d.oracle()


def test_toy_oracles_are_the_right_kind():
    kinds = {"checkerboard": BoxMixture, "rings": RingMixture, "circles": RingMixture, "moons": GaussianMixture,
             "swissroll": GaussianMixture, "2spirals": BoxMixture}
    for name, kind in kinds.items():
        assert isinstance(toy2d.load(name).oracle(), kind), name


def test_sampling_is_reproducible_and_checked():
    d = toy2d.load("moons")
    np.testing.assert_array_equal(d.sample(10, np.random.default_rng(7)), d.sample(10, np.random.default_rng(7)))
    np.testing.assert_array_equal(d.sample(10, 7), d.sample(10, np.random.default_rng(7)))  # a seed is a fresh Generator
    with pytest.raises(TypeError, match="Generator"):
        d.sample(10, np.random.RandomState(7))
    with pytest.raises(ValueError, match="n must be"):
        d.sample(0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="2 columns"):
        d.log_prob(np.zeros((3, 3)))


def test_pinwheel_log_prob_is_minus_inf_beyond_radius_16_and_finite_inside():
    # beyond |x| = 16 the preimages of the pinwheel's map grow as s e^s (they once exhausted memory at |x| ~ 40)
    ds = toy2d.load("pinwheel")
    r = np.array([15.9, 16.1, 40.0, 1e8, 1e200])
    x = np.stack([r / np.sqrt(2), r / np.sqrt(2)], axis=1)
    lp = ds.log_prob(x)
    assert np.isfinite(lp[0]) and lp[0] < -200  # the f-density bound: -0.5 ((s - 1) / 0.3)^2 at s = 7.95
    assert np.all(lp[1:] == -np.inf)
    assert np.all(ds.log_prob(x, y=np.zeros(5, dtype=int))[1:] == -np.inf)
