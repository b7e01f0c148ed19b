"""SDEdit against closed forms on Gaussian data, its doors, and ``npdiff sample --threshold``.

On data N(mu, v) (per coordinate) the exact denoiser's prediction is affine,
E[x0 | x_t] = mu + g_t (x_t - sqrt(ab_t) mu) with g_t = v sqrt(ab_t) / (ab_t v + 1 - ab_t), so every step of
the DDPM chain (Ho et al. 2020, Eq. 7 with variance beta_t) and of DDIM at eta = 0 is affine in the state
plus independent Gaussian noise: the output of SDEdit from a fixed guide is Gaussian, and its mean and
variance follow from the recursions m <- A m + b, P <- A^2 P + beta written out below from the schedule's
alpha_bar alone (not from the samplers' chain).
"""

import contextlib
import io

import numpy as np
import pytest

from npdiff import cli
from npdiff.analytic import GaussianData
from npdiff.checkpoint import save
from npdiff.edit.sdedit import sdedit, sdedit_time
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.schedule import cosine, vp_linear

MU, V = 1.5, 0.2


def _oracle(schedule=None):
    return GaussianData(np.array([MU]), np.array([V]), schedule or vp_linear())


def _alpha_bars(schedule, t0, T0):
    """alpha_bar at the cut chain's times i t0 / T0, i = 0..T0 (index 0 is clean data)."""
    return np.array([1.0] + [float(schedule.alpha_bar(i * t0 / T0)) for i in range(1, T0 + 1)])


def _closed_form(guide, t0, T0, schedule, kind):
    """Mean and variance of SDEdit's output from ``guide`` on the chain of T0 steps cut at t0, no respacing."""
    ab = _alpha_bars(schedule, t0, T0)
    m, P = np.sqrt(ab[T0]) * guide, 1.0 - ab[T0]  # x_t0 ~ N(sqrt(ab) x_g, 1 - ab): Ho et al. 2020, Eq. 4
    for i in range(T0, 0, -1):
        g = V * np.sqrt(ab[i]) / (ab[i] * V + 1.0 - ab[i])  # x0_hat = MU + g (x - sqrt(ab) MU)
        if kind == "ddpm":
            beta = 1.0 - ab[i] / ab[i - 1]
            c0 = np.sqrt(ab[i - 1]) * beta / (1.0 - ab[i])
            c1 = np.sqrt(1.0 - beta) * (1.0 - ab[i - 1]) / (1.0 - ab[i])
            noise = beta if i > 1 else 0.0  # the last step returns the mean
        else:  # DDIM, eta = 0: x' = sqrt(ab') x0_hat + sqrt(1 - ab') (x - sqrt(ab) x0_hat) / sqrt(1 - ab)
            r = np.sqrt((1.0 - ab[i - 1]) / (1.0 - ab[i]))
            c0, c1, noise = np.sqrt(ab[i - 1]) - r * np.sqrt(ab[i]), r, 0.0
        A, b = c0 * g + c1, c0 * (MU - g * np.sqrt(ab[i]) * MU)
        m, P = A * m + b, A * A * P + noise
    return m, P


@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
@pytest.mark.parametrize("strength", [0.05, 0.3, 1.0])
def test_sdedit_output_has_the_closed_form_mean_and_variance(kind, strength):
    T, n, guide = 100, 20000, -0.8
    T0, t0 = sdedit_time(vp_linear(), strength, T)
    assert T0 == round(strength * T) and t0 == pytest.approx(strength)
    m, P = _closed_form(guide, t0, T0, vp_linear(), kind)
    # steps = T: the edit takes round(strength * T) = T0 steps, the whole cut chain, no respacing
    x = sdedit(_oracle(), np.full((n, 1), guide), 0, strength=strength, sampler=kind, steps=T, T=T).x[:, 0]
    assert abs(x.mean() - m) < 5 * np.sqrt(P / n)
    assert x.var(ddof=1) == pytest.approx(P, rel=5 * np.sqrt(2.0 / n))


