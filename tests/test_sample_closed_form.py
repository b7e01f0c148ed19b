r"""Every fast sampler's steps against its published update, repeated apart from npdiff in 50-digit arithmetic.

On Gaussian data :math:`\mathcal N(\mu, C)` the optimal denoiser is linear in x,

    E[x_0 | x_t = x] = mu + a C (a^2 C + s^2 I)^{-1} (x - a mu),   a = sqrt(alpha_bar(t)), s = sqrt(1 - alpha_bar(t))

(Gaussian conditioning), so the probability-flow ODE is linear and everything a solver's step needs is a
closed form. Each test runs one of :data:`npdiff.sample.FAST_SAMPLERS` through ``fast_sample`` (no final
denoising, the states recorded at the grid it builds) and repeats the method here in mpmath from its
paper's update, written out below, from the same starting noise at the same grid times:

* ddim: Song, Meng & Ermon 2021, Eq. 12 with eta = 0, in its own variables (x0_hat and eps_hat);
* euler, heun: Euler's and Heun's method in t on the flow f = -beta/2 (x + score) (Song et al. 2021, Eq. 13),
  with the score in closed form;
* edm: Karras et al. 2022, Algorithm 1, in their scaled state x / a and noise level s / a;
* dpm2, dpm3: DPM-Solver-2 and -3 in the noise prediction (Lu et al. 2022a, Algorithms 1 and 2,
  r1 = 1/2; r1 = 1/3, r2 = 2/3, the intermediate times found by root finding in the half log-SNR), in
  DPM-Solver-fast's layout (Sec. 3.4: floor(nfe / 3) + 1 steps of orders [3, ..., 3, 2, 1], [3, ..., 3, 1]
  or [3, ..., 3, 2] as nfe mod 3 is 0, 1 or 2);
* dpmpp2m: DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2);
* dpmpp3m: the quadratic through the last three data predictions (Newton's divided differences)
  integrated exactly against the kernel of Lu et al. 2022b, Eq. 8 (and the reference code's variant,
  its second-derivative term halved);
* unipc: UniP-2 and UniC (Zhao et al. 2023), B(h) = e^{-h} - 1: the weights solve the order conditions
  derived below, except the single-difference weights, 1/2 (UniP-2 and UniC-1, the authors' choice).

The exponential-integrator weights are closed forms, not quadrature: with ell = log(a / s) (half the
log-SNR) and h = ell_t - ell_s, the data-prediction form's exact solution (Lu et al. 2022b, Eq. 8) is

    x_t = (s_t / s_s) x_s + a_t int_0^h e^{-(h-u)} x_theta(ell_s + u) du,

and a polynomial prediction sum_n x^(n) u^n / n! integrates to sum_n x^(n) I_n(h) with

    I_n(h) = int_0^h e^{-(h-u)} u^n / n! du = (-1)^(n+1) (e^{-h} - sum_{j<=n} (-h)^j / j!)

(integrate by parts n times). The order each step runs at is written out for each case: the warm-up of
a multistep method, the lower-order last steps of a run of fewer than 10 steps, and first order after a
step more than twice as long as the one before it (npdiff.sample.exp_integrator.step_order).

Every recorded state is compared at 1e-12 relative (each row against its own norm): a weight that moves
(UniC's 1/2, 2M's 1/(2r), 3M's second derivative, UniP's rho, DPM-Solver-3's r2) moves a state by far more.
"""

from itertools import pairwise

import mpmath as mp
import numpy as np
import pytest

from npdiff import sample
from npdiff.analytic import GaussianData
from npdiff.schedule import vp_linear

DIGITS = 50
RTOL = 1e-12
T_MIN = 1e-3
BETA_MIN, BETA_MAX = 0.1, 20.0
MEAN = np.array([1.2, -0.7])
COV = np.array([[0.35, -0.08], [-0.08, 0.12]])
ORACLE = GaussianData(MEAN, COV, vp_linear(BETA_MIN, BETA_MAX))
X_T = np.array([[0.4, -1.3], [1.6, 0.5], [-0.9, 2.2]])  # (3, 2) the starting noise at t_max


