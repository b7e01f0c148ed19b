"""Scoring points of a known density, points of one class, and the named seed offsets."""

import statistics

import numpy as np
import pytest

from npdiff import seeds
from npdiff.analytic import GaussianData
from npdiff.data import toy2d
from npdiff.data.labelled import sample_class
from npdiff.gaussian import log_normal_diag
from npdiff.likelihood import mean_se, ode_log_likelihood, score_points, vlb
from npdiff.schedule import vp_linear

# the exact denoiser of N(0, diag(0.5, 2)): the flow's density is the data's, so the exact gap is 0
VAR = np.array([0.5, 2.0])
ORACLE = GaussianData(np.zeros(2), np.diag(VAR), vp_linear())


def points(n, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, 2)) * np.sqrt(VAR)
    return x, log_normal_diag(x, 0.0, np.log(VAR))


# -- mean_se --------------------------------------------------------------------------------------


def test_mean_se_is_the_mean_and_its_standard_error():
    values = [0.3, -1.2, 2.5, 0.7, 0.1]
    est = mean_se(np.array(values))
    assert est.mean == pytest.approx(statistics.fmean(values), rel=1e-14)
    assert est.se == pytest.approx(statistics.stdev(values) / len(values) ** 0.5, rel=1e-14)
    assert est.n == 5 and est.z() == pytest.approx(est.mean / est.se)


def test_mean_se_of_one_value_has_no_standard_error():
    est = mean_se(np.array([0.25]))
    assert est.mean == 0.25 and est.se is None and est.z() is None


@pytest.mark.parametrize("bad, error", [(np.zeros((2, 2)), ValueError), (np.zeros(0), ValueError),
                                        (np.array([1.0, np.nan]), ValueError), ("abc", TypeError)])
def test_mean_se_refuses_what_is_not_per_point_values(bad, error):
    with pytest.raises(error, match="gap"):
        mean_se(bad, "gap")


# -- score_points -----------------------------------------------------------------------------------


def test_the_exact_denoiser_has_no_exact_gap():
    x, log_p = points(16)
    scores = score_points(ORACLE, x, log_p, rtol=1e-8, atol=1e-8)
    assert scores.vlb is None and scores.vlb_gap is None and scores.vlb_minus_exact is None
    assert abs(scores.gap.mean) < 1e-4 and scores.gap.n == 16
    r = scores.summary()
    assert set(r) == {"n", "nll_true_nats", "nll_nats", "gap_nats", "gap_se", "ode_nfe"}
    assert r["gap_nats"] == pytest.approx(r["nll_nats"] - r["nll_true_nats"], abs=1e-12)


def test_both_methods_are_the_two_estimators_on_the_same_points_and_noise():
    x, log_p = points(12, seed=1)
    scores = score_points(ORACLE, x, log_p, method="both", rng=np.random.default_rng(5), T=20, rtol=1e-6, atol=1e-6)
    ode = ode_log_likelihood(ORACLE, x, rtol=1e-6, atol=1e-6)
    bound = vlb(ORACLE, x, 20, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(scores.ode.log_p, ode.log_p)
    np.testing.assert_array_equal(scores.vlb.total, bound.total)
    diff = bound.total + ode.log_p  # the bound minus the exact NLL, per point
    assert scores.vlb_minus_exact.mean == pytest.approx(statistics.fmean(diff), rel=1e-12)
    assert scores.vlb_minus_exact.se == pytest.approx(statistics.stdev(diff) / 12**0.5, rel=1e-12)
    r = scores.summary()
    assert r["vlb_nfe"] == 20 and r["vlb_minus_exact_nats"] == scores.vlb_minus_exact.mean
    assert r["vlb_gap_nats"] == pytest.approx(statistics.fmean(log_p + bound.total), rel=1e-12)


def test_the_bound_alone_runs_no_ode():
    x, log_p = points(4)
    scores = score_points(ORACLE, x, log_p, method="vlb", rng=3, T=5)
    assert scores.ode is None and scores.gap is None and scores.vlb.nfe == 5


@pytest.mark.parametrize("kw, error, word", [
    ({"method": "exact"}, ValueError, "method"),
    ({"log_p_true": np.zeros(3)}, ValueError, "log_p_true"),
    ({"method": "both"}, TypeError, "rng"),  # no rng: refused before the ODE's work
    ({"method": "vlb", "rng": 0, "T": 1}, ValueError, "T"),
    ({"rtol": 0.0}, ValueError, "rtol"),
])
def test_score_points_refuses_bad_input_by_name(kw, error, word):
    x, log_p = points(4)
    args = {"log_p_true": log_p, **kw}
    with pytest.raises(error, match=word):
        score_points(ORACLE, x, **args)


# -- sample_class -------------------------------------------------------------------------------------


def test_points_of_one_class_are_the_labelled_draws_of_that_class_in_order():
    data = toy2d.load("8gaussians")
    x = sample_class(data, 3, 100, np.random.default_rng(7))
    # the same draws by hand: labelled batches of max(n, 64) * C points, keeping class 3
    rng = np.random.default_rng(7)
    kept = np.empty((0, 2))
    while kept.shape[0] < 100:
        xs, ys = data.sample_labelled(800, rng)
        kept = np.concatenate([kept, xs[ys == 3]])
    np.testing.assert_array_equal(x, kept[:100])
    # and they are of class 3: their class posterior p(y = 3 | x) is near one (the components overlap a little)
    posterior = np.exp(data.log_prob(x, 3) - data.log_prob(x)) / 8
    assert np.median(posterior) > 0.99 and posterior.mean() > 0.95


@pytest.mark.parametrize("data, label, n, error, word", [
    (toy2d.load("swissroll"), 0, 5, TypeError, "labelled"),
    (toy2d.load("moons"), 2, 5, ValueError, "label"),
    (toy2d.load("moons"), -1, 5, ValueError, "label"),
    (toy2d.load("moons"), True, 5, TypeError, "label"),
    (toy2d.load("moons"), 0.5, 5, TypeError, "label"),
    (toy2d.load("moons"), np.array([0, 1]), 5, TypeError, "label"),
    (toy2d.load("moons"), None, 5, TypeError, "label"),
    (toy2d.load("moons"), 1, 0, ValueError, "n"),
])
def test_sample_class_refuses_bad_input_by_name(data, label, n, error, word):
    with pytest.raises(error, match=word):
        sample_class(data, label, n, np.random.default_rng(0))


def test_a_class_that_never_comes_is_an_error_not_a_hang(monkeypatch):
    class OneClass:
        num_classes = 2

        def sample_labelled(self, n, rng):
            return rng.standard_normal((n, 2)), np.zeros(n, dtype=np.int64)

    monkeypatch.setattr("npdiff.data.labelled.MAX_ROUNDS", 3)
    with pytest.raises(ValueError, match="class 1 came 0 times in 3 rounds"):
        sample_class(OneClass(), 1, 4, np.random.default_rng(0))


# -- seeds --------------------------------------------------------------------------------------------


def test_the_seed_offsets_keep_their_values():
    # the demo's and the commands' figures read these streams: a changed value changes the figures
    assert (seeds.DEMO_NLL, seeds.DEMO_SAMPLES, seeds.DEMO_PLOT_DATA, seeds.PLOT_DATA) == (1, 2, 3, 1)
    assert (seeds.MOMENT_DATA, seeds.MOMENT_NOISE) == (1_000_003, 1_000_033)