def test_full_strength_is_plain_sampling_up_to_the_guides_trace():
    T = 100
    m_edit, P_edit = _closed_form(-0.8, vp_linear().t_max, T, vp_linear(), "ddpm")
    # plain sampling starts from N(0, 1) at t_max: the recursion of the closed form from mean 0, variance 1
    ab_T = float(vp_linear().alpha_bar(1.0))
    m_plain, P_plain = _closed_form(0.0, 1.0, T, vp_linear(), "ddpm")
    # the start differs by sqrt(ab_T) * guide in the mean and by ab_T in the variance; both shrink along the chain
    assert abs(m_edit - m_plain) <= np.sqrt(ab_T) * 0.8 + 1e-12 and abs(P_edit - (P_plain - 0.0)) < 2 * ab_T + 1e-12
    # and plain DDPM on the exact denoiser lands near the data N(MU, V) at T = 100
    assert m_plain == pytest.approx(MU, abs=0.01) and P_plain == pytest.approx(V, rel=0.05)
    x = sdedit(_oracle(), np.full((20000, 1), -0.8), 1, strength=1.0, steps=T, T=T).x[:, 0]
    plain = np.random.default_rng(2)
    from npdiff.sample import ddpm_sample

    y = ddpm_sample(_oracle(), 20000, plain, steps=T, T=T).x[:, 0]
    assert abs(x.mean() - y.mean()) < 5 * np.sqrt(2 * P_plain / 20000)
    assert x.var() == pytest.approx(y.var(), rel=0.06)


def test_small_strength_returns_nearly_the_input():
    guide = np.array([[-2.0], [0.0], [4.0]])  # far from the data N(1.5, 0.2) on purpose
    for sampler in ("ddpm", "ddim"):
        x = sdedit(_oracle(), guide, 0, strength=0.001, sampler=sampler).x  # t0 = 0.001, one step
        assert np.abs(x - guide).max() < 0.05, sampler
    x = sdedit(_oracle(), guide, 0, strength=0.01, sampler="ode", t_min=1e-4).x
    assert np.abs(x - guide).max() < 0.1


def test_ode_sdedit_is_the_gaussian_flow_map():
    # on N(MU, V) the probability flow keeps (x - sqrt(ab) MU) / sqrt(ab V + 1 - ab) constant; Tweedie then maps
    # x_tmin to MU + g (x - sqrt(ab) MU): the output is affine in x_t0 ~ N(sqrt(ab0) x_g, 1 - ab0)
    s, t_min, guide = vp_linear(), 1e-3, 0.4
    ab0, abm = float(s.alpha_bar(0.5)), float(s.alpha_bar(t_min))
    scale = np.sqrt((abm * V + 1 - abm) / (ab0 * V + 1 - ab0))
    g = V * np.sqrt(abm) / (abm * V + 1 - abm)
    m = MU + g * scale * (np.sqrt(ab0) * guide - np.sqrt(ab0) * MU)
    sd = g * scale * np.sqrt(1 - ab0)
    x = sdedit(_oracle(s), np.full((20000, 1), guide), 3, strength=0.5, sampler="ode", steps=100).x[:, 0]
    assert abs(x.mean() - m) < 5 * sd / np.sqrt(20000)
    assert x.std() == pytest.approx(sd, rel=0.03)


def test_strength_maps_to_t0_on_the_schedule():
    assert sdedit_time(vp_linear(), 0.5) == (500, 0.5)
    T0, t0 = sdedit_time(cosine(), 1.0, 200)
    assert T0 == 200 and t0 == cosine().t_max  # strength 1 is the schedule's t_max
    for sampler in ("ddpm", "ddim", "ode"):  # and every sampler starts there
        assert np.all(np.isfinite(sdedit(_oracle(cosine()), np.zeros((3, 1)), 0, strength=1.0, sampler=sampler,
                                         steps=10, T=200).x))
    assert sdedit_time(vp_linear(), 1e-6, 10) == (1, 0.1)  # at least one step


