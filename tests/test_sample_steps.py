"""Each solver's single steps, pinned against the closed form on Gaussian data.

On Gaussian data N(m, C) the denoiser is linear in x, so the probability-flow ODE is linear and every
quantity a step needs has a closed form. The expected values here are derived apart from the code
under test, in 30-digit arithmetic (mpmath):

* the schedule (VP-linear, beta in [0.1, 20]) and the posterior mean E[x_0 | x_t] are written out again;
* the half log-SNR ell = log(alpha / sigma) and the times of intermediate points (root finding);
* every exponential-integrator weight is the integral it stands for, evaluated by quadrature:
  the exact solution from s to t, with h = ell_t - ell_s (Lu et al. 2022b, Eq. 8; 2022a, Eq. 3.4), is

      x_t = (sigma_t / sigma_s) x_s + alpha_t int_0^h e^{-(h-u)} x_theta(ell_s + u) du       (data form)
      x_t = (alpha_t / alpha_s) x_s - sigma_t int_0^h e^{h-u} eps_theta(ell_s + u) du         (noise form)

  and a method replaces the prediction by a polynomial, or by its paper's estimate of the derivatives.

So a weight that changes (UniC's 1/2, 2M's 1/(2r), 3M's second difference, DPM-Solver-3's r2) changes a
value these tests compare to 1e-10.
"""

import mpmath as mp
import numpy as np
import pytest

from npdiff import sample
from npdiff.analytic import GaussianData
from npdiff.reverse import chain_for
from npdiff.schedule import vp_linear

mp.mp.dps = 30
BETA_MIN, BETA_MAX = mp.mpf("0.1"), mp.mpf(20)
MEAN = np.array([1.0, -0.5])
COV = np.array([[0.29, 0.06], [0.06, 0.09]])
ORACLE = GaussianData(MEAN, COV, vp_linear())
X = np.array([[0.3, -1.2], [1.5, 0.4], [-0.7, 2.1]])  # (3, 2) states at the first time
# a grid that is not uniform in any of the grids' variables, so that step ratios r != 1 are exercised
TIMES = np.array([0.9, 0.6, 0.42, 0.27, 0.16, 0.08, 0.03])
RTOL, ATOL = 1e-10, 1e-12


# -- the closed forms, apart from npdiff -------------------------------------------------------------


def log_alpha_bar(t):
    t = mp.mpf(t)
    return -(BETA_MIN * t + (BETA_MAX - BETA_MIN) * t**2 / 2)  # Song et al. 2021, Appendix C


def alpha(t):
    return mp.exp(log_alpha_bar(t) / 2)


def sigma(t):
    return mp.sqrt(1 - mp.exp(log_alpha_bar(t)))


def ell(t):
    """Half the log-SNR, log(alpha / sigma): DPM-Solver's lambda."""
    return mp.log(alpha(t) / sigma(t))


def time_of_ell(value):
    """The time at which ell takes ``value`` (ell decreases strictly in t), by root finding on (1e-6, 1)."""
    return mp.findroot(lambda t: ell(t) - value, (mp.mpf("1e-6"), mp.mpf(1)), solver="anderson")


def x0_hat(x, t):
    """E[x_0 | x_t = x] = m + a C (a^2 C + sigma^2 I)^{-1} (x - a m), for each row of x (a list of 2-vectors)."""
    a, s = alpha(t), sigma(t)
    C, m = mp.matrix(COV.tolist()), mp.matrix(MEAN.tolist())
    gain = a * C * mp.inverse(a**2 * C + s**2 * mp.eye(2))
    return [m + gain * (xi - a * m) for xi in x]


def eps_hat(x, t):
    return [(xi - alpha(t) * x0) / sigma(t) for xi, x0 in zip(x, x0_hat(x, t))]


def i_data(n, h):
    """int_0^h e^{-(h-u)} u^n / n! du: the data form's weight of the n-th derivative in ell."""
    return mp.quad(lambda u: mp.exp(-(h - u)) * u**n / mp.factorial(n), [0, h])


def i_noise(n, h):
    """int_0^h e^{h-u} u^n / n! du: the noise form's weight of the n-th derivative in ell."""
    return mp.quad(lambda u: mp.exp(h - u) * u**n / mp.factorial(n), [0, h])


