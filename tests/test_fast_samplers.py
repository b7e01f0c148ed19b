"""Few-step samplers and their time grids, against Gaussian data where the flow is known in closed form."""

import numpy as np
import pytest

from npdiff import sample
from npdiff.analytic import GaussianData
from npdiff.data import toy2d
from npdiff.sample import grids
from npdiff.schedule import cosine, log_snr_linear, vp_linear

T_MIN = 1e-3
MEAN = np.array([1.0, -0.5])
COV = np.array([[0.29, 0.06], [0.06, 0.09]])


def exact_flow(data, x, s, t):
    r"""The probability flow of Gaussian data from time s to t: x_t - m_t = Sigma_t^{1/2} Sigma_s^{-1/2} (x_s - m_s).

    Every Sigma_t = alpha_bar C + sigma^2 I shares C's eigenvectors, so the map is diagonal there.
    """
    sch = data.schedule
    ab_s, ab_t = float(sch.alpha_bar(s)), float(sch.alpha_bar(t))
    lam, rot = np.linalg.eigh(data.cov)
    d_s, d_t = ab_s * lam + (1.0 - ab_s), ab_t * lam + (1.0 - ab_t)
    y = (x - np.sqrt(ab_s) * data.mean) @ rot
    return np.sqrt(ab_t) * data.mean + (y * np.sqrt(d_t / d_s)) @ rot.T


@pytest.fixture(scope="module")
def gaussian():
    data = GaussianData(MEAN, COV, vp_linear())
    x_T = np.random.default_rng(0).standard_normal((32, 2))
    return data, x_T, exact_flow(data, x_T, data.schedule.t_max, T_MIN)


# -- the grids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", [vp_linear(), cosine(), log_snr_linear()], ids=lambda s: s.name)
def test_time_of_log_snr_inverts_the_log_snr(schedule):
    t = np.array([1e-5, 1e-3, 0.1, 0.5, 0.9, schedule.t_max])
    lam = schedule.log_snr(t)
    back = grids.time_of_log_snr(schedule, lam)
    # to the resolution of lambda: log_snr_linear's lambda = 10 - 20 t holds t = 1e-5 only to 1e-16 absolute
    np.testing.assert_allclose(back, t, rtol=1e-12, atol=2e-16, err_msg=schedule.name)
    np.testing.assert_allclose(schedule.log_snr(back), lam, rtol=1e-13, atol=1e-14, err_msg=schedule.name)


@pytest.mark.parametrize("schedule", [vp_linear(), cosine()], ids=lambda s: s.name)
def test_each_grid_is_uniform_in_its_own_variable(schedule):
    K, rho = 12, grids.KARRAS_RHO
    t_max = schedule.t_max
    variables = {  # the quantity each grid spaces evenly, as a function of t
        "uniform": lambda t: t,
        "log_snr": lambda t: schedule.log_snr(t),
        "karras": lambda t: np.exp(-schedule.log_snr(t) / (2 * rho)),  # sigma^(1/rho), sigma = sqrt((1 - ab) / ab)
        "quadratic": lambda t: np.sqrt(t),
    }
    for name, f in variables.items():
        t = grids.time_grid(schedule, K, name, T_MIN)
        assert t.shape == (K + 1,) and t[0] == t_max and t[-1] == T_MIN, name
        assert np.all(np.diff(t) < 0), name
        steps = np.diff(f(t))
        np.testing.assert_allclose(steps, steps.mean(), rtol=1e-9, atol=1e-12, err_msg=name)


def test_karras_grid_matches_eq_5_in_sigma():
    s = vp_linear()
    t = grids.karras_grid(s, 10, T_MIN)
    sigma = np.sqrt((1 - s.alpha_bar(t)) / s.alpha_bar(t))
    lo, hi = sigma[-1] ** (1 / 7), sigma[0] ** (1 / 7)
    expected = (hi + np.arange(11) / 10 * (lo - hi)) ** 7  # Karras et al. 2022, Eq. 5
    np.testing.assert_allclose(sigma, expected, rtol=1e-10)


