"""Training: loss weightings that make eps/x0/v objectives equal, a short 8gaussians run, reproducibility."""

import numpy as np
import pytest

from npdiff import parameterization
from npdiff.analytic import GaussianMixture
from npdiff.forward import q_sample
from npdiff.nn import MLPConfig, mlp
from npdiff.nn.model import DiffusionMLP
from npdiff.objective import denoising_targets, loss_weight, noisy_batch
from npdiff.schedule import cosine, vp_linear
from npdiff.train import TrainConfig, Trainer, train

# 8gaussians (FFJORD): centres 4 (cos, sin)(k 45 deg) / 1.414, std 0.5 / 1.414
CENTRES = 4.0 * np.array([(np.cos(k * np.pi / 4), np.sin(k * np.pi / 4)) for k in range(8)]) / 1.414
STD = 0.5 / 1.414


def eight_gaussians(n, rng):
    return CENTRES[rng.integers(0, 8, n)] + STD * rng.standard_normal((n, 2))


SMALL = dict(width=64, depth=2, emb_dim=32)


@pytest.mark.parametrize("param", ["eps", "x0", "v"])
@pytest.mark.parametrize("loss", ["eps", "x0", "v"])
def test_loss_weight_turns_the_error_of_one_prediction_into_the_error_of_another(param, loss):
    # w(t) ||pred - y_param||^2 = ||convert(pred, param -> loss) - y_loss||^2 for any prediction, x_t fixed
    rng = np.random.default_rng(30)
    sched = cosine()
    x0, eps = rng.standard_normal((50, 3)), rng.standard_normal((50, 3))
    t = rng.uniform(0.01, 0.99, 50)
    xt, target, weight = denoising_targets(x0, t, eps, sched, param, loss)
    ab = sched.alpha_bar(t)[:, None]
    truth = {"eps": eps, "x0": x0, "v": parameterization.from_eps(eps, "v", xt, ab)}
    np.testing.assert_allclose(target, truth[param], rtol=1e-12, atol=1e-12)
    pred = truth[param] + rng.standard_normal(x0.shape)  # an imperfect prediction
    lhs = weight * np.sum((pred - truth[param]) ** 2, axis=1)
    rhs = np.sum((parameterization.convert(pred, param, loss, xt, ab) - truth[loss]) ** 2, axis=1)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, err_msg=f"prediction {param}, loss measured in {loss}")
    np.testing.assert_allclose(loss_weight(sched.log_snr(t), param, loss), weight, rtol=1e-12)
    # the trainer's unchecked hot path computes the same batch as q_sample and the checked version
    hot = noisy_batch(x0, t, eps, sched, param, loss)
    for name, mine, ref in zip(("x_t", "target", "weight"), hot, (q_sample(x0, t, eps, sched), target, weight)):
        np.testing.assert_allclose(mine, ref, rtol=1e-14, atol=1e-15, err_msg=f"hot path {name}")


def test_short_run_on_8gaussians_gets_close_to_the_bayes_optimal_loss():
    # The best any denoiser can do is the exact E[eps | x_t] of the mixture (analytic oracle): its eps-MSE on
    # held-out (x0, t, eps) is the floor; predicting 0 scores 1. A short run must close most of that gap.
    sched = vp_linear()
    model, hist = train(MLPConfig(**SMALL), eight_gaussians, rng=0, schedule=sched, steps=800, batch_size=256,
                        lr=2e-3, progress=False)
    rng = np.random.default_rng(99)
    x0 = eight_gaussians(20_000, rng)
    t = rng.uniform(1e-5, 1.0, 20_000)
    eps = rng.standard_normal(x0.shape)
    xt = q_sample(x0, t, eps, sched)
    oracle = GaussianMixture(np.full(8, 1 / 8), CENTRES, STD**2, sched)
    floor = np.mean((oracle.eps(xt, t) - eps) ** 2)
    trained = np.mean((model.eps(xt, t) - eps) ** 2)
    start = hist["loss"][:10].mean()
    assert start > 0.8, f"an untrained network should score near 1, got {start}"
    assert trained < floor + 0.03, f"held-out eps-MSE {trained:.4f} vs Bayes floor {floor:.4f} (start {start:.3f})"
    assert hist["loss"][-100:].mean() < floor + 0.06, f"training loss {hist['loss'][-100:].mean():.4f}, floor {floor:.4f}"


def test_same_seed_same_run_and_fixed_array_data():
    # every random draw comes from the one generator: two runs with seed 5 are bit-identical
    data = eight_gaussians(500, np.random.default_rng(1))
    cfg = MLPConfig(width=16, depth=1, emb_dim=8, parameterization="v")
    runs = [train(cfg, data, rng=5, steps=30, batch_size=32, progress=False) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][0].params, runs[1][0].params)
    np.testing.assert_array_equal(runs[0][1]["loss"], runs[1][1]["loss"])
    other = train(cfg, data, rng=6, steps=30, batch_size=32, progress=False)
    assert not np.array_equal(other[0].params, runs[0][0].params)
    assert set(runs[0][1]) == {"loss", "grad_norm", "lr"} and runs[0][1]["loss"].shape == (30,)


