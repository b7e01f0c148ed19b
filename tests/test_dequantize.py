"""Dequantization of K-level data (npdiff.likelihood.dequantize): the truncated normal's density and samples against
quadrature and SciPy, the importance-weighted bound against the exact bin mass of a flow known in closed form, S = 1
against the uniform figure as it was computed before, the bound on a step file's times, and the command line."""

import contextlib
import io

import numpy as np
import pytest
from scipy import integrate, stats

from npdiff import cli
from npdiff.analytic import GaussianData
from npdiff.checkpoint import save
from npdiff.likelihood import (
    DEQUANTIZATIONS,
    bound_chain,
    density_to_bpd,
    dequantization_log_density,
    dequantize,
    dequantized_bpd,
    dequantized_vlb_bpd,
    image_bpd,
    ode_log_likelihood,
    truncated_normal_scale,
    vlb,
)
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.reverse import chain_for
from npdiff.sample.step_file import save_steps
from npdiff.schedule import cosine, vp_linear

K = 17
DELTA = 1.0 / (K - 1)  # half a bin


def _levels(n, D, seed):
    return 2.0 * np.random.default_rng(seed).integers(0, K, size=(n, D)) / (K - 1) - 1.0  # (n, D) on the levels


# -- the truncated normal ------------------------------------------------------------------------------


@pytest.mark.parametrize("dequantization, scale", [("uniform", None), ("truncated_normal", 1e-3),
                                                   ("truncated_normal", 0.03), ("truncated_normal", DELTA),
                                                   ("truncated_normal", 5.0)])
def test_the_noise_density_integrates_to_one_over_a_bin(dequantization, scale):
    def q(u):
        return float(np.exp(dequantization_log_density(np.array([[u]]), K, dequantization, scale)[0]))

    mass, err = integrate.quad(q, -DELTA, DELTA, points=[0.0], epsabs=1e-13, epsrel=1e-12, limit=200)
    assert mass == pytest.approx(1.0, abs=1e-9), f"{dequantization} at scale {scale}: mass {mass} +- {err}"
    assert q(DELTA * 1.0001) == 0.0 and q(-DELTA * 1.0001) == 0.0  # nothing outside the bin


@pytest.mark.parametrize("scale", [1e-3, 0.03, DELTA, 2.0])
def test_the_truncated_normal_density_is_scipys_per_pixel(scale):
    u = np.random.default_rng(0).uniform(-DELTA, DELTA, size=(50, 3))  # (50, 3) offsets inside the bin
    tau = DELTA / scale
    expected = stats.truncnorm.logpdf(u, -tau, tau, loc=0.0, scale=scale).sum(axis=1)  # independent of npdiff
    np.testing.assert_allclose(dequantization_log_density(u, K, "truncated_normal", scale), expected, rtol=1e-10,
                               atol=1e-9)


@pytest.mark.parametrize("scale", [1e-4, 0.02, DELTA, 3.0])
def test_truncated_normal_samples_lie_in_the_bin_and_follow_its_law(scale):
    x = _levels(400, 10, 1)
    y = dequantize(x, K, np.random.default_rng(2), "truncated_normal", scale)
    u = (y - x).ravel()  # (4000,)
    assert np.all(np.abs(u) <= DELTA * (1 + 1e-12)), f"an offset left its bin: max |u| = {np.abs(u).max()}"
    tau = DELTA / scale
    ks = stats.kstest(u, stats.truncnorm(-tau, tau, loc=0.0, scale=scale).cdf)
    assert ks.pvalue > 1e-3, f"scale {scale}: KS statistic {ks.statistic:.4f}, p = {ks.pvalue:.2e}"


def test_the_uniform_draws_are_the_ones_it_always_drew():
    x = _levels(5, 4, 3)
    expected = x + np.random.default_rng(7).uniform(-DELTA, DELTA, size=x.shape)  # how dequantize drew before
    np.testing.assert_array_equal(dequantize(x, K, np.random.default_rng(7)), expected)


def test_the_default_scale_is_the_forward_noise_in_data_units():
    s = vp_linear()
    t = 0.02
    ab = float(s.alpha_bar(t))
    assert truncated_normal_scale(s, t) == pytest.approx(np.sqrt((1 - ab) / ab), rel=1e-12)
    x = np.zeros((1, 2))
    res = dequantized_bpd(GaussianData(np.zeros(2), 0.3, s), x, K, 0, dequantization="truncated_normal", t_min=t,
                          rtol=1e-6, atol=1e-6)
    assert res.scale == pytest.approx(truncated_normal_scale(s, t), rel=1e-12)  # i-DODE: where the flow starts