@pytest.mark.parametrize("call, match", [
    (lambda s: grids.time_grid(s, 5, "cubic", T_MIN), "grid"),
    (lambda s: grids.time_grid(s, 0, "uniform", T_MIN), "steps"),
    (lambda s: grids.time_grid(s, 5, "uniform", 0.5, 0.4), "t_min"),
    (lambda s: grids.check_grid(s, [0.9, 0.5, 0.5, 0.1]), "decrease"),
    (lambda s: grids.check_grid(s, [0.1, 0.5]), "decrease"),
    (lambda s: grids.check_grid(s, [0.5]), "times"),
    (lambda s: grids.check_grid(s, [1.5, 0.5]), "times"),
    (lambda s: grids.time_of_log_snr(s, -50.0), "log_snr"),
])
def test_bad_grids_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(vp_linear())


# -- order of convergence on Gaussian data -------------------------------------------------------------


def errors(run, x_ref, budgets):
    return np.array([np.abs(run(k) - x_ref).max() for k in budgets])


def observed_orders(errs):
    return np.log2(errs[:-1] / errs[1:])  # each doubling of the steps divides the error by 2^order


# The observed order of the last doubling (40 -> 80 evaluations) on the log-SNR grid must be the stated one:
# at least p - 0.25, and for all but dpmpp3m at most p + 0.5. 3M converges faster than its order on Gaussian
# data (observed 4.0 here; 3.1 on the 8gaussians oracle, measured against RK45 at tolerance 1e-11).
@pytest.mark.parametrize("name", sample.FAST_SAMPLERS)
def test_each_sampler_converges_at_its_order_on_gaussian_data(name, gaussian):
    data, x_T, ref = gaussian
    order = sample.fast.ORDERS[name]
    if name == "dpm3":  # DPM-Solver-fast's layouts end in lower-order steps; the third-order method itself:
        def run(k):
            return sample.dpm_solver_singlestep(data, x_T, grids.log_snr_grid(data.schedule, k // 3, T_MIN), [3] * (k // 3)).x
        budgets = (21, 42, 84)
    else:
        def run(k):
            return sample.fast_sample(data, None, np.random.default_rng(0), sampler=name, nfe=k, grid="log_snr",
                                      t_min=T_MIN, denoise=False, x_T=x_T).x
        budgets = (20, 40, 80)
    errs = errors(run, ref, budgets)
    p = observed_orders(errs)
    assert errs[-1] > 1e-10, f"{name}: errors {errs} reached rounding, the order is not measured"
    assert p[-1] >= order - 0.25, f"{name}: observed order {p} for errors {errs}, stated {order}"
    if name != "dpmpp3m":
        assert p[-1] <= order + 0.5, f"{name}: observed order {p} for errors {errs}, stated {order}"


def test_reference_3m_weight_makes_the_update_second_order(gaussian):
    data, x_T, ref = gaussian

    def run(k, reference):
        return sample.dpmpp_multistep(data, x_T, grids.log_snr_grid(data.schedule, k, T_MIN), order=3,
                                      reference_3m=reference).x

    ref_errs, our_errs = (errors(lambda k, r=r: run(k, r), ref, (40, 80, 160)) for r in (True, False))
    assert 1.75 < observed_orders(ref_errs)[-1] < 2.4, ref_errs
    assert our_errs[-1] < ref_errs[-1] / 10, (our_errs, ref_errs)


def test_the_third_order_update_integrates_a_quadratic_prediction_exactly():
    # Lu et al. 2022b, Eq. 8 with x_theta(ell) = c ell^2, ell = half_log_snr (a denoiser built to predict that): one
    # 3M step must be exact. Runs on the first 12 and 11 times of one grid share their first 11 steps (10 or more steps: no lower
    # order at the end), so the difference isolates the 12th step.
    s, c = vp_linear(), 0.1

    class Quadratic:
        schedule, dim = s, 1

        def eps(self, x, t):
            ell = 0.5 * s.log_snr(t)  # half the log-SNR
            return (x - np.sqrt(s.alpha_bar(t)) * c * ell**2) / s.sigma(t)  # so (x - sigma eps) / alpha = c ell^2

        def eps_and_divergence(self, x, t):
            return self.eps(x, t), np.full(x.shape[0], 1.0 / s.sigma(t))

    times = grids.log_snr_grid(s, 12, T_MIN)
    _, sigma, ell = grids.noise_levels(s, times)
    x0 = np.array([[0.3], [-1.2]])
    # sigma_t int_{ell_11}^{ell_12} e^l c l^2 dl, with the antiderivative e^l (l^2 - 2l + 2)
    exact = sigma[12] * c * np.diff(np.exp(ell[11:]) * (ell[11:] ** 2 - 2 * ell[11:] + 2))[0]
    for reference in (False, True):
        a = sample.dpmpp_multistep(Quadratic(), x0, times, order=3, reference_3m=reference).x
        b = sample.dpmpp_multistep(Quadratic(), x0, times[:-1], order=3, reference_3m=reference).x
        step = a - sigma[12] / sigma[11] * b  # the last step's integral of x_theta, the same for both points
        if reference:
            assert np.all(np.abs(step - exact) > 1e-3 * abs(exact)), (step, exact)
        else:
            np.testing.assert_allclose(step, exact, rtol=1e-10)


# -- evaluations, equivalences, determinism ------------------------------------------------------------


class Counting:
    """An oracle that counts its evaluations (one per call over the batch)."""

    def __init__(self, inner):
        self.inner, self.schedule, self.dim, self.calls = inner, inner.schedule, inner.dim, 0

    def eps(self, x, t):
        self.calls += 1
        return self.inner.eps(x, t)

    def eps_and_divergence(self, x, t):
        self.calls += 1
        return self.inner.eps_and_divergence(x, t)


@pytest.mark.parametrize("name", sample.FAST_SAMPLERS)
@pytest.mark.parametrize("nfe", [5, 8])
def test_reported_evaluations_are_the_true_count(name, nfe):
    d = Counting(GaussianData(MEAN, COV))
    res = sample.fast_sample(d, 4, np.random.default_rng(0), sampler=name, nfe=nfe, denoise=True)
    assert res.nfe == d.calls, f"{name}: reported {res.nfe}, called {d.calls}"
    spent = nfe - (nfe % 2 if name == "heun" else 0)  # heun runs nfe // 2 steps of two evaluations
    assert res.nfe == spent + 1, f"{name}: {res.nfe} evaluations on a budget of {nfe} (+1 to denoise)"


@pytest.mark.parametrize("grid", sample.GRIDS)
def test_ddim_is_dpm_solver_1_in_either_parameterization_and_ddim_sample_on_the_grid(grid):
    o = toy2d.load("8gaussians").oracle()
    x_T = np.random.default_rng(1).standard_normal((40, 2))
    times = grids.time_grid(o.schedule, 6, grid, T_MIN)
    eps_form = sample.dpm_solver_singlestep(o, x_T, times, [1] * 6).x  # Lu et al. 2022a, first order
    data_form = sample.dpmpp_multistep(o, x_T, times, order=1).x  # Lu et al. 2022b, first order
    np.testing.assert_allclose(eps_form, data_form, atol=1e-12)
    fast = sample.fast_sample(o, None, np.random.default_rng(0), sampler="ddim", nfe=6, grid=grid, x_T=x_T)
    chain = sample.ddim_sample(o, None, np.random.default_rng(0), steps=7, grid=grid, x_T=x_T)  # Song et al. Eq. 12
    np.testing.assert_allclose(fast.x, chain.x, atol=1e-12)
    assert fast.nfe == chain.nfe == 7


def test_fast_heun_and_euler_are_the_ode_solvers_on_the_same_grid():
    o = toy2d.load("rings").oracle()
    x_T = np.random.default_rng(2).standard_normal((30, 2))
    for method, nfe, steps in (("heun", 12, 6), ("euler", 6, 6)):
        a = sample.fast_sample(o, None, np.random.default_rng(0), sampler=method, nfe=nfe, grid="karras", x_T=x_T)
        b = sample.ode_sample(o, None, np.random.default_rng(0), method=method, steps=steps, grid="karras", x_T=x_T)
        np.testing.assert_array_equal(a.x, b.x)
        assert a.nfe == b.nfe


def test_uniform_grid_leaves_ode_sample_as_it_was():
    o = toy2d.load("8gaussians").oracle()
    x_T = np.random.default_rng(3).standard_normal((20, 2))
    a = sample.ode_sample(o, None, np.random.default_rng(0), method="heun", steps=9, x_T=x_T, denoise=False).x
    t = np.linspace(o.schedule.t_max, T_MIN, 10)
    x = x_T
    for k in range(9):  # Heun in t by hand
        d = sample.flow_velocity(o, x, t[k])
        d2 = sample.flow_velocity(o, x + (t[k + 1] - t[k]) * d, t[k + 1])
        x = x + 0.5 * (t[k + 1] - t[k]) * (d + d2)
    np.testing.assert_allclose(a, x, atol=1e-12)


def test_samplers_are_deterministic_maps_of_the_noise_and_record_their_grid():
    o = toy2d.load("checkerboard").oracle()
    x_T = np.random.default_rng(4).standard_normal((25, 2))
    for name in sample.FAST_SAMPLERS:
        a = sample.fast_sample(o, None, np.random.default_rng(0), sampler=name, nfe=9, x_T=x_T, record=True)
        b = sample.fast_sample(o, None, np.random.default_rng(1), sampler=name, nfe=9, x_T=x_T)
        np.testing.assert_array_equal(a.x, b.x)
        assert a.trajectory.shape == (a.times.size, 25, 2) and a.times[0] == o.schedule.t_max, name
        np.testing.assert_array_equal(a.trajectory[0], x_T)
        assert np.all(np.diff(a.times) < 0) and a.times[-1] == T_MIN, name


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(sampler="dpm3", nfe=2), ValueError, "nfe"),
    (dict(sampler="dpmpp2m", nfe=1), ValueError, "nfe"),
    (dict(sampler="rk4"), ValueError, "sampler"),
    (dict(grid="cubic"), ValueError, "grid"),
    (dict(nfe=2.5), TypeError, "nfe"),
    (dict(t_min=0.0), ValueError, "t_min"),
    (dict(denoise="yes"), TypeError, "denoise"),
])
def test_fast_sample_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        sample.fast_sample(GaussianData(MEAN, COV), 3, np.random.default_rng(0), **kwargs)


