"""t drawn by the loss's second moment, importance-weighted (the likelihood lever that was kept)."""

import numpy as np
import pytest

from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.objective import LossSecondMomentTimes, TimeSampler
from npdiff.schedule import vp_linear
from npdiff.train import TrainConfig, Trainer


# -- the base density's inverse CDF ------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_quantile_inverts_the_mixture_cdf(fraction):
    # F(t) = (1 - f)(t - t_min)/(t_max - t_min) + f (lambda(t_min) - lambda(t)) / (lambda(t_min) - lambda(t_max))
    s = vp_linear()
    ts = TimeSampler(s, 1e-5, fraction)
    u = np.linspace(0.0, 1.0, 201)
    t = ts.quantile(u)
    lam_hi, lam_lo = s.log_snr(1e-5), s.log_snr(1.0)
    F = (1 - fraction) * (t - 1e-5) / (1 - 1e-5) + fraction * (lam_hi - s.log_snr(t)) / (lam_hi - lam_lo)
    np.testing.assert_allclose(F, u, atol=2e-5, err_msg=f"fraction={fraction}")


def test_quantile_of_uniform_levels_draws_the_base_density():
    # the share of the base sampler's draws below quantile(u) is u
    ts = TimeSampler(vp_linear(), 1e-5, 0.5)
    draws = ts(np.random.default_rng(0), 200_000)
    u = np.array([0.05, 0.2, 0.5, 0.8, 0.95])
    np.testing.assert_allclose(np.mean(draws[:, None] <= ts.quantile(u)[None, :], axis=0), u, atol=4e-3)


# -- the second-moment resampler -------------------------------------------------------------------
def _loss(t):
    return 0.2 + 5.0 * np.exp(-t / 0.02)  # a fixed synthetic loss, large at small t as the eps-loss is


def _filled(bins=16, fraction=0.5, seed=0):
    r = LossSecondMomentTimes(TimeSampler(vp_linear(), 1e-5, fraction), bins)
    rng = np.random.default_rng(seed)
    while not r.full:
        t, k, w = r(rng, 256)
        np.testing.assert_array_equal(w, 1.0)  # uniform (weights 1) until every history is full
        r.update(k, _loss(t))
    return r, rng


def test_resampler_is_uniform_until_full_then_follows_the_root_second_moment():
    r, _ = _filled()
    q = r.probabilities()
    root = np.sqrt(np.mean(r.losses**2, axis=1))
    np.testing.assert_allclose(q, 0.999 * root / root.sum() + 0.001 / r.bins, rtol=1e-12)
    assert q[0] > 3 * q[-1], q  # the small-t bins, where the loss is large, are drawn more


@pytest.mark.parametrize("fraction", [0.0, 0.5])
def test_importance_weighted_mean_equals_the_base_mean(fraction):
    # E_q[L(t) / (K q_k)] = E_{p0}[L(t)]: the objective's expectation is unchanged; and its variance is smaller
    r, rng = _filled(fraction=fraction)
    t, _, w = r(rng, 400_000)
    weighted = w * _loss(t)
    u = (np.arange(400_000) + 0.5) / 400_000
    exact = np.mean(_loss(r.base.quantile(u)))  # the base mean by the midpoint rule in u
    se = weighted.std() / np.sqrt(weighted.size)
    assert abs(weighted.mean() - exact) < 4 * se, (weighted.mean(), exact, se)
    assert weighted.var() < 0.5 * np.var(_loss(r.base.quantile(u))), "q proportional to sqrt(E L^2) should cut the variance"


def test_history_keeps_the_newest_losses_per_bin():
    r = LossSecondMomentTimes(TimeSampler(vp_linear(), 1e-5, 0.0), 2, history=3)
    r.update(np.array([0, 0, 0, 0, 1]), np.array([1.0, 2.0, 3.0, 4.0, 7.0]))
    assert sorted(r.losses[0]) == [2.0, 3.0, 4.0] and r.count.tolist() == [4, 1]
    r.update(np.array([0]), np.array([5.0]))
    assert sorted(r.losses[0]) == [3.0, 4.0, 5.0]
    with pytest.raises(ValueError, match=r"bins must lie in 0\.\.1"):
        r.update(np.array([2]), np.array([1.0]))
    with pytest.raises(ValueError, match="bins"):
        LossSecondMomentTimes(r.base, 1)