# -- the importance-weighted bound against an exact answer -----------------------------------------------


def _flow_bin_bpd(x, sched, S2, t_min):
    # the Gaussian oracle's flow maps x at t_min to z = x sqrt(v_1 / v_0) and scores log N(z; 0, 1) + log|dz/dx|:
    # its density is N(0, v_0 / v_1), whose bin masses are differences of normal CDFs (one pixel, D = 1)
    v0, v1 = (S2 * sched.alpha_bar(t) + 1.0 - sched.alpha_bar(t) for t in (t_min, sched.t_max))
    sd = np.sqrt(v0 / v1)
    mass = stats.norm.cdf((x + DELTA) / sd) - stats.norm.cdf((x - DELTA) / sd)
    return -np.log2(mass[:, 0])  # (B,) bits of the one dimension


@pytest.mark.parametrize("dequantization, scale", [("uniform", None), ("truncated_normal", 0.04)])
def test_the_bound_tightens_with_draws_and_stays_above_the_exact_bin_mass(dequantization, scale):
    S2, t_min = 0.003, 1e-3  # a density narrower than a bin: Jensen's gap is large, so the draws matter
    sched = vp_linear()
    x = np.repeat(np.array([[0.0], [2 * DELTA], [4 * DELTA]]), 300, axis=0)  # (900, 1) three levels, 300 times each
    res = dequantized_bpd(GaussianData(np.zeros(1), S2, sched), x, K, np.random.default_rng(4), draws=16,
                          dequantization=dequantization, scale=scale, t_min=t_min, rtol=1e-9, atol=1e-9)
    exact = _flow_bin_bpd(x, sched, S2, t_min)  # (900,)
    by_s = {s: res.bpd_of_draws(s) for s in (1, 4, 16)}  # nested draws: the comparisons are paired
    np.testing.assert_array_equal(by_s[16], res.bpd)
    for small, large in ((1, 4), (4, 16)):
        d = by_s[small] - by_s[large]
        assert d.mean() > 3 * d.std(ddof=1) / np.sqrt(d.size), f"S = {small} -> {large}: {d.mean():.4f} bits"
    slack = by_s[16] - exact
    assert slack.mean() > -3 * slack.std(ddof=1) / np.sqrt(slack.size), f"below the exact bin mass by {slack.mean()}"
    assert (by_s[1] - exact).mean() > slack.mean() > 0.0  # closer to the exact figure, never below it on average


def test_one_uniform_draw_is_the_figure_computed_as_before():
    sched = vp_linear()
    g = GaussianData(np.zeros(6), 0.3, sched)
    x = _levels(7, 6, 5)
    res = dequantized_bpd(g, x, K, np.random.default_rng(11), rtol=1e-7, atol=1e-7)
    xd = x + np.random.default_rng(11).uniform(-DELTA, DELTA, size=x.shape)  # the same generator, the old draw
    old = density_to_bpd(ode_log_likelihood(g, xd, rtol=1e-7, atol=1e-7).log_p, K, 6)
    np.testing.assert_array_equal(res.bpd, old)
    np.testing.assert_array_equal(res.bpd_mean, old)
    assert res.dequantization == "uniform" and res.scale is None


def test_the_dequantized_bound_is_the_chain_bound_of_the_dequantized_data_plus_log_q():
    sched = vp_linear()
    g = GaussianData(np.zeros(3), 0.3, sched)
    x = _levels(6, 3, 6)
    res = dequantized_vlb_bpd(g, x, K, np.random.default_rng(12), draws=2, dequantization="truncated_normal",
                              scale=0.05, T=20)
    rng = np.random.default_rng(12)
    log_w = []
    for _ in range(2):  # the offsets first, then that draw's chain noise, from the same generator
        # the truncated normal by its inverse CDF on U[0, 1) draws: stats.truncnorm.ppf, not npdiff's formula
        u = stats.truncnorm.ppf(rng.random(x.shape), -DELTA / 0.05, DELTA / 0.05, scale=0.05)
        L = vlb(g, x + u, 20, rng=rng).total  # (6,) Gaussian decoder density: continuous data
        log_q = stats.truncnorm.logpdf(u, -DELTA / 0.05, DELTA / 0.05, scale=0.05).sum(axis=1)
        log_w.append(-L - log_q)
    log_w = np.array(log_w)  # (2, 6)
    expected = -(np.logaddexp(log_w[0], log_w[1]) - np.log(2)) / (3 * np.log(2))
    np.testing.assert_allclose(res.bpd, expected, rtol=1e-7)
    np.testing.assert_allclose(res.bpd_of_draws(1), -log_w[0] / (3 * np.log(2)), rtol=1e-7)