def test_sdedit_is_reproducible_from_a_seed_and_counts_evaluations():
    guide = np.linspace(-1, 1, 10)[:, None]
    a = sdedit(_oracle(), guide, 5, strength=0.4, steps=50)
    b = sdedit(_oracle(), guide, np.random.default_rng(5), strength=0.4, steps=50)
    assert np.array_equal(a.x, b.x) and a.nfe == b.nfe == 20
    c = sdedit(_oracle(), guide, 6, strength=0.4, steps=50)
    assert not np.array_equal(a.x, c.x)
    assert sdedit(_oracle(), guide, 5, strength=0.4, sampler="ode", steps=50).nfe == 2 * 20 + 1


@pytest.mark.parametrize("strength", [0.0, -0.1, 1.5, float("nan"), "half"])
def test_strength_outside_the_unit_interval_is_refused_by_name(strength):
    with pytest.raises((ValueError, TypeError), match="strength"):
        sdedit(_oracle(), np.zeros((2, 1)), 0, strength=strength)


def test_bad_arguments_are_refused():
    x = np.zeros((2, 1))
    with pytest.raises(ValueError, match="sampler"):
        sdedit(_oracle(), x, 0, sampler="unipc")
    with pytest.raises(ValueError, match="x"):
        sdedit(_oracle(), np.zeros((2, 3)), 0)
    with pytest.raises(ValueError, match="eta"):
        sdedit(_oracle(), x, 0, sampler="ddpm", eta=0.5)
    with pytest.raises(ValueError, match="threshold"):
        sdedit(_oracle(), x, 0, sampler="ode", threshold="static")
    with pytest.raises(ValueError, match="t_min"):
        sdedit(_oracle(), x, 0, sampler="ode", strength=0.001, t_min=0.01)
    with pytest.raises(ValueError, match="steps"):
        sdedit(_oracle(), x, 0, steps=0)


# -- npdiff sample --threshold --------------------------------------------------------------------


def _main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("threshold_cli")
    save(d / "m.npz", DiffusionMLP(MLPConfig(width=8, depth=1, emb_dim=8), vp_linear(), rng=np.random.default_rng(0)))
    return d


def test_cli_threshold_keeps_ddpm_and_ddim_samples_in_range(model_file):
    d = model_file
    for sampler in ("ddpm", "ddim"):
        for threshold in ("static", "dynamic"):
            out = d / f"{sampler}-{threshold}.npy"
            code, _, err = _main(["sample", "--model", str(d / "m.npz"), "--sampler", sampler, "--steps", "4",
                                  "--n", "50", "--threshold", threshold, "--out", str(out)])
            assert code == 0, err
            assert np.abs(np.load(out)).max() <= 1.0 + 1e-12
    code, _, err = _main(["sample", "--model", str(d / "m.npz"), "--sampler", "ddpm", "--steps", "4", "--n", "50",
                          "--threshold", "dynamic", "--percentile", "0.5", "--out", str(d / "p.npy")])
    assert code == 0, err


@pytest.mark.parametrize("argv, words", [
    (["--threshold", "static"], ["--threshold", "unipc"]),
    (["--sampler", "ode", "--threshold", "dynamic"], ["--threshold", "ode"]),
    (["--sampler", "ddpm", "--percentile", "0.9"], ["--percentile", "dynamic"]),
    (["--sampler", "ddpm", "--threshold", "dynamic", "--percentile", "1.0"], ["--percentile"]),
    (["--sampler", "ddpm", "--threshold", "dynamic", "--percentile", "0"], ["--percentile"]),
    (["--sampler", "ddpm", "--threshold", "clip"], ["--threshold"]),
])
def test_cli_threshold_mistakes_are_one_line(model_file, argv, words):
    d = model_file
    code, _, err = _main(["sample", "--model", str(d / "m.npz"), "--out", str(d / "bad.npy"), *argv])
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])