def first_order_data(x, m, s, t):
    """The exact solution with x_theta held at m: (sigma_t / sigma_s) x + alpha_t int e^{-(h-u)} du m."""
    h = ell(t) - ell(s)
    return [sigma(t) / sigma(s) * xi + alpha(t) * i_data(0, h) * mi for xi, mi in zip(x, m)]


def rows(x):
    return [mp.matrix(list(map(mp.mpf, xi))) for xi in np.asarray(x, dtype=np.float64)]


def array(x):
    return np.array([[float(v) for v in xi] for xi in x])


def combine(*terms):
    """sum of weight * vectors, row by row: combine((w1, v1), (w2, v2), ...)."""
    return [sum((w * v[i] for w, v in terms), mp.matrix(2, 1)) for i in range(len(terms[0][1]))]


def close(actual, expected):
    np.testing.assert_allclose(actual, array(expected), rtol=RTOL, atol=ATOL)


# -- the first-order step: DDIM = DPM-Solver-1 = DPM-Solver++1 ------------------------------------------


def test_ddim_step_in_the_data_form_is_the_exact_solution_with_the_prediction_held():
    s, t = TIMES[0], TIMES[1]
    x = rows(X)
    res = sample.dpmpp_multistep(ORACLE, X, [s, t], order=1)
    close(res.x, first_order_data(x, x0_hat(x, s), s, t))