def test_the_dequantized_bound_tightens_with_draws_on_a_sharp_density():
    g = GaussianData(np.zeros(1), 0.003, vp_linear())
    x = np.repeat(np.array([[0.0], [2 * DELTA]]), 300, axis=0)  # (600, 1)
    res = dequantized_vlb_bpd(g, x, K, np.random.default_rng(13), draws=8, T=50)
    d = res.bpd_of_draws(1) - res.bpd_of_draws(8)
    assert d.mean() > 3 * d.std(ddof=1) / np.sqrt(d.size), f"S = 1 -> 8: {d.mean():.4f} bits"


# -- the bound on a step file's times --------------------------------------------------------------------


def test_the_chain_through_the_uniform_times_is_the_chain_of_t_steps():
    sched = vp_linear()
    g = GaussianData(np.zeros(2), 0.3, sched)
    x = _levels(5, 2, 8)
    grid = chain_for(sched, 40).times[1:][::-1]  # (40,) decreasing from t_max to 1/40
    a = vlb(g, x, 40, rng=np.random.default_rng(3), K=K)
    b = vlb(g, x, rng=np.random.default_rng(3), K=K, times=grid)
    np.testing.assert_allclose(b.terms, a.terms, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bound_chain(sched, times=grid).alpha_bar, chain_for(sched, 40).alpha_bar, rtol=1e-12)


@pytest.mark.parametrize("times, steps, words", [
    ([0.9, 0.5, 0.01], None, "must start at the schedule's t_max"),
    ([1.0, 0.01, 0.5], None, "decrease"),
    ([1.0, 0.5, 0.01], 4, "steps and times"),
])
def test_a_grid_that_does_not_fit_is_refused_naming_the_argument(times, steps, words):
    with pytest.raises(ValueError, match=words):
        bound_chain(vp_linear(), 10, steps, times)


# -- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call, words", [
    (lambda g, x: dequantized_bpd(g, x, K, 0, dequantization="gaussian"), "dequantization must be one of"),
    (lambda g, x: dequantized_bpd(g, x, K, 0, draws=0), "draws"),
    (lambda g, x: dequantized_vlb_bpd(g, x, K, 0, draws=0), "draws"),
    (lambda g, x: dequantized_bpd(g, x, K, 0, scale=0.1), "uniform dequantization has none"),
    (lambda g, x: dequantized_bpd(g, x, K, 0, dequantization="truncated_normal", scale=-1.0), "scale"),
    (lambda g, x: dequantize(x, K, 0, "truncated_normal"), "scale is required"),
    (lambda g, x: image_bpd(g, x, K, 0, dequantization="Uniform"), "dequantization"),
    (lambda g, x: image_bpd(g, x, K, 0, method="vlb", times=[0.5, 0.1]), "t_max"),
])
def test_bad_dequantization_arguments_are_clear_errors(call, words):
    g = GaussianData(np.zeros(2), 0.3, vp_linear())
    with pytest.raises(ValueError, match=words):
        call(g, _levels(3, 2, 0))


def test_every_dequantization_is_named():
    assert DEQUANTIZATIONS == ("uniform", "truncated_normal")


# -- the command line ------------------------------------------------------------------------------------


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("dequant_cli")
    save(d / "digits.npz", DiffusionMLP(MLPConfig(dim=64, width=16, depth=1, emb_dim=8), vp_linear(),
                                        rng=np.random.default_rng(0)), data_name="digits")
    save_steps(d / "steps.json", [1.0, 0.3, 0.05, 0.002], vp_linear())
    save_steps(d / "cosine.json", [cosine().t_max, 0.3, 0.002], cosine())
    return d