@pytest.fixture(autouse=True)
def fifty_digits():
    with mp.workdps(DIGITS):
        yield


# -- the closed forms, apart from npdiff -------------------------------------------------------------------


def log_alpha_bar(t):
    t = mp.mpf(t)
    return -(mp.mpf(BETA_MIN) * t + (mp.mpf(BETA_MAX) - mp.mpf(BETA_MIN)) * t**2 / 2)  # Song et al. 2021, App. C


def beta(t):
    return mp.mpf(BETA_MIN) + mp.mpf(t) * (mp.mpf(BETA_MAX) - mp.mpf(BETA_MIN))


def alpha(t):
    return mp.exp(log_alpha_bar(t) / 2)


def sigma(t):
    return mp.sqrt(-mp.expm1(log_alpha_bar(t)))


def ell(t):
    """Half the log-SNR, log(alpha / sigma): DPM-Solver's lambda."""
    return mp.log(alpha(t) / sigma(t))


def time_of_ell(value):
    """The time at which ell takes ``value`` (ell falls strictly in t), by bisection-safe root finding."""
    return mp.findroot(lambda t: ell(t) - value, (mp.mpf("1e-9"), mp.mpf(1)), solver="anderson")


def covariance_at(t):
    C = mp.matrix(COV.tolist())
    return alpha(t) ** 2 * C + sigma(t) ** 2 * mp.eye(2)


def x0_hat(x, t):
    """E[x_0 | x_t = x] for each row of x (a list of 2-vectors)."""
    a, m = alpha(t), mp.matrix(MEAN.tolist())
    gain = a * mp.matrix(COV.tolist()) * mp.inverse(covariance_at(t))
    return [m + gain * (xi - a * m) for xi in x]


def eps_hat(x, t):
    """The optimal noise prediction (x - a x0_hat) / s."""
    return [(xi - alpha(t) * x0) / sigma(t) for xi, x0 in zip(x, x0_hat(x, t))]


def score(x, t):
    """grad log q_t(x) = -(a^2 C + s^2 I)^{-1} (x - a mu)."""
    inv, m = mp.inverse(covariance_at(t)), mp.matrix(MEAN.tolist())
    return [-(inv * (xi - alpha(t) * m)) for xi in x]


def flow(x, t):
    """The probability-flow field f = -beta/2 (x + score) (Song et al. 2021, Eq. 13)."""
    return [-beta(t) / 2 * (xi + si) for xi, si in zip(x, score(x, t))]


def kernel_weight(n, h):
    """I_n(h) = int_0^h e^{-(h-u)} u^n / n! du = (-1)^(n+1) (e^{-h} - sum_{j<=n} (-h)^j / j!)."""
    return (-1) ** (n + 1) * (mp.exp(-h) - sum((-h) ** j / mp.factorial(j) for j in range(n + 1)))


def lin(*terms):
    """sum of weight * vectors, row by row: lin((w1, v1), (w2, v2), ...)."""
    return [sum((w * v[i] for w, v in terms), mp.matrix(2, 1)) for i in range(len(terms[0][1]))]


def rows(x):
    return [mp.matrix([mp.mpf(float(v)) for v in xi]) for xi in np.asarray(x, dtype=np.float64)]


def to_array(x):
    return np.array([[float(v) for v in xi] for xi in x])


def assert_trajectory(res, expected, what):
    """Every recorded state of ``res`` within RTOL of the expected one, relative to the row's norm."""
    assert len(res.trajectory) == len(expected), f"{what}: {len(res.trajectory)} states, expected {len(expected)}"
    for i, (actual, want) in enumerate(zip(res.trajectory, expected)):
        want = to_array(want)
        err = np.linalg.norm(actual - want, axis=1) / np.linalg.norm(want, axis=1)
        assert err.max() < RTOL, f"{what}: state {i} off by {err.max():.2e} relative\n{actual}\nexpected\n{want}"