def test_dpm_solver_1_in_the_noise_form_is_the_exact_solution_with_the_noise_held():
    s, t = TIMES[0], TIMES[1]
    x, h = rows(X), ell(t) - ell(s)
    expected = combine((alpha(t) / alpha(s), x), (-sigma(t) * i_noise(0, h), eps_hat(x, s)))
    close(sample.dpm_solver_singlestep(ORACLE, X, [s, t], [1]).x, expected)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_sample_one_chain_step_is_song_eq_12(eta):
    # Song, Meng & Ermon 2021, Eq. 12 in its own (noise) form, with sigma_t(eta) of Eq. 16 and the same z
    K, T = 8, 200
    chain = chain_for(vp_linear(), T, K)
    res = sample.ddim_sample(ORACLE, None, np.random.default_rng(5), steps=K, T=T, eta=eta, x_T=X, record=True)
    z = rows(np.random.default_rng(5).standard_normal(X.shape))  # the first draw is the first step's
    ab, ab_prev, t = mp.mpf(chain.alpha_bar[K]), mp.mpf(chain.alpha_bar[K - 1]), chain.times[K]
    var = mp.mpf(eta) ** 2 * (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
    x = rows(X)
    x0 = x0_hat(x, t)
    eps = [(xi - mp.sqrt(ab) * x0i) / mp.sqrt(1 - ab) for xi, x0i in zip(x, x0)]
    expected = combine((mp.sqrt(ab_prev), x0), (mp.sqrt(1 - ab_prev - var), eps), (mp.sqrt(var), z))
    close(res.trajectory[1], expected)


def test_ddim_sample_last_chain_step_returns_the_prediction():
    res = sample.ddim_sample(ORACLE, None, 0, steps=1, T=1, x_T=X)  # one step from t_max to clean data
    close(res.x, x0_hat(rows(X), vp_linear().t_max))


# -- DPM-Solver-2 and -3 (Lu et al. 2022a, Algorithms 1 and 2) ----------------------------------------------


def test_dpm_solver_2_step_is_algorithm_1():
    s, t = TIMES[0], TIMES[2]
    x, h = rows(X), ell(t) - ell(s)
    r1 = mp.mpf(1) / 2
    s1 = time_of_ell(ell(s) + r1 * h)
    eps_s = eps_hat(x, s)
    u = combine((alpha(s1) / alpha(s), x), (-sigma(s1) * i_noise(0, r1 * h), eps_s))
    d1 = combine((1, eps_hat(u, s1)), (-1, eps_s))
    expected = combine((alpha(t) / alpha(s), x), (-sigma(t) * i_noise(0, h), eps_s),
                       (-sigma(t) / (2 * r1) * i_noise(0, h), d1))
    close(sample.dpm_solver_singlestep(ORACLE, X, [s, t], [2]).x, expected)


def test_dpm_solver_3_step_is_algorithm_2():
    s, t = TIMES[0], TIMES[2]
    x, h = rows(X), ell(t) - ell(s)
    r1, r2 = mp.mpf(1) / 3, mp.mpf(2) / 3
    s1, s2 = time_of_ell(ell(s) + r1 * h), time_of_ell(ell(s) + r2 * h)
    eps_s = eps_hat(x, s)
    u1 = combine((alpha(s1) / alpha(s), x), (-sigma(s1) * i_noise(0, r1 * h), eps_s))
    d1 = combine((1, eps_hat(u1, s1)), (-1, eps_s))
    # (e^{r2 h} - 1) / (r2 h) - 1 = int e^{r2 h - u} u du / (r2 h): the weight of the first derivative
    u2 = combine((alpha(s2) / alpha(s), x), (-sigma(s2) * i_noise(0, r2 * h), eps_s),
                 (-sigma(s2) * r2 / r1 * i_noise(1, r2 * h) / (r2 * h), d1))
    d2 = combine((1, eps_hat(u2, s2)), (-1, eps_s))
    expected = combine((alpha(t) / alpha(s), x), (-sigma(t) * i_noise(0, h), eps_s),
                       (-sigma(t) / r2 * i_noise(1, h) / h, d2))
    close(sample.dpm_solver_singlestep(ORACLE, X, [s, t], [3]).x, expected)


# -- DPM-Solver++ multistep (Lu et al. 2022b) ---------------------------------------------------------------


def test_dpmpp_2m_first_two_steps_are_algorithm_2():
    times = TIMES[:4]  # 3 steps, orders 1, 2, 1
    res = sample.dpmpp_multistep(ORACLE, X, times, order=2, record=True)
    t0, t1, t2 = times[:3]
    x0 = rows(X)
    m0 = x0_hat(x0, t0)
    x1 = first_order_data(x0, m0, t0, t1)
    m1 = x0_hat(x1, t1)
    r = (ell(t1) - ell(t0)) / (ell(t2) - ell(t1))  # h_{i-1} / h_i
    D = combine((1 + 1 / (2 * r), m1), (-1 / (2 * r), m0))
    x2 = first_order_data(x1, D, t1, t2)
    close(res.trajectory[1], x1)
    close(res.trajectory[2], x2)


def _quadratic_step(x, ells, ms, s, t, second_weight=1):
    """(sigma_t/sigma_s) x + alpha_t int_0^h e^{-(h-u)} P(ell_s + u) du, P the Taylor polynomial at ell_s of the
    quadratic through (ells[k], ms[k]), its second-order term times ``second_weight``."""
    e0, e1, e2 = ells  # e2 = ell_s, the newest
    h = ell(t) - ell(s)

    def lagrange_derivatives(k):  # d/dell and d^2/dell^2 of the k-th Lagrange basis polynomial, at e2
        nodes = [e0, e1, e2]
        others = [nodes[j] for j in range(3) if j != k]
        denom = (nodes[k] - others[0]) * (nodes[k] - others[1])
        return ((e2 - others[0]) + (e2 - others[1])) / denom, 2 / denom

    d1 = [lagrange_derivatives(k)[0] for k in range(3)]
    d2 = [lagrange_derivatives(k)[1] for k in range(3)]
    w0, w1, w2 = i_data(0, h), i_data(1, h), i_data(2, h)
    return combine((sigma(t) / sigma(s), x), (alpha(t) * w0, ms[2]),
                   *[(alpha(t) * (w1 * d1[k] + second_weight * w2 * d2[k]), ms[k]) for k in range(3)])


@pytest.mark.parametrize("reference_3m", [False, True])
def test_dpmpp_3m_third_step_integrates_the_quadratic_through_three_predictions(reference_3m):
    times = TIMES[:6]  # 5 steps, orders 1, 2, 3, 2, 1
    res = sample.dpmpp_multistep(ORACLE, X, times, order=3, reference_3m=reference_3m, record=True)
    t0, t1, t2, t3 = times[:4]
    x0 = rows(X)
    m0 = x0_hat(x0, t0)
    x1 = first_order_data(x0, m0, t0, t1)
    m1 = x0_hat(x1, t1)
    r = (ell(t1) - ell(t0)) / (ell(t2) - ell(t1))
    x2 = first_order_data(x1, combine((1 + 1 / (2 * r), m1), (-1 / (2 * r), m0)), t1, t2)
    m2 = x0_hat(x2, t2)
    # npdiff's 3M integrates the quadratic exactly; the reference code's weighs its second derivative by 1/2
    x3 = _quadratic_step(x2, [ell(t0), ell(t1), ell(t2)], [m0, m1, m2], t2, t3,
                         second_weight=mp.mpf(1) / 2 if reference_3m else 1)
    close(res.trajectory[2], x2)
    close(res.trajectory[3], x3)


# -- UniPC (Zhao et al. 2023), B(h) = e^{-h} - 1 ------------------------------------------------------------


def _order_condition_weights(r, h, n_conditions):
    """rho solving sum_k rho_k r_k^{n-1} = -n! I_n(h) / (B(h) h^n), n = 1..p: the update integrates a
    polynomial prediction of degree p exactly (from the data form's exact solution, term by term)."""
    B = mp.exp(-h) - 1
    R = mp.matrix([[rk ** (n - 1) for rk in r] for n in range(1, n_conditions + 1)])
    b = mp.matrix([-mp.factorial(n) * i_data(n, h) / (B * h**n) for n in range(1, n_conditions + 1)])
    return mp.lu_solve(R, b)


def _unipc_reference(x, times, order, steps):
    """The states after each of the first ``steps`` steps of UniPC-p, derived from Zhao et al. 2023's update."""
    K = len(times) - 1
    out = []
    ms = [x0_hat(x, times[0])]  # predictions at the predicted states, newest last
    for i in range(steps):
        s, t = times[i], times[i + 1]
        p = min(order, i + 1, K - i)  # the first steps and, with K < 10, the last ones at lower order
        h = ell(t) - ell(s)
        B = mp.exp(-h) - 1
        r = [(ell(times[i - k]) - ell(s)) / h for k in range(1, p)]
        D = [combine((1 / r[k - 1], ms[-1 - k]), (-1 / r[k - 1], ms[-1])) for k in range(1, p)]
        base = first_order_data(x, ms[-1], s, t)
        # UniP-p: one difference weighs 1/2; more solve the first p - 1 conditions
        rho_p = [mp.mpf(1) / 2] if p == 2 else (list(_order_condition_weights(r, h, p - 1)) if p > 2 else [])
        x_pred = combine((1, base), *[(-alpha(t) * B * w, d) for w, d in zip(rho_p, D)])
        m_next = x0_hat(x_pred, t)
        # UniC-p: one more difference, m_{i+1} - m_i at r = 1; UniC-1's single weight is 1/2
        rho_c = [mp.mpf(1) / 2] if p == 1 else list(_order_condition_weights([*r, mp.mpf(1)], h, p))
        D_c = [*D, combine((1, m_next), (-1, ms[-1]))]
        x = combine((1, base), *[(-alpha(t) * B * w, d) for w, d in zip(rho_c, D_c)])
        ms.append(m_next)
        out.append(x)
    return out


@pytest.mark.parametrize("order, K, steps", [(1, 3, 2), (2, 4, 2), (3, 6, 3)])
def test_unipc_predictor_and_corrector_steps_are_zhao_et_al(order, K, steps):
    times = TIMES[:K + 1]
    res = sample.unipc(ORACLE, X, times, order=order, record=True)
    expected = _unipc_reference(rows(X), times, order, steps)
    for i in range(steps):
        close(res.trajectory[i + 1], expected[i])


def test_unic_1_weighs_its_single_difference_by_one_half():
    # one corrected first-order step written out: x1 = DDIM(x0) - alpha_1 B(h) (1/2) (m_1 - m_0)
    t0, t1 = TIMES[0], TIMES[1]
    res = sample.unipc(ORACLE, X, TIMES[:3], order=1, record=True)
    x0 = rows(X)
    m0 = x0_hat(x0, t0)
    x1_pred = first_order_data(x0, m0, t0, t1)
    m1 = x0_hat(x1_pred, t1)
    h = ell(t1) - ell(t0)
    B = mp.exp(-h) - 1
    expected = combine((1, x1_pred), (-alpha(t1) * B / 2, m1), (alpha(t1) * B / 2, m0))
    close(res.trajectory[1], expected)


# -- EDM's Heun step (Karras et al. 2022, Algorithm 1) -------------------------------------------------------


def test_edm_heun_step_is_algorithm_1_in_the_scaled_state():
    s, t = TIMES[0], TIMES[1]
    x = rows(X)
    noise_s, noise_t = sigma(s) / alpha(s), sigma(t) / alpha(t)  # EDM's sigma
    y = [xi / alpha(s) for xi in x]
    d = eps_hat(x, s)
    y_euler = combine((1, y), (noise_t - noise_s, d))
    d_next = eps_hat([alpha(t) * yi for yi in y_euler], t)
    y_next = combine((1, y), ((noise_t - noise_s) / 2, d), ((noise_t - noise_s) / 2, d_next))
    close(sample.edm_heun(ORACLE, X, [s, t]).x, [alpha(t) * yi for yi in y_next])


# -- the order rule of the multistep solvers --------------------------------------------------------------


def test_the_step_order_rule_lowers_the_last_steps_below_ten_steps_and_after_a_step_ratio_below_one_half():
    from npdiff.sample.exp_integrator import step_order

    assert [step_order(3, i, np.ones(6)) for i in range(6)] == [1, 2, 3, 3, 2, 1]
    assert [step_order(2, i, np.ones(9)) for i in range(9)] == [1, 2, 2, 2, 2, 2, 2, 2, 1]
    assert [step_order(3, i, np.ones(10)) for i in range(10)] == [1, 2] + [3] * 8
    assert [step_order(1, i, np.ones(4)) for i in range(4)] == [1, 1, 1, 1]
    # r = h_prev / h: 0.5 keeps the order, just below it drops to one; order 3 also needs the ratio before
    h = np.array([1.0] * 10 + [2.0, 1.0, 2.01, 1.0, 1.0, 2.5, 1.0])
    assert [step_order(2, i, h) for i in range(10, 17)] == [2, 2, 1, 2, 2, 1, 2]
    assert [step_order(3, i, h) for i in range(10, 17)] == [3, 3, 1, 2, 3, 1, 2]


@pytest.mark.parametrize("name", ["dpmpp2m", "dpmpp3m", "unipc"])
def test_the_step_ratio_rule_removes_the_ten_step_jump_of_the_uniform_grid(name, monkeypatch):
    # On the uniform-t grid the last step is ~4.7 times the one before it (in half_log_snr) from 10 steps on,
    # where the final steps no longer drop their order by the step count: the multistep update extrapolated
    # the predictions far past the points that fit them and the error jumped at 10 evaluations.
    from npdiff.data import toy2d
    from npdiff.sample import exp_integrator

    oracle = toy2d.load("8gaussians").oracle()
    z = np.random.default_rng(0).standard_normal((400, 2))
    flow = sample.ode_sample(oracle, None, 0, x_T=z, rtol=1e-8, atol=1e-8, denoise=False).x

    def rms_error(nfe):
        x = sample.fast_sample(oracle, None, 0, sampler=name, nfe=nfe, grid="uniform", denoise=False, x_T=z).x
        return float(np.sqrt(np.mean(np.sum((x - flow) ** 2, axis=1))))

    errors = [rms_error(k) for k in (8, 10, 20)]
    assert errors[2] < errors[1] < errors[0] < 0.2, f"{name}: RMS error at 8, 10, 20 evaluations {errors}"
    monkeypatch.setattr(exp_integrator, "MIN_STEP_RATIO", 0.0)  # the order rule without the ratio
    old = [rms_error(k) for k in (8, 10)]
    assert old[0] == errors[0], "below ten steps the ratio rule changes nothing on this grid"
    assert old[1] > 2 * old[0], f"{name}: without the ratio rule the error jumps at 10 evaluations: {old}"


def test_the_schedule_written_here_is_npdiffs():
    # the closed forms above rebuild VP-linear; they must describe the schedule the oracle diffuses under
    t = np.array([0.03, 0.4, 0.9])
    np.testing.assert_allclose(vp_linear().log_alpha_bar(t), [float(log_alpha_bar(ti)) for ti in t], rtol=1e-14)
