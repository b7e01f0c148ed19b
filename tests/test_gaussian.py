"""Gaussian densities, KL, the discretized decoder and units, against independent references."""

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, stats

from npdiff import gaussian as g

finite = dict(allow_nan=False, allow_infinity=False)


def test_log_normal_diag_matches_scipy():
    rng = np.random.default_rng(0)
    x, mean = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    log_var = rng.normal(size=(7, 3))
    ref = [stats.multivariate_normal(mean[i], np.diag(np.exp(log_var[i]))).logpdf(x[i]) for i in range(7)]
    np.testing.assert_allclose(g.log_normal_diag(x, mean, log_var), ref, rtol=1e-12)


@pytest.mark.parametrize("shape", [(3,), (7, 3), (2, 4, 3)])
def test_log_normal_diag_sums_the_last_axis_whatever_the_leading_shape(shape):
    # (..., D) points give (...,) log-densities: a single point, a batch, a batch of batches
    rng = np.random.default_rng(5)
    x, mean, log_var = rng.normal(size=(3, *shape))
    got = g.log_normal_diag(x, mean, log_var)
    flat = [stats.multivariate_normal(m, np.diag(np.exp(lv))).logpdf(xi)
            for xi, m, lv in zip(x.reshape(-1, 3), mean.reshape(-1, 3), log_var.reshape(-1, 3))]
    assert got.shape == shape[:-1]
    np.testing.assert_allclose(got.reshape(-1), flat, rtol=1e-12)


def test_log_normal_full_matches_scipy():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(4, 4))
    cov = A @ A.T + 0.1 * np.eye(4)
    mean, x = rng.normal(size=4), rng.normal(size=(9, 4))
    ref = stats.multivariate_normal(mean, cov).logpdf(x)
    np.testing.assert_allclose(g.log_normal_full(x, mean, cov), ref, rtol=1e-12)


@given(
    m1=st.floats(-3, 3, **finite), m2=st.floats(-3, 3, **finite),
    l1=st.floats(-3, 2, **finite), l2=st.floats(-3, 2, **finite),
)
def test_kl_matches_numerical_integration(m1, m2, l1, l2):
    # KL(p || q) = integral of p (log p - log q), by adaptive quadrature on the bulk of p
    p, q = stats.norm(m1, math.exp(0.5 * l1)), stats.norm(m2, math.exp(0.5 * l2))
    s1 = math.exp(0.5 * l1)
    ref, _ = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), m1 - 20 * s1, m1 + 20 * s1,
                            epsabs=1e-12, epsrel=1e-10, limit=200)
    got = float(g.kl_normal_diag(m1, l1, m2, l2))
    assert abs(got - ref) < 1e-8 + 1e-7 * abs(ref), f"m1={m1} l1={l1} m2={m2} l2={l2}: {got} vs {ref}"


@given(m=st.floats(-1e3, 1e3, **finite), lv=st.floats(-690, 690, **finite))
def test_kl_of_equal_gaussians_is_exactly_zero(m, lv):
    assert g.kl_normal_diag(m, lv, m, lv) == 0.0


def test_kl_is_stable_for_extreme_variances():
    # exact value by mpmath at 50 digits, for variances 1e-300 .. 1e300
    mpmath.mp.dps = 50
    for l1, l2, dm in [(-690.0, -690.0 + 1e-9, 0.0), (690.0, 689.0, 1e140), (-600.0, -601.0, 1e-130), (-5.0, 600.0, 0.0)]:
        L1, L2, DM = mpmath.mpf(l1), mpmath.mpf(l2), mpmath.mpf(dm)
        ref = 0.5 * (-1 + L2 - L1 + mpmath.exp(L1 - L2) + DM**2 * mpmath.exp(-L2))
        got = float(g.kl_normal_diag(0.0, l1, dm, l2))
        assert math.isfinite(got) and abs(got - float(ref)) <= 1e-12 * float(ref) + 1e-300, (l1, l2, dm, got, ref)