def _tiny_trainer(schedule, **train):
    cfg = MLPConfig(dim=2, width=16, depth=1, emb_dim=8, parameterization="v")
    model = DiffusionMLP(cfg, schedule, rng=0)
    data = np.random.default_rng(1).standard_normal((64, 2))
    return Trainer(model, data, TrainConfig(steps=20, batch_size=32, loss="eps", log_snr_fraction=0.5, **train), rng=0)


def test_trainer_draws_by_the_second_moment_and_fills_the_history():
    tr = _tiny_trainer(vp_linear(), loss_second_moment_bins=4)
    tr.run(progress=False)
    assert tr.resampler.full and np.all(np.isfinite(tr.resampler.losses))
    assert np.all(np.isfinite(tr.history["loss"]))
    with pytest.raises(ValueError, match="loss_second_moment_bins"):
        TrainConfig(loss_second_moment_bins=1)


def test_second_moment_run_resumes_exactly_from_a_checkpoint(tmp_path):
    # the loss histories travel in the checkpoint: 10 + 10 steps give the weights of 20 straight ones
    straight = _tiny_trainer(vp_linear(), loss_second_moment_bins=4)
    straight.run(progress=False)
    half = _tiny_trainer(vp_linear(), loss_second_moment_bins=4)
    half.run(until=10, progress=False)
    half.save(tmp_path / "ck.npz")
    resumed = Trainer.load(tmp_path / "ck.npz", np.random.default_rng(1).standard_normal((64, 2)))
    np.testing.assert_array_equal(resumed.resampler.losses, half.resampler.losses)
    resumed.run(progress=False)
    np.testing.assert_array_equal(resumed.params, straight.params)
    np.testing.assert_array_equal(resumed.resampler.losses, straight.resampler.losses)


@pytest.mark.parametrize("network", ["mlp", "unet"])
def test_per_example_losses_of_a_step_average_to_its_loss(network):
    # while q is uniform (weights 1), the losses pushed into the histories are the terms of the step's mean loss
    if network == "mlp":
        tr = _tiny_trainer(vp_linear(), loss_second_moment_bins=64)
    else:
        from npdiff.nn.unet.config import UNetConfig
        from npdiff.nn.unet.model import DiffusionUNet

        cfg = UNetConfig(image_size=4, widths=(8, 16), num_res_blocks=1, attention_resolutions=(2,), heads=2, groups=4,
                         emb_dim=8, time_dim=16, parameterization="v")
        data = np.random.default_rng(9).uniform(-1, 1, (64, 16))
        tr = Trainer(DiffusionUNet(cfg, vp_linear(), rng=0), data, TrainConfig(steps=5, batch_size=16, loss="eps",
                                                                                loss_second_moment_bins=64), rng=0)
    seen = []
    update = tr.resampler.update
    tr.resampler.update = lambda bins, losses: (seen.append(losses), update(bins, losses))
    loss = tr.train_step()
    assert not tr.resampler.full
    np.testing.assert_allclose(np.mean(seen[0]), loss, rtol=1e-5)


def test_the_prompt_and_context_networks_refuse_the_second_moment_draw():
    # their training steps return the loss alone, so the draw would have no per-example losses to learn from
    from npdiff.nn import prompt_mlp as pm
    from npdiff.nn.context_mlp import ContextMLP, ContextMLPConfig

    cfg = pm.PromptMLPConfig(dim=6, width=8, depth=2, emb_dim=4)
    with pytest.raises(ValueError, match=r"loss_second_moment_bins needs per-example losses.*PromptMLP.*got 4"):
        Trainer(pm.PromptMLP(cfg, vp_linear(), rng=0), lambda n, rng: None, TrainConfig(loss_second_moment_bins=4), rng=0)
    ctx = ContextMLP(ContextMLPConfig(dim=2, context_dim=4, width=8, depth=2, emb_dim=4), vp_linear(), rng=0)
    with pytest.raises(ValueError, match=r"loss_second_moment_bins needs per-example losses.*ContextMLP.*got 64"):
        Trainer(ctx, lambda n, rng: None, TrainConfig(loss_second_moment_bins=64), rng=0)
