"""Training times with uniform log-SNR (likelihood weighting's importance sampling) and the default's bit-identity."""

import numpy as np
import pytest
from scipy import stats

from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.objective import log_snr_times
from npdiff.schedule import VPLinear, cosine, log_snr_linear, vp_linear
from npdiff.train import TrainConfig, Trainer

from .test_train import straight_and_resumed


@pytest.mark.parametrize("sched", [vp_linear(), cosine(), vp_linear(0.5, 10.0)], ids=repr)
@pytest.mark.parametrize("t_min", [1e-5, 1e-3])
def test_log_snr_of_the_drawn_times_is_uniform(sched, t_min):
    # lambda(t) of the drawn t must be U(lambda(t_max), lambda(t_min)): a KS test on 20,000 draws, with lambda
    # evaluated by the schedule itself (not the sampler's table)
    t = log_snr_times(20_000, np.random.default_rng(0), sched, t_min=t_min)
    assert t.min() >= t_min and t.max() <= sched.t_max, f"{sched!r}: t outside [{t_min}, {sched.t_max}]"
    lam = sched.log_snr(t)
    lo, hi = float(sched.log_snr(sched.t_max)), float(sched.log_snr(t_min))
    p = stats.kstest((lam - lo) / (hi - lo), "uniform").pvalue
    assert p > 1e-3, f"{sched!r}, t_min={t_min}: lambda(t) not uniform on [{lo:.3f}, {hi:.3f}] (KS p = {p:.2g})"


def test_density_of_t_is_beta_over_sigma_squared():
    # the same law seen in t: the fraction of draws in [a, b] equals the integral of beta / sigma^2 / Z there,
    # the integral computed by quadrature of the schedule's beta and sigma (independent of lambda)
    from scipy.integrate import quad

    sched, t_min = vp_linear(), 1e-4
    t = log_snr_times(100_000, np.random.default_rng(1), sched, t_min=t_min)

    def density(s):
        return float(sched.beta(s) / sched.sigma(s) ** 2)

    z = quad(density, t_min, 1.0, points=[1e-3, 1e-2, 0.1], limit=200)[0]
    for a, b in [(t_min, 1e-3), (1e-3, 1e-2), (1e-2, 0.1), (0.1, 0.5), (0.5, 1.0)]:
        expected = quad(density, a, b, limit=200)[0] / z
        seen = np.mean((t >= a) & (t < b))
        se = np.sqrt(expected * (1 - expected) / t.size)
        assert abs(seen - expected) < 5 * se, f"P({a} <= t < {b}): drawn {seen:.4f}, beta/sigma^2 gives {expected:.4f}"


def test_mixture_is_log_snr_first_then_uniform():
    # fraction f: the first round(f n) draws have uniform log-SNR, the others uniform t
    sched, n = vp_linear(), 40_000
    t = log_snr_times(n, np.random.default_rng(2), sched, log_snr_fraction=0.25)
    k = round(0.25 * n)
    lo, hi = float(sched.log_snr(1.0)), float(sched.log_snr(1e-5))
    assert stats.kstest((sched.log_snr(t[:k]) - lo) / (hi - lo), "uniform").pvalue > 1e-3, "first quarter"
    assert stats.kstest((t[k:] - 1e-5) / (1.0 - 1e-5), "uniform").pvalue > 1e-3, "last three quarters"
    # a linear log-SNR schedule: both halves are the same law, uniform t
    t = log_snr_times(n, np.random.default_rng(3), log_snr_linear(), t_min=0.0, log_snr_fraction=1.0)
    assert stats.kstest(t, "uniform").pvalue > 1e-3, "log_snr_linear: uniform lambda is uniform t"


def test_inputs_are_checked():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="finite log-SNR"):
        log_snr_times(10, rng, vp_linear(), t_min=0.0)  # lambda(0) = +inf
    with pytest.raises(ValueError, match="log_snr_fraction"):
        log_snr_times(10, rng, vp_linear(), log_snr_fraction=1.5)
    with pytest.raises(TypeError, match="schedule"):
        log_snr_times(10, rng, "vp_linear")
    with pytest.raises(ValueError, match="log_snr_fraction"):
        TrainConfig(log_snr_fraction=-0.1)
    with pytest.raises(ValueError, match="finite log-SNR"):
        Trainer(DiffusionMLP(MLPConfig(width=8, depth=1, emb_dim=4), vp_linear(), rng=rng), lambda n, r: r.normal(size=(n, 2)),
                TrainConfig(t_min=0.0, log_snr_fraction=0.5), np.random.default_rng(0))


class _Recording(VPLinear):
    # vp_linear that remembers the times the trainer asks it about (the step's t go through log_alpha_bar)
    def __init__(self):
        super().__init__()
        self.seen = []

    def log_alpha_bar(self, t):
        self.seen.append(np.array(t, dtype=np.float64, copy=True))
        return super().log_alpha_bar(t)


def _first_step_times(fraction):
    sched, B = _Recording(), 16
    rng = np.random.default_rng(7)
    model = DiffusionMLP(MLPConfig(width=16, depth=1, emb_dim=8, parameterization="v"), sched, rng=rng)
    replay = np.random.default_rng(7)
    DiffusionMLP(MLPConfig(width=16, depth=1, emb_dim=8, parameterization="v"), vp_linear(), rng=replay)
    trainer = Trainer(model, lambda n, r: r.standard_normal((n, 2)), TrainConfig(steps=1, batch_size=B,
                      log_snr_fraction=fraction), rng)
    sched.seen.clear()
    trainer.train_step()
    replay.standard_normal((B, 2))  # the data draw comes first
    return sched.seen[-1], replay


def test_default_draws_t_exactly_as_before():
    # fraction 0 (the default) must take t = rng.uniform(t_min, t_max, B) right after the data, as training
    # always did, so default runs (and resumed checkpoints) are bit-identical to those before the option
    assert TrainConfig().log_snr_fraction == 0.0
    t, replay = _first_step_times(0.0)
    np.testing.assert_array_equal(t, replay.uniform(1e-5, 1.0, 16), err_msg="default t is not the plain uniform draw")


def test_fraction_one_trains_on_log_snr_uniform_times():
    # the trainer's own t with fraction 1: the same uniforms, mapped through lambda^-1 (checked via lambda)
    t, replay = _first_step_times(1.0)
    u = replay.uniform(0.0, 1.0, 16)
    sched = vp_linear()
    lo, hi = float(sched.log_snr(1.0)), float(sched.log_snr(1e-5))
    np.testing.assert_allclose(sched.log_snr(t), lo + u * (hi - lo), atol=1e-4, err_msg="lambda(t) != the uniform draw")


def test_log_snr_sampling_round_trips_through_a_checkpoint_and_resumes_exactly(tmp_path):
    # the fraction is part of the stored TrainConfig, and the inverse table is rebuilt identically on load
    data = np.random.default_rng(4).standard_normal((300, 2))
    cfg = MLPConfig(width=16, depth=1, emb_dim=8, parameterization="v")
    tcfg = TrainConfig(steps=8, batch_size=16, log_snr_fraction=0.5, loss="eps")

    straight, resumed = straight_and_resumed(cfg, tcfg, data, seed=9, until=4, path=tmp_path / "half.npz")
    assert resumed.config.log_snr_fraction == 0.5, resumed.config
    np.testing.assert_array_equal(resumed.params, straight.params, err_msg="resumed log-SNR run differs")
    np.testing.assert_array_equal(resumed.history["loss"], straight.history["loss"])