def test_nll_scores_the_bound_on_a_step_files_times(digits_model, monkeypatch):
    import json

    monkeypatch.chdir(digits_model)
    base = ["nll", "--model", "digits.npz", "--data", "digits", "--n", "6", "--method", "vlb", "--json"]
    code, out, err = _run([*base, "--steps-file", "steps.json"])
    assert code == 0, err
    r = json.loads(out)
    assert r["vlb_T"] == 4 and r["vlb_nfe"] == 4 and r["steps_file"] == "steps.json" and "through the times" in err
    from npdiff.checkpoint import load
    from npdiff.data.images import digits

    model = load(digits_model / "digits.npz").denoiser(ema=True)
    x = digits().test[:6]
    # the image recipe's variance, the per-pixel one
    direct = vlb(model, x, rng=np.random.default_rng(0), K=K, times=[1.0, 0.3, 0.05, 0.002], variance="diagonal")
    assert r["bpd_vlb"] == pytest.approx(float((direct.total / (64 * np.log(2))).mean()), rel=1e-12)


def test_nll_takes_the_dequantization_and_the_dequantized_bound(digits_model, monkeypatch):
    import json

    monkeypatch.chdir(digits_model)
    base = ["nll", "--model", "digits.npz", "--data", "digits", "--n", "4", "--json", "--rtol", "1e-3", "--atol", "1e-3"]
    code, out, err = _run([*base, "--method", "both", "--dequantization", "truncated_normal", "--scale", "0.05",
                           "--vlb-data", "dequantized", "--draws", "2", "--T", "5"])
    assert code == 0, err
    r = json.loads(out)
    assert r["ode_dequantization"] == r["vlb_dequantization"] == "truncated_normal"
    assert r["ode_scale"] == r["vlb_scale"] == 0.05 and r["ode_draws"] == r["vlb_draws"] == 2
    assert "truncated-normal dequantization with scale 0.05, log-mean-exp of 2 draws" in err
    code, out, err = _run([*base, "--method", "vlb", "--T", "5"])  # the default bound: the levels, as before
    assert code == 0, err
    assert json.loads(out)["vlb_dequantization"] == "levels"


@pytest.mark.parametrize("extra, words", [
    (["--dequantization", "gaussian"], "--dequantization: invalid choice"),
    (["--draws", "0"], "--draws"),
    (["--steps-file", "cosine.json", "--method", "vlb"], "--steps-file"),
    (["--steps-file", "cosine.json", "--method", "vlb"], "schedule"),
    (["--steps-file", "steps.json", "--method", "vlb", "--T", "10"], "--T and --steps-file"),
    (["--steps-file", "steps.json"], "--method ode runs no chain"),
    (["--steps-file", "missing.json", "--method", "vlb"], "--steps-file"),
    (["--scale", "0.05"], "--scale is the truncated normal's"),
    (["--vlb-data", "dequantized"], "--method ode runs no bound"),
])
def test_bad_nll_flags_are_one_line_errors_naming_the_flag(digits_model, monkeypatch, extra, words):
    monkeypatch.chdir(digits_model)
    code, _, err = _run(["nll", "--model", "digits.npz", "--data", "digits", "--n", "2", *extra])
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err


def test_dequantization_flags_are_refused_for_continuous_data(digits_model, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    save(tmp_path / "m2.npz", DiffusionMLP(MLPConfig(width=8, depth=1, emb_dim=8), vp_linear(),
                                           rng=np.random.default_rng(0)), data_name="moons")
    code, _, err = _run(["nll", "--model", "m2.npz", "--data", "moons", "--n", "4", "--dequantization", "uniform"])
    assert code == 2 and "--dequantization dequantizes K-level images" in err and "'moons' is continuous" in err, err


def test_points_of_a_known_density_are_scored_on_a_step_files_times_too():
    from npdiff.likelihood import score_points

    g = GaussianData(np.zeros(2), 0.3, vp_linear())
    x = np.random.default_rng(1).standard_normal((5, 2))
    grid = [1.0, 0.4, 0.05, 0.002]
    res = score_points(g, x, np.zeros(5), method="vlb", rng=np.random.default_rng(4), times=grid)
    direct = vlb(g, x, rng=np.random.default_rng(4), times=grid)
    np.testing.assert_array_equal(res.vlb.total, direct.total)
    with pytest.raises(ValueError, match="t_max"):
        score_points(g, x, np.zeros(5), method="both", rng=0, times=[0.5, 0.1])