def test_sampler_object_progress_bar_and_errors(capsys):
    class Data:
        def sample(self, n, rng):
            return eight_gaussians(n, rng)

    cfg = MLPConfig(width=8, depth=1, emb_dim=4)
    model, hist = train(cfg, Data(), rng=np.random.default_rng(2), steps=60, batch_size=16, progress=True)
    assert isinstance(model, DiffusionMLP) and np.all(np.isfinite(hist["loss"]))
    assert "train" in capsys.readouterr().err  # tqdm writes to stderr
    with pytest.raises(ValueError, match="data must have 2 columns"):
        train(cfg, np.zeros((10, 3)), rng=0, steps=2, batch_size=4)
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(loss="score")
    with pytest.raises(ValueError, match="t_min"):
        TrainConfig(t_min=1.0)
    with pytest.raises(TypeError, match="rng"):
        Trainer(model, Data(), TrainConfig(), rng=None)


def test_history_grows_with_the_steps_done_not_the_steps_planned():
    # the per-step arrays start small (1024) and double, so a huge planned run costs no memory up front
    rng = np.random.default_rng(3)
    model = DiffusionMLP(MLPConfig(width=4, depth=0, emb_dim=4), vp_linear(), rng=rng)
    tr = Trainer(model, eight_gaussians, TrainConfig(steps=10**9, batch_size=2), rng)
    assert tr._history["loss"].nbytes <= 1024 * 8
    tr.run(until=1100, progress=False)
    h = tr.history
    assert h["loss"].shape == (1100,) and np.all(np.isfinite(h["loss"])) and np.all(h["lr"] == 1e-3)


# -- one step, replayed -------------------------------------------------------------------------
def _replay_batch(gen, data, B, t_min, t_max):
    # the trainer's fixed draw order per step: data, t, eps
    x0 = data[gen.integers(0, data.shape[0], B)]
    t = gen.uniform(t_min, t_max, B)
    eps = gen.standard_normal((B, data.shape[1]))
    return x0, t, eps


def test_a_training_step_is_the_reference_loss_and_gradient_of_the_replayed_batch():
    # the trainer's fast-path step against the reference MLP on the same batch, drawn again from the same seed,
    # and the AdamW update it then applies (the first Adam step moves each weight by lr * sign(g), clipping aside)
    data = eight_gaussians(300, np.random.default_rng(4))
    sched = vp_linear()
    cfg = MLPConfig(width=16, depth=2, emb_dim=8, parameterization="v", coords="raw+sinusoidal")
    model = DiffusionMLP(cfg, sched, rng=np.random.default_rng(5))
    params = model.params.astype(np.float32)
    trainer = Trainer(model, data, TrainConfig(steps=3, batch_size=32, clip_norm=0.0, lr=1e-3), np.random.default_rng(6))
    loss = trainer.train_step()
    gen = np.random.default_rng(6)
    x0, t, eps = _replay_batch(gen, data, 32, 1e-5, sched.t_max)
    xt, target, weight = denoising_targets(x0, t, eps, sched, "v", "v")
    ref_loss, ref_grad = mlp.loss_and_grad(cfg, params, xt, t, target, weight)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, err_msg="trainer step vs replayed batch")
    assert trainer.rng.bit_generator.state == gen.bit_generator.state, "the step drew something else"
    moved = np.abs(ref_grad) > 1e-3 * np.abs(ref_grad).max()  # clear signs: float32 cannot flip them
    np.testing.assert_allclose((params - trainer.params)[moved], 1e-3 * np.sign(ref_grad[moved]), rtol=1e-3)


def straight_and_resumed(cfg, tcfg, data, *, seed, until, path):
    r"""Two runs from default_rng(seed): all steps straight, and ``until`` steps, save, load, the rest."""

    def fresh():
        rng = np.random.default_rng(seed)
        return Trainer(DiffusionMLP(cfg, vp_linear(), rng=rng), data, tcfg, rng)

    straight = fresh()
    straight.run(progress=False)
    half = fresh()
    half.run(until=until, progress=False)
    half.save(path)
    resumed = Trainer.load(path, data)
    resumed.run(progress=False)
    return straight, resumed


def test_a_run_saved_and_resumed_equals_the_straight_run(tmp_path):
    # 12 steps straight == 6 steps, save, load, 6 steps: weights, optimizer and generator all restored
    data = eight_gaussians(300, np.random.default_rng(7))
    cfg = MLPConfig(width=16, depth=2, emb_dim=8, coords="raw+sinusoidal")
    tc = TrainConfig(steps=12, batch_size=16, lr_schedule="cosine")

    straight, resumed = straight_and_resumed(cfg, tc, data, seed=8, until=6, path=tmp_path / "half.npz")
    assert resumed.model_config == cfg
    np.testing.assert_array_equal(resumed.params, straight.params, err_msg="resumed run differs")
    np.testing.assert_array_equal(resumed.history["loss"], straight.history["loss"])
    from npdiff.checkpoint import load

    assert load(tmp_path / "half.npz").model.config == cfg
