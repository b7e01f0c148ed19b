"""Guidance on exact oracles: the guided field is the stated combination, the oracle classifier at scale 1 is the
exact conditional, the guided ODE of Gaussians is the affine map its moment equations give (and not the tilted
Gaussian), and the tilted target's quadrature is normalized."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.stats import multivariate_normal

from npdiff.analytic import GaussianData, GaussianMixture, TiltedTarget
from npdiff.data import toy2d
from npdiff.guidance import classifier_guided, guided
from npdiff.likelihood import ode_log_likelihood
from npdiff.sample import ddim_sample, ode_sample, sde_sample
from npdiff.schedule import cosine, vp_linear

MEANS = np.array([[-1.0, 0.0], [1.0, 0.5], [0.0, -1.5], [2.0, 2.0]])
LABELS = np.array([0, 1, 1, 2])
WEIGHTS = np.array([0.1, 0.3, 0.2, 0.4])
VARS = np.array([0.3, 0.5, 0.2, 0.4])


def _mixture(schedule=None):
    return GaussianMixture(WEIGHTS, MEANS, VARS, schedule, labels=LABELS)


def _by_hand(c, schedule=None):
    # the mixture of label c's components, built without the labels machinery
    keep = LABELS == c
    return GaussianMixture(WEIGHTS[keep] / WEIGHTS[keep].sum(), MEANS[keep], VARS[keep], schedule)


def _points(seed, n=7):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)) * 1.5, rng.uniform(0.05, 0.95, n)


def _fd_divergence(f, x, h=1e-5):
    div = np.zeros(x.shape[0])
    for j in range(x.shape[1]):
        xp, xm = x.copy(), x.copy()
        xp[:, j] += h
        xm[:, j] -= h
        div += (f(xp)[:, j] - f(xm)[:, j]) / (2 * h)
    return div


# -- the labelled oracle ------------------------------------------------------------------------------
def test_conditional_oracle_is_the_mixture_of_its_labels_components():
    oracle, (x, t) = _mixture(cosine()), _points(0)
    for c in range(3):
        ref = _by_hand(c, cosine())
        np.testing.assert_allclose(oracle.eps(x, t, c), ref.eps(x, t), rtol=1e-13, atol=1e-14, err_msg=f"label {c}")
        np.testing.assert_allclose(oracle.log_prob(x, t, c), ref.log_prob(x, t), rtol=1e-13, err_msg=f"label {c}")
        np.testing.assert_allclose(oracle.eps_and_divergence(x, t, c)[1], ref.eps_and_divergence(x, t)[1], rtol=1e-12)
    y = np.array([2, 0, 1, 1, 0, 2, 2])  # one label per point: each row is its label's answer
    rows = np.stack([_by_hand(c, cosine()).eps(x, t)[i] for i, c in enumerate(y)])
    np.testing.assert_allclose(oracle.eps(x, t, y), rows, rtol=1e-13, atol=1e-14)
    # y = None is the whole mixture, the plain protocol
    np.testing.assert_allclose(oracle.eps(x, t), GaussianMixture(WEIGHTS, MEANS, VARS, cosine()).eps(x, t), rtol=1e-13)


def test_posterior_classifier_is_bayes_rule_with_its_gradient_and_laplacian():
    # q_t(y | x) = sum over y's components of w_k N(x; a mu_k, (a^2 s_k^2 + sigma^2) I) / q_t(x), by scipy
    sched = vp_linear()
    oracle, (x, t) = _mixture(sched), _points(1)
    a, s2 = np.sqrt(sched.alpha_bar(t)), sched.sigma(t) ** 2
    dens = np.stack([WEIGHTS[k] * np.array([multivariate_normal.pdf(x[i], a[i] * MEANS[k], a[i] ** 2 * VARS[k] + s2[i])
                                            for i in range(len(t))]) for k in range(4)], axis=1)  # (B, K)
    post = np.stack([dens[:, LABELS == c].sum(1) for c in range(3)], axis=1) / dens.sum(1, keepdims=True)
    np.testing.assert_allclose(np.exp(oracle.class_log_prob(x, t)), post, rtol=1e-11)
    for c in range(3):
        grad, lap = oracle.class_log_prob_grad_and_laplacian(x, t, c)
        h = 1e-5
        for j in range(2):
            xp, xm = x.copy(), x.copy()
            xp[:, j] += h
            xm[:, j] -= h
            fd = (oracle.class_log_prob(xp, t)[:, c] - oracle.class_log_prob(xm, t)[:, c]) / (2 * h)
            np.testing.assert_allclose(grad[:, j], fd, rtol=1e-6, atol=1e-8, err_msg=f"gradient, label {c}")
        np.testing.assert_allclose(lap, _fd_divergence(lambda z, c=c: oracle.class_log_prob_grad(z, t, c), x),
                                   rtol=1e-5, atol=1e-6, err_msg=f"Laplacian, label {c}")


def test_labelled_mixture_samples_its_labels_by_the_draws_of_sample():
    oracle = _mixture()
    x, y = oracle.sample_labelled(4000, np.random.default_rng(2))
    np.testing.assert_array_equal(x, oracle.sample(4000, np.random.default_rng(2)))
    freq = np.bincount(y, minlength=3) / y.size
    pi = np.array([0.1, 0.5, 0.4])
    assert np.all(np.abs(freq - pi) < 4 * np.sqrt(pi * (1 - pi) / y.size)), freq
    # the points of label 2 come from its one component N((2, 2), 0.4 I)
    np.testing.assert_allclose(x[y == 2].mean(0), [2.0, 2.0], atol=4 * np.sqrt(0.4 / np.sum(y == 2)))


# -- classifier-free guidance --------------------------------------------------------------------------
@pytest.mark.parametrize("w", [0.0, 0.7, 3.0])
def test_guided_eps_and_divergence_are_the_combination_and_its_exact_trace(w):
    oracle, (x, t) = _mixture(), _points(3)
    g = guided(oracle, 1, w)
    expected = (1 + w) * _by_hand(1).eps(x, t) - w * GaussianMixture(WEIGHTS, MEANS, VARS).eps(x, t)
    np.testing.assert_allclose(g.eps(x, t), expected, rtol=1e-12, atol=1e-13)
    eps, div = g.eps_and_divergence(x, t)
    np.testing.assert_allclose(eps, expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(div, _fd_divergence(lambda z: g.eps(z, t), x), rtol=1e-6, atol=1e-7)
    assert g.schedule == oracle.schedule and g.dim == 2


def test_oracle_classifier_at_scale_one_gives_the_exact_conditional():
    # eps - sigma grad log q_t(y|x) = -sigma (grad log q_t(x) + grad log q_t(y|x)) = -sigma grad log q_t(x|y)
    oracle, (x, t) = _mixture(cosine()), _points(4)
    unconditional = GaussianMixture(WEIGHTS, MEANS, VARS, cosine())
    for c in range(3):
        cg = classifier_guided(unconditional, oracle, c, 1.0)
        eps, div = cg.eps_and_divergence(x, t)
        ref_eps, ref_div = _by_hand(c, cosine()).eps_and_divergence(x, t)
        np.testing.assert_allclose(eps, ref_eps, rtol=1e-10, atol=1e-12, err_msg=f"label {c}")
        np.testing.assert_allclose(div, ref_div, rtol=1e-10, atol=1e-12, err_msg=f"label {c}")
        np.testing.assert_allclose(cg.eps(x, t), ref_eps, rtol=1e-10, atol=1e-12)
    # scale 2 is the classifier-free weight 1 (w = s - 1) for the exact classifier
    np.testing.assert_allclose(classifier_guided(unconditional, oracle, 2, 2.0).eps(x, t), guided(oracle, 2, 1.0).eps(x, t),
                               rtol=1e-10, atol=1e-12)


def test_samplers_and_the_likelihood_run_on_a_guided_field_with_labels_per_point():
    oracle = toy2d.load("8gaussians").oracle()
    y = np.repeat(np.arange(8), 5)  # (40,) one label per sample
    g = guided(oracle, y, 2.0)
    for res in (ddim_sample(g, 40, np.random.default_rng(5), steps=50),
                sde_sample(g, 40, np.random.default_rng(5), steps=200)):
        nearest = np.argmin(((res.x[:, None, :] - oracle.means[None]) ** 2).sum(2), axis=1)
        np.testing.assert_array_equal(nearest, y)  # each sample lands on its label's component
    ll = ode_log_likelihood(g, res.x, t_min=1e-3, rtol=1e-4, atol=1e-4)
    assert ll.log_p.shape == (40,) and np.all(np.isfinite(ll.log_p))


def test_exact_kl_of_the_guided_ode_to_the_conditional_is_zero_at_w_zero():
    # the ODE's samples have an exact log-density (their flow's likelihood): at w = 0 the field is q_t(x | y)'s,
    # so KL(samples || p(x | y)) = E[log p_ode - log p(x | y)] vanishes within its Monte Carlo error
    oracle = toy2d.load("8gaussians").oracle()
    g = guided(oracle, 3, 0.0)
    x = ode_sample(g, 600, np.random.default_rng(6), t_min=1e-5, denoise=False).x
    gap = ode_log_likelihood(g, x, t_min=1e-5).log_p - oracle.log_prob(x, 0.0, 3)
    se = gap.std() / np.sqrt(gap.size)
    assert abs(gap.mean()) < max(3 * se, 2e-3), (gap.mean(), se)
    assert se < 0.01  # the per-point log-densities agree, not only their mean


# -- the closed-form check: Gaussian p(x | y) and p(x) -------------------------------------------------------
class TwoGaussians:
    """A conditional denoiser whose p(x | y) and p(x) are both Gaussian (no mixture is: this pair is for the check)."""

    num_classes, dim = 1, 2

    def __init__(self, cond, uncond):
        self.cond, self.uncond, self.schedule = cond, uncond, cond.schedule

    def eps(self, x, t, y=None):
        return (self.uncond if y is None else self.cond).eps(x, t)

    def eps_and_divergence(self, x, t, y=None):
        return (self.uncond if y is None else self.cond).eps_and_divergence(x, t)


def _guided_gaussian_moments(mu_c, v_c, mu_u, v_u, w, sched, t_min):
    # per coordinate the guided flow is dx/dt = A(t) x + b(t); from N(0, 1) at t_max the output is N(m, S) with
    # dm/dt = A m + b, dS/dt = 2 A S (the moment equations of a linear ODE), solved here to 1e-12
    def rhs(t, z):
        a, s2, beta = np.sqrt(sched.alpha_bar(t)), sched.sigma(t) ** 2, sched.beta(t)
        pc, pu = 1.0 / (a * a * v_c + s2), 1.0 / (a * a * v_u + s2)  # precisions of q_t(x|y), q_t(x)
        A = -0.5 * beta * (1.0 - (1 + w) * pc + w * pu)
        b = -0.5 * beta * ((1 + w) * pc * a * mu_c - w * pu * a * mu_u)
        m, S = z[:2], z[2:]
        return np.concatenate([A * m + b, 2 * A * S])

    sol = solve_ivp(rhs, (sched.t_max, t_min), np.array([0.0, 0.0, 1.0, 1.0]), rtol=1e-12, atol=1e-12)
    return sol.y[:2, -1], sol.y[2:, -1]


def test_guided_ode_of_two_gaussians_is_the_affine_map_of_its_moment_equations_not_the_tilted_gaussian():
    sched, w, t_min = vp_linear(), 2.0, 1e-4
    mu_c, v_c, mu_u, v_u = np.array([1.0, -0.5]), np.array([0.25, 0.5]), np.array([0.0, 0.0]), np.array([1.0, 1.0])
    den = TwoGaussians(GaussianData(mu_c, v_c, sched), GaussianData(mu_u, v_u, sched))
    g = guided(den, 0, w)
    m, S = _guided_gaussian_moments(mu_c, v_c, mu_u, v_u, w, sched, t_min)
    z = np.random.default_rng(7).standard_normal((6, 2))
    out = ode_sample(g, None, np.random.default_rng(0), x_T=z, t_min=t_min, denoise=False, rtol=1e-10, atol=1e-10).x
    np.testing.assert_allclose(out, m + np.sqrt(S) * z, rtol=1e-7, atol=1e-7)  # the flow is x_T -> m + sqrt(S) x_T
    # and the exact likelihood of the guided flow is that Gaussian's density, point by point
    x = m + np.sqrt(S) * np.random.default_rng(8).standard_normal((5, 2)) * 2.0
    log_p = ode_log_likelihood(g, x, t_min=t_min, rtol=1e-10, atol=1e-10).log_p
    ref = multivariate_normal(m, np.diag(S)).logpdf(x)
    np.testing.assert_allclose(log_p, ref, rtol=1e-7, atol=1e-7)
    # the tilted Gaussian p(x|y)^(1+w) p(x)^-w: precision (1+w)/v_c - w/v_u, and it is not what the ODE samples
    prec = (1 + w) / v_c - w / v_u
    tilted_mean, tilted_var = ((1 + w) * mu_c / v_c - w * mu_u / v_u) / prec, 1.0 / prec
    assert np.all(np.abs(S / tilted_var - 1.0) > 0.3), (S, tilted_var)
    assert np.max(np.abs(m - tilted_mean)) > 0.05, (m, tilted_mean)


# -- the tilted target ------------------------------------------------------------------------------------
def test_tilted_target_at_w_zero_is_the_conditional_and_is_normalized():
    oracle = toy2d.load("8gaussians").oracle()
    T = TiltedTarget(oracle, 5, 0.0, half_width=6.5, spacing=0.1)
    x = oracle.sample(50, np.random.default_rng(9))
    np.testing.assert_allclose(T.log_prob(x), oracle.log_prob(x, 0.0, 5), rtol=1e-12, atol=1e-12)
    assert abs(T.log_normalizer) < 1e-10 and T.edge_mass < 1e-12


@pytest.mark.parametrize("w", [0.5, 3.0])
def test_tilted_target_of_separated_classes_is_the_conditional_times_two_to_the_w(w):
    # p(x) = (p0 + p1) / 2 with p1 negligible on p0's support: p0^(1+w) p^-w = 2^w p0, so log Z_w = w log 2
    mix = GaussianMixture([0.5, 0.5], [[0.0, 0.0], [40.0, 0.0]], 0.5, labels=[0, 1])
    T = TiltedTarget(mix, 0, w, half_width=6.0, spacing=0.1)
    np.testing.assert_allclose(T.log_normalizer, w * np.log(2.0), rtol=1e-10)
    np.testing.assert_allclose(T.entropy, np.log(2 * np.pi * np.e * 0.5), rtol=1e-8)  # the entropy of N(0, 0.5 I)
    # and a finer grid gives the same normalizer on an overlapping pair (the quadrature has converged)
    close = GaussianMixture([0.3, 0.7], [[0.0, 0.0], [1.0, 0.5]], [0.5, 0.3], labels=[0, 1])
    coarse, fine = (TiltedTarget(close, 1, w, half_width=6.0, spacing=s).log_normalizer for s in (0.1, 0.05))
    np.testing.assert_allclose(coarse, fine, rtol=1e-8)


def test_tilted_target_samples_follow_its_grid():
    T = TiltedTarget(toy2d.load("8gaussians").oracle(), 0, 2.0, half_width=6.5, spacing=0.05)
    x = T.sample(20000, np.random.default_rng(10))
    lp = T.log_prob(x)
    np.testing.assert_allclose(lp.mean(), -T.entropy, atol=4 * lp.std() / np.sqrt(lp.size))


# -- bad input --------------------------------------------------------------------------------------------
def test_bad_guidance_arguments_raise_clear_errors():
    oracle = _mixture()
    plain = GaussianMixture(WEIGHTS, MEANS, VARS)
    with pytest.raises(ValueError, match="denoiser must be conditional"):
        guided(plain, 0, 1.0)
    for bad in (-0.5, np.nan, np.inf):
        with pytest.raises(ValueError, match="w must"):
            guided(oracle, 0, bad)
        with pytest.raises(ValueError, match="scale must"):
            classifier_guided(plain, oracle, 0, bad)
    with pytest.raises(ValueError, match=r"y must be integers in 0\.\.2"):
        guided(oracle, 3, 1.0)
    with pytest.raises(ValueError, match=r"y must be integers in 0\.\.2, got values in \[0\.5"):
        guided(oracle, 0.5, 1.0)
    for bad in ("1", True, [[0, 1]]):
        with pytest.raises((TypeError, ValueError), match="y must be"):
            guided(oracle, bad, 1.0)
    with pytest.raises(ValueError, match="y holds 3 labels but x has 7 points"):
        guided(oracle, [0, 1, 2], 1.0).eps(_points(0)[0], 0.5)
    with pytest.raises(ValueError, match="y must be None: this model has no labels"):
        plain.eps(_points(0)[0], 0.5, 1)
    with pytest.raises(TypeError, match="classifier must answer class_log_prob_grad"):
        classifier_guided(plain, object(), 0, 1.0)
    with pytest.raises(ValueError, match=r"classifier\.num_classes must be a positive int"):
        classifier_guided(plain, plain, 0, 1.0)  # an oracle without labels is no classifier
    with pytest.raises(ValueError, match="schedule"):
        classifier_guided(plain, _mixture(cosine()), 0, 1.0)
    with pytest.raises(ValueError, match="labels must use every class"):
        GaussianMixture(WEIGHTS, MEANS, VARS, labels=[0, 2, 2, 3])
    with pytest.raises(ValueError, match="labels must have shape"):
        GaussianMixture(WEIGHTS, MEANS, VARS, labels=[0, 1])
    with pytest.raises(ValueError, match="has no labels"):
        plain.sample_labelled(3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="w must"):
        TiltedTarget(oracle, 0, -1.0, half_width=4.0, spacing=0.1)