def _classic_decoder(x, mean, log_scale):
    # improved-diffusion's discretized_gaussian_log_likelihood for 8-bit data, with the exact CDF
    centered = x - mean
    inv_stdv = np.exp(-log_scale)
    cdf_plus = stats.norm.cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = stats.norm.cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = np.log(np.maximum(cdf_plus, 1e-12))
    log_one_minus_cdf_min = np.log(np.maximum(1.0 - cdf_min, 1e-12))
    cdf_delta = cdf_plus - cdf_min
    return np.where(x < -0.999, log_cdf_plus,
                    np.where(x > 0.999, log_one_minus_cdf_min, np.log(np.maximum(cdf_delta, 1e-12))))


def test_decoder_with_256_levels_agrees_with_the_classic_8bit_decoder():
    rng = np.random.default_rng(2)
    x = g.levels_to_data(rng.integers(0, 256, size=5000), 256)
    mean = np.clip(x + rng.normal(scale=0.05, size=x.shape), -1.2, 1.2)
    log_var = rng.uniform(-9, -3, size=x.shape)
    mine = g.discretized_gaussian_log_likelihood(x, mean, log_var, K=256)
    ref = _classic_decoder(x, mean, 0.5 * log_var)
    ok = ref > np.log(1e-10)  # where the classic clamp at 1e-12 and its cancellation do not bite
    assert ok.mean() > 0.9
    np.testing.assert_allclose(mine[ok], ref[ok], rtol=1e-7, atol=1e-9)


def test_the_default_decoder_is_the_classic_8bit_one():
    rng = np.random.default_rng(4)
    x = g.levels_to_data(rng.integers(1, 255, size=200), 256)  # interior levels, where the classic clamp is inactive
    mean = x + rng.normal(scale=0.01, size=x.shape)
    log_var = np.full(x.shape, np.log(0.01**2))
    np.testing.assert_allclose(g.discretized_gaussian_log_likelihood(x, mean, log_var),
                               _classic_decoder(x, mean, 0.5 * log_var), rtol=1e-7)


@pytest.mark.parametrize("K", [2, 17, 256])
def test_data_one_bin_beyond_the_first_or_last_level_is_refused(K):
    # on the lattice 2v/(K-1) - 1 but with v = -1 or v = K: not one of the K levels
    for x in (-1.0 - 2.0 / (K - 1), 1.0 + 2.0 / (K - 1)):
        with pytest.raises(ValueError, match=f"must lie on the {K} levels"):
            g.data_to_levels(np.array([x]), K)


@pytest.mark.parametrize("K", [2, 17, 256])
@given(mean=st.floats(-1.5, 1.5, **finite), log_var=st.floats(-12, 3, **finite))
def test_decoder_probabilities_sum_to_one(K, mean, log_var):
    x = g.levels_to_data(np.arange(K), K)
    logp = g.discretized_gaussian_log_likelihood(x, mean, log_var, K=K)
    assert np.all(np.isfinite(logp)) and np.all(logp <= 0)
    assert abs(np.exp(logp).sum() - 1.0) < 1e-9, f"K={K} mean={mean} log_var={log_var}"


def test_decoder_extreme_tails_are_finite_and_exact():
    # mean 40 standard deviations from the bin: compare with 60-digit mpmath
    mpmath.mp.dps = 60
    K = 17
    x = g.levels_to_data(np.array([0, 8, 16, 3]), K)
    mean = np.array([1.0, 0.9, -1.0, 0.95])
    log_var = np.full(4, np.log(0.02**2))
    got = g.discretized_gaussian_log_likelihood(x, mean, log_var, K=K)
    d = 1 / (K - 1)

    def ncdf(z):
        return mpmath.ncdf(z)

    for xi, mi, gi in zip(x, mean, got):
        s = mpmath.mpf(0.02)
        hi = mpmath.inf if xi > 0.999 else (mpmath.mpf(xi) + d - mpmath.mpf(mi)) / s
        lo = -mpmath.inf if xi < -0.999 else (mpmath.mpf(xi) - d - mpmath.mpf(mi)) / s
        if lo > 0:  # Phi(hi) - Phi(lo) = Phi(-lo) - Phi(-hi): mpmath keeps the tiny tail exactly
            lo, hi = -hi, -lo
        ref = float(mpmath.log(ncdf(hi) - ncdf(lo)))
        assert np.isfinite(gi) and abs(gi - ref) < 1e-9 * abs(ref), (xi, mi, gi, ref)