def run(name, nfe, grid=None):
    """npdiff's sampler from X_T, states recorded, and the grid times (mpf) it stepped through."""
    res = sample.fast_sample(ORACLE, None, 0, sampler=name, nfe=nfe, grid=grid, t_min=T_MIN, denoise=False,
                             x_T=X_T, record=True)
    return res, [mp.mpf(float(t)) for t in res.times]


# -- the methods, from their papers ---------------------------------------------------------------------------


def ddim_eq_12(x, times):
    """x_{t-1} = sqrt(ab_{t-1}) x0_hat + sqrt(1 - ab_{t-1}) eps_hat (Song, Meng & Ermon 2021, Eq. 12, eta = 0)."""
    out = [x]
    for s, t in pairwise(times):
        x = lin((alpha(t), x0_hat(x, s)), (sigma(t), eps_hat(x, s)))
        out.append(x)
    return out


def euler_in_t(x, times):
    out = [x]
    for s, t in pairwise(times):
        x = lin((1, x), (t - s, flow(x, s)))
        out.append(x)
    return out


def heun_in_t(x, times):
    """x_next = x + (t - s)/2 (f(x, s) + f(x + (t - s) f(x, s), t))."""
    out = [x]
    for s, t in pairwise(times):
        f = flow(x, s)
        f_next = flow(lin((1, x), (t - s, f)), t)
        x = lin((1, x), ((t - s) / 2, f), ((t - s) / 2, f_next))
        out.append(x)
    return out


def edm_algorithm_1(x, times, last_euler):
    """Karras et al. 2022, Algorithm 1 (lines 4-8) on y = x / a with the noise level n = s / a, D(y; n) = x0_hat(a y)."""
    out = [x]
    y = [xi / alpha(times[0]) for xi in x]
    K = len(times) - 1
    for i, (s, t) in enumerate(pairwise(times)):
        n_s, n_t = sigma(s) / alpha(s), sigma(t) / alpha(t)
        d = lin((1 / n_s, y), (-1 / n_s, x0_hat([alpha(s) * yi for yi in y], s)))  # (y - D(y; n_s)) / n_s
        y_next = lin((1, y), (n_t - n_s, d))
        if not (last_euler and i == K - 1):
            d_next = lin((1 / n_t, y_next), (-1 / n_t, x0_hat([alpha(t) * yi for yi in y_next], t)))
            y_next = lin((1, y), ((n_t - n_s) / 2, d), ((n_t - n_s) / 2, d_next))
        y = y_next
        out.append([alpha(t) * yi for yi in y])
    return out


def dpm_solver(x, times, orders):
    """Singlestep DPM-Solver-1, -2, -3 in the noise prediction (Lu et al. 2022a, Eq. 3.7 and Algorithms 1, 2)."""
    out = [x]
    for (s, t), k in zip(pairwise(times), orders):
        h = ell(t) - ell(s)
        e = eps_hat(x, s)
        first = lin((alpha(t) / alpha(s), x), (-sigma(t) * mp.expm1(h), e))  # DPM-Solver-1
        if k == 1:
            x = first
        elif k == 2:
            r1 = mp.mpf(1) / 2
            s1 = time_of_ell(ell(s) + r1 * h)
            u = lin((alpha(s1) / alpha(s), x), (-sigma(s1) * mp.expm1(r1 * h), e))
            d = lin((1, eps_hat(u, s1)), (-1, e))
            x = lin((1, first), (-sigma(t) / (2 * r1) * mp.expm1(h), d))
        else:
            r1, r2 = mp.mpf(1) / 3, mp.mpf(2) / 3
            s1, s2 = time_of_ell(ell(s) + r1 * h), time_of_ell(ell(s) + r2 * h)
            u1 = lin((alpha(s1) / alpha(s), x), (-sigma(s1) * mp.expm1(r1 * h), e))
            d1 = lin((1, eps_hat(u1, s1)), (-1, e))
            u2 = lin((alpha(s2) / alpha(s), x), (-sigma(s2) * mp.expm1(r2 * h), e),
                     (-sigma(s2) * r2 / r1 * (mp.expm1(r2 * h) / (r2 * h) - 1), d1))
            d2 = lin((1, eps_hat(u2, s2)), (-1, e))
            x = lin((1, first), (-sigma(t) / r2 * (mp.expm1(h) / h - 1), d2))
        out.append(x)
    return out