@pytest.mark.parametrize("call, exc, match", [
    (lambda d, x: sample.dpmpp_multistep(d, x, [1.0, 0.5], order=2), ValueError, "times"),
    (lambda d, x: sample.dpmpp_multistep(d, x, [1.0, 0.5, 0.6], order=1), ValueError, "decrease"),
    (lambda d, x: sample.unipc(d, x, [1.0, 0.5, 0.1], order=3), ValueError, "times"),
    (lambda d, x: sample.dpm_solver_singlestep(d, x, [1.0, 0.5, 0.1], [3]), ValueError, "orders"),
    (lambda d, x: sample.dpm_solver_singlestep(d, x, [1.0, 0.5, 0.1], [3, 4]), ValueError, "orders"),
    (lambda d, x: sample.edm_heun(d, x, [1.0, 0.1], last_euler=1), TypeError, "last_euler"),
    (lambda d, x: sample.ode_sample(d, None, np.random.default_rng(0), x_T=x, grid="karras"), ValueError, "grid"),
    (lambda d, x: sample.ddim_sample(d, None, np.random.default_rng(0), x_T=x, steps=1, grid="karras"), ValueError,
     "steps"),
    (lambda d, x: sample.singlestep_orders(2, 3), ValueError, "nfe"),
])
def test_solver_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call(GaussianData(MEAN, COV), np.zeros((3, 2)))


def test_singlestep_orders_spend_the_budget_as_dpm_solver_fast():
    assert sample.singlestep_orders(9, 3) == [3, 3, 2, 1]
    assert sample.singlestep_orders(10, 3) == [3, 3, 3, 1]
    assert sample.singlestep_orders(11, 3) == [3, 3, 3, 2]
    assert sample.singlestep_orders(7, 2) == [2, 2, 2, 1]
    for nfe in range(3, 40):
        assert sum(sample.singlestep_orders(nfe, 3)) == nfe == sum(sample.singlestep_orders(nfe, 2))