@pytest.mark.parametrize("w", [9e-4, 5e-4, 1e-4, 1e-6, 1e-9])
@pytest.mark.parametrize("m", [-4.9, -3.0, -1.7, -0.4, 0.0, 0.25, 2.0, 4.5])
def test_narrow_bin_expansion_matches_mpmath(w, m):
    # bins narrower than 1e-3 standard deviations near the centre take the midpoint expansion
    # w phi(m) (1 + w^2 (m^2 - 1) / 24); its second-order term moves log p by up to 3e-8 at these widths
    a, b = m - 0.5 * w, m + 0.5 * w
    mpmath.mp.dps = 50
    ref = mpmath.log(mpmath.ncdf(mpmath.mpf(b)) - mpmath.ncdf(mpmath.mpf(a)))  # at the float64 a and b
    got = float(g._log_diff_ndtr(np.array([a]), np.array([b]))[0])
    assert abs(got - float(ref)) <= 1e-13 * abs(float(ref)), f"w={w} m={m}: {got!r} vs mpmath {float(ref)!r}"


def test_units():
    assert math.isclose(float(g.nats_to_bpd(np.log(2.0) * 64, 64)), 1.0)
    v = np.array([0.3, 2.0, 7.5])
    np.testing.assert_allclose(g.bpd_to_nats(g.nats_to_bpd(v, 3), 3), v, rtol=1e-15)
    # a uniform density over K levels: log2(K) bits per dimension
    assert math.isclose(float(g.nats_to_bpd(5 * np.log(17), 5)), math.log2(17), rel_tol=1e-14)


def test_levels_round_trip():
    v = np.arange(17)
    x = g.levels_to_data(v, 17)
    assert x[0] == -1.0 and x[-1] == 1.0 and math.isclose(x[1] - x[0], 2 / 16)
    np.testing.assert_array_equal(g.data_to_levels(x, 17), v)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: g.discretized_gaussian_log_likelihood(np.array([0.01]), 0.0, 0.0, K=17), "x must lie on the 17 levels"),
        (lambda: g.discretized_gaussian_log_likelihood(np.array([1.5]), 0.0, 0.0, K=2), "x must lie on the 2 levels"),
        (lambda: g.discretized_gaussian_log_likelihood(np.zeros(3), np.zeros(4), 0.0, K=17), "do not broadcast"),
        (lambda: g.discretized_gaussian_log_likelihood(np.zeros(3), 0.0, 0.0, K=1), "K must be an integer >= 2"),
        (lambda: g.log_normal_full(np.zeros((2, 2)), np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]])), "positive definite"),
        (lambda: g.log_normal_full(np.zeros((2, 3)), np.zeros(2), np.eye(2)), "mean must have shape"),
        (lambda: g.log_normal_diag(np.zeros((2, 3)), np.zeros((3, 3)), 0.0), "do not broadcast"),
        (lambda: g.kl_normal_diag(np.nan, 0.0, 0.0, 0.0), "mean1 must be finite"),
        (lambda: g.kl_normal_diag(np.zeros(2) + 1j, 0.0, 0.0, 0.0), "mean1 must hold real numbers"),
        (lambda: g.levels_to_data([0, 17], 17), "levels must be integers in 0..16"),
        (lambda: g.nats_to_bpd(1.0, 0), "D must be"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