def dpm_solver_fast_orders(nfe, order):
    """DPM-Solver-fast's steps (Lu et al. 2022a, Sec. 3.4): K = nfe // 3 + 1 third-order steps ending [2, 1], [1]
    or [2] as nfe mod 3 is 0, 1, 2; second order: nfe // 2 steps, one more of first order if nfe is odd."""
    if order == 3:
        K = nfe // 3 + 1
        return {0: [3] * (K - 2) + [2, 1], 1: [3] * (K - 1) + [1], 2: [3] * (K - 1) + [2]}[nfe % 3]
    return [2] * (nfe // 2) + [1] * (nfe % 2)


def dpmpp(x, times, orders, second_weight=1):
    """DPM-Solver++ in the data prediction: order 1 (Eq. 8 with x_theta held), 2M (Algorithm 2) and 3M (the
    quadratic through the last three predictions, Newton's form, integrated against Eq. 8's kernel; its
    second-derivative term times ``second_weight``)."""
    out, ms = [x], []
    for i, ((s, t), k) in enumerate(zip(pairwise(times), orders)):
        h = ell(t) - ell(s)
        ms.append(x0_hat(x, s))
        if k == 1:
            x = lin((sigma(t) / sigma(s), x), (alpha(t) * kernel_weight(0, h), ms[-1]))
        elif k == 2:
            r = (ell(s) - ell(times[i - 1])) / h  # h_{i-1} / h_i
            D = lin((1 + 1 / (2 * r), ms[-1]), (-1 / (2 * r), ms[-2]))
            x = lin((sigma(t) / sigma(s), x), (-alpha(t) * (mp.exp(-h) - 1), D))  # Algorithm 2's update
        else:
            l0, l1, l2 = ell(s), ell(times[i - 1]), ell(times[i - 2])
            f01 = lin((1 / (l0 - l1), ms[-1]), (-1 / (l0 - l1), ms[-2]))  # divided differences
            f12 = lin((1 / (l1 - l2), ms[-2]), (-1 / (l1 - l2), ms[-3]))
            f012 = lin((1 / (l0 - l2), f01), (-1 / (l0 - l2), f12))
            slope = lin((1, f01), (l0 - l1, f012))  # P'(l0) of P = m0 + f01 (l - l0) + f012 (l - l0)(l - l1)
            x = lin((sigma(t) / sigma(s), x), (alpha(t) * kernel_weight(0, h), ms[-1]),
                    (alpha(t) * kernel_weight(1, h), slope),
                    (second_weight * alpha(t) * kernel_weight(2, h) * 2, f012))  # P''(l0) = 2 f012
        out.append(x)
    return out


def order_conditions(r, h):
    """The weights rho_k with sum_k rho_k r_k^(n-1) = -n! I_n(h) / (B(h) h^n), n = 1..len(r), B(h) = e^{-h} - 1.

    From the exact solution: a difference D_k = (m(ell_s + r_k h) - m_s) / r_k of a polynomial prediction is
    sum_n r_k^(n-1) h^n x^(n) / n!, and -a_t B(h) sum_k rho_k D_k must equal a_t sum_{n>=1} I_n(h) x^(n)."""
    B = mp.exp(-h) - 1
    R = mp.matrix([[rk ** (n - 1) for rk in r] for n in range(1, len(r) + 1)])
    b = mp.matrix([-mp.factorial(n) * kernel_weight(n, h) / (B * h**n) for n in range(1, len(r) + 1)])
    return list(mp.lu_solve(R, b))


def unipc_bh2(x, times, orders):
    """UniPC (Zhao et al. 2023): UniP-p then UniC-p with B(h) = e^{-h} - 1; the predictions stored are those at
    the predicted states; the last step is not corrected (no evaluation follows it)."""
    out, ms = [x], [x0_hat(x, times[0])]
    K = len(times) - 1
    for i, ((s, t), p) in enumerate(zip(pairwise(times), orders)):
        h = ell(t) - ell(s)
        B = mp.exp(-h) - 1
        r = [(ell(times[i - k]) - ell(s)) / h for k in range(1, p)]
        D = [lin((1 / r[k - 1], ms[-1 - k]), (-1 / r[k - 1], ms[-1])) for k in range(1, p)]
        base = lin((sigma(t) / sigma(s), x), (alpha(t) * kernel_weight(0, h), ms[-1]))
        rho_p = {1: [], 2: [mp.mpf(1) / 2]}[p] if p < 3 else order_conditions(r, h)
        x_pred = lin((1, base), *[(-alpha(t) * B * w, d) for w, d in zip(rho_p, D)])
        if i == K - 1:
            x = x_pred
        else:
            m_next = x0_hat(x_pred, t)
            rho_c = [mp.mpf(1) / 2] if p == 1 else order_conditions([*r, mp.mpf(1)], h)
            D_c = [*D, lin((1, m_next), (-1, ms[-1]))]
            x = lin((1, base), *[(-alpha(t) * B * w, d) for w, d in zip(rho_c, D_c)])
            ms.append(m_next)
        out.append(x)
    return out


# -- the tests ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", ["log_snr", "uniform"])
def test_ddim_is_song_eq_12(grid):
    res, times = run("ddim", 4, grid)
    assert_trajectory(res, ddim_eq_12(rows(X_T), times), f"ddim/{grid}")


def test_euler_is_eulers_method_in_t_on_the_flow():
    res, times = run("euler", 3)
    assert_trajectory(res, euler_in_t(rows(X_T), times), "euler")


@pytest.mark.parametrize("nfe", [4, 5])
def test_heun_is_heuns_method_in_t_on_the_flow(nfe):
    res, times = run("heun", nfe)
    assert len(times) == nfe // 2 + 1 and res.nfe == 2 * (nfe // 2)
    assert_trajectory(res, heun_in_t(rows(X_T), times), f"heun@{nfe}")


@pytest.mark.parametrize("nfe", [4, 3])
def test_edm_is_karras_algorithm_1(nfe):
    res, times = run("edm", nfe)
    assert len(times) == (nfe + 1) // 2 + 1 and res.nfe == nfe
    assert_trajectory(res, edm_algorithm_1(rows(X_T), times, last_euler=nfe % 2 == 1), f"edm@{nfe}")


@pytest.mark.parametrize("name, nfe", [("dpm2", 4), ("dpm2", 5), ("dpm3", 9), ("dpm3", 10), ("dpm3", 11)])
def test_dpm_solver_is_lu_algorithms_1_and_2_in_the_fast_layout(name, nfe):
    res, times = run(name, nfe)
    orders = dpm_solver_fast_orders(nfe, int(name[-1]))
    assert len(times) == len(orders) + 1 and res.nfe == nfe == sum(orders)
    # the layout's outer times on the default (log_snr) grid: uniform in ell, as Sec. 3.4 has it
    np.testing.assert_allclose(np.diff([float(ell(t)) for t in times]), float(ell(times[-1]) - ell(times[0])) /
                               len(orders), rtol=1e-12)
    assert_trajectory(res, dpm_solver(rows(X_T), times, orders), f"{name}@{nfe}")


# the orders: warm-up [1, 2, ...]; below 10 steps the last steps lowered; on the uniform grid the last step
# (4.7 times the one before it in ell) at first order
MULTISTEP_CASES = [
    ("dpmpp2m", 5, "log_snr", [1, 2, 2, 2, 1]),
    ("dpmpp2m", 10, "uniform", [1] + [2] * 8 + [1]),
    ("dpmpp2m", 11, "log_snr", [1] + [2] * 10),
    ("dpmpp2m", 9, "log_snr", [1] + [2] * 7 + [1]),
    ("dpmpp2m", 10, "quadratic", [1] + [2] * 9),  # its last ratio, 0.53, keeps the order
    ("dpmpp3m", 6, "log_snr", [1, 2, 3, 3, 2, 1]),
    ("dpmpp3m", 10, "uniform", [1, 2] + [3] * 7 + [1]),
    ("dpmpp3m", 11, "log_snr", [1, 2] + [3] * 9),
    ("ddim", 3, "quadratic", [1, 1, 1]),
]


@pytest.mark.parametrize("name, nfe, grid, orders", MULTISTEP_CASES)
def test_dpm_solver_pp_multistep_is_lu_2022b(name, nfe, grid, orders):
    res, times = run(name, nfe, grid)
    assert_trajectory(res, dpmpp(rows(X_T), times, orders), f"{name}/{grid}@{nfe}")


@pytest.mark.parametrize("nfe, grid, orders", [(5, "log_snr", [1, 2, 2, 2, 1]), (10, "uniform", [1] + [2] * 8 + [1]),
                                               (11, "log_snr", [1] + [2] * 10)])
def test_unipc_is_unip_2_and_unic_of_zhao_et_al(nfe, grid, orders):
    res, times = run("unipc", nfe, grid)
    assert res.nfe == nfe
    assert_trajectory(res, unipc_bh2(rows(X_T), times, orders), f"unipc/{grid}@{nfe}")


# a hand-made grid whose fourth step (in ell) is more than twice the third: that step drops to first order
# (its corrector too), the next ones climb back to full order from the stored predictions; 8 steps: the last lowered too
STRETCHED = np.array([1.0, 0.8, 0.62, 0.5, 0.2, 0.14, 0.09, 0.05, 0.02])


def test_the_stretched_grid_has_one_step_ratio_below_one_half():
    h = np.diff([float(ell(t)) for t in STRETCHED])
    ratios = h[:-1] / h[1:]
    assert np.sum(ratios < 0.5) == 1 and ratios[2] < 0.5, ratios.round(3)


@pytest.mark.parametrize("order, orders", [(1, [1] * 8), (2, [1, 2, 2, 1, 2, 2, 2, 1]), (3, [1, 2, 3, 1, 2, 3, 2, 1])])
def test_unipc_of_every_order_on_a_stretched_grid(order, orders):
    res = sample.unipc(ORACLE, X_T, STRETCHED, order=order, record=True)
    assert_trajectory(res, unipc_bh2(rows(X_T), [mp.mpf(float(t)) for t in STRETCHED], orders), f"unipc-{order}")


@pytest.mark.parametrize("order, orders, reference_3m", [(2, [1, 2, 2, 1, 2, 2, 2, 1], False),
                                                         (3, [1, 2, 3, 1, 2, 3, 2, 1], False),
                                                         (3, [1, 2, 3, 1, 2, 3, 2, 1], True)])
def test_dpm_solver_pp_of_every_order_on_a_stretched_grid(order, orders, reference_3m):
    res = sample.dpmpp_multistep(ORACLE, X_T, STRETCHED, order=order, reference_3m=reference_3m, record=True)
    expected = dpmpp(rows(X_T), [mp.mpf(float(t)) for t in STRETCHED], orders,
                     second_weight=mp.mpf(1) / 2 if reference_3m else 1)
    assert_trajectory(res, expected, f"dpmpp-{order}{'-ref' if reference_3m else ''}")


def test_the_closed_forms_here_are_the_oracles():
    # the schedule and the denoiser written out above are those the oracle diffuses under and answers with
    t = np.array([T_MIN, 0.3, 0.9])
    np.testing.assert_allclose(vp_linear(BETA_MIN, BETA_MAX).log_alpha_bar(t), [float(log_alpha_bar(ti)) for ti in t],
                               rtol=1e-14)
    for ti in t:
        np.testing.assert_allclose(ORACLE.eps(X_T, ti), to_array(eps_hat(rows(X_T), ti)), rtol=1e-12, atol=1e-14)
    # and the kernel weights are the integrals they stand for
    for n in range(4):
        for h in (mp.mpf("0.01"), mp.mpf(2)):
            quad = mp.quad(lambda u, h=h, n=n: mp.exp(-(h - u)) * u**n / mp.factorial(n), [0, h])
            assert abs(kernel_weight(n, h) - quad) < mp.mpf(10) ** (-40) * abs(quad)
