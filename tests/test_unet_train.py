"""Training, checkpoints and the command line with the U-Net: the trainer's one seam, float32, labels, arch."""

import copy
import json

import numpy as np
import pytest

from npdiff import checkpoint
from npdiff.cli import main
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.nn.unet import UNetConfig, network
from npdiff.nn.unet.model import DiffusionUNet
from npdiff.objective import TimeSampler, noisy_batch
from npdiff.schedule import cosine, vp_linear
from npdiff.train import TrainConfig, Trainer, train

# 4x4 images, two levels (4x4 and 2x2, attention at 2x2): 31,105 weights, a step in milliseconds
TINY = UNetConfig(image_size=4, widths=(8, 16), num_res_blocks=1, attention_resolutions=(2,), heads=2, groups=4,
                  emb_dim=8, time_dim=16)


def _images(n, rng):
    # smooth 4x4 "images": a random gradient across the picture plus a little noise, in [-1, 1]
    i, j = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    a, b = rng.uniform(-1, 1, (2, n, 1, 1))
    return np.clip(0.3 * (a * (i - 1.5) + b * (j - 1.5)) + 0.05 * rng.standard_normal((n, 4, 4)), -1, 1).reshape(n, 16)


def _trainer(cfg=TINY, seed=0, steps=40, data=None, **kw):
    rng = np.random.default_rng(seed)
    model = DiffusionUNet(cfg, cosine(), rng=rng)
    tc = TrainConfig(steps=steps, batch_size=16, lr=3e-3, **kw)
    return Trainer(model, _images(256, np.random.default_rng(9)) if data is None else data, tc, rng)


def test_one_step_runs_the_unets_own_loss_and_gradient_in_float32():
    # replay the step's draws (data, t, eps from the same generator) and compare with the float64 reference
    tr = _trainer(cfg=UNetConfig(**{**TINY.to_dict(), "parameterization": "v"}), seed=3)
    tr.run(until=3, progress=False)  # move away from the zero-initialized output layers
    before, replay = tr.params.copy(), copy.deepcopy(tr.rng)
    loss = tr.train_step()
    assert tr.params.dtype == np.float32 and tr.grad.dtype == np.float32
    B = tr.config.batch_size
    data = _images(256, np.random.default_rng(9))
    x0 = data[replay.integers(0, data.shape[0], B)]
    t = TimeSampler(tr.schedule, tr.config.t_min, tr.config.log_snr_fraction)(replay, B)
    eps = replay.standard_normal((B, 16))
    xt, target, weight = noisy_batch(x0, t, eps, tr.schedule, "v", tr.loss_kind)
    ref_loss, ref_grad = network.loss_and_grad(tr.model_config, before.astype(np.float64), xt, t, target, weight)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    scale = np.abs(ref_grad).max()
    assert np.abs(tr.grad - ref_grad).max() < 1e-4 * scale, "the trainer's gradient is not the U-Net's"
    assert not np.array_equal(tr.params, before)  # and the optimizer moved the weights


def test_a_tiny_unet_learns_and_comes_back_as_a_denoiser():
    model, hist = train(TINY, _images(256, np.random.default_rng(9)), rng=0, steps=100, batch_size=16, lr=3e-3,
                        progress=False)
    assert isinstance(model, DiffusionUNet) and model.config == TINY and model.dtype == np.float64
    assert np.all(np.isfinite(hist["loss"]))
    first, last = hist["loss"][:15].mean(), hist["loss"][-30:].mean()
    assert last < 0.4 * first, f"the loss did not fall: {first:.3f} -> {last:.3f}"
    x = _images(8, np.random.default_rng(1))
    assert model.eps(x, 0.5).shape == (8, 16)


def test_a_conditional_unet_trains_its_label_table_with_label_dropout():
    cfg = UNetConfig(**{**TINY.to_dict(), "num_classes": 3})
    rng = np.random.default_rng(2)
    X = _images(90, rng)
    Y = np.arange(90) % 3
    tr = _trainer(cfg=cfg, data=(X, Y), p_uncond=0.5)
    table_before = cfg.views(tr.params)["labels"].copy()
    tr.run(until=10, progress=False)
    table = cfg.views(tr.params)["labels"]
    assert np.all(np.abs(table - table_before).max(axis=1) > 0), "every row, 'no label' included, must have learned"
    with pytest.raises(TypeError, match="labels"):
        _trainer(cfg=cfg, data=X)


def test_unet_checkpoint_round_trip_and_exact_resume(tmp_path):
    straight = _trainer(seed=4, steps=12)
    straight.run(progress=False)
    first = _trainer(seed=4, steps=12)
    first.run(until=6, progress=False)
    first.save(tmp_path / "half.npz")
    ck = checkpoint.load(tmp_path / "half.npz")
    assert ck.arch == "unet" and isinstance(ck.model, DiffusionUNet) and ck.raw_model.config == TINY
    np.testing.assert_array_equal(ck.raw_model.params, first.params)
    config = json.loads(str(np.load(tmp_path / "half.npz")["config"]))
    assert config["arch"] == "unet" and config["model"] == TINY.to_dict()
    resumed = Trainer.load(tmp_path / "half.npz", _images(256, np.random.default_rng(9)))
    resumed.run(progress=False)
    np.testing.assert_array_equal(resumed.params, straight.params)
    np.testing.assert_array_equal(resumed.optimizer.ema, straight.optimizer.ema)
    x = _images(4, np.random.default_rng(3))
    np.testing.assert_array_equal(checkpoint.load(tmp_path / "half.npz").denoiser().eps(x, 0.3),
                                  first.denoiser().eps(x, 0.3))


def test_a_checkpoint_of_another_architecture_is_refused_by_name(tmp_path):
    checkpoint.save(tmp_path / "unet.npz", DiffusionUNet(TINY, vp_linear(), rng=0))
    checkpoint.save(tmp_path / "mlp.npz", DiffusionMLP(MLPConfig(width=8, depth=1, emb_dim=8), vp_linear(), rng=0))
    with pytest.raises(ValueError, match=r"arch = 'unet'.*'mlp' is expected"):
        checkpoint.load(tmp_path / "unet.npz", arch="mlp")
    with pytest.raises(ValueError, match=r"arch = 'mlp'.*'unet' is expected"):
        checkpoint.load(tmp_path / "mlp.npz", arch="unet")
    with pytest.raises(ValueError, match="arch must be one of"):
        checkpoint.load(tmp_path / "mlp.npz", arch="transformer")
    assert checkpoint.load(tmp_path / "unet.npz", arch="unet").arch == "unet"


def _rewrite_config(src, dst, change):
    arrays = dict(np.load(src))
    config = json.loads(str(arrays["config"]))
    change(config)
    arrays["config"] = np.array(json.dumps(config))
    np.savez(dst, **arrays)
    return dst


def test_a_file_without_arch_is_an_mlp_and_an_unknown_arch_is_named(tmp_path):
    mlp = DiffusionMLP(MLPConfig(width=8, depth=1, emb_dim=8), vp_linear(), rng=0)
    checkpoint.save(tmp_path / "mlp.npz", mlp)
    old = _rewrite_config(tmp_path / "mlp.npz", tmp_path / "old.npz", lambda c: c.pop("arch"))
    ck = checkpoint.load(old, arch="mlp")
    assert isinstance(ck.model, DiffusionMLP) and ck.arch == "mlp"
    np.testing.assert_array_equal(ck.model.params, mlp.params)
    bad = _rewrite_config(tmp_path / "mlp.npz", tmp_path / "bad.npz", lambda c: c.update(arch="vit"))
    with pytest.raises(ValueError, match=r"unknown architecture arch = 'vit'"):
        checkpoint.load(bad)
    # a U-Net's config under an MLP's arch (or none) is refused as not describing a model, never built
    checkpoint.save(tmp_path / "unet.npz", DiffusionUNet(TINY, vp_linear(), rng=0))
    unlabelled = _rewrite_config(tmp_path / "unet.npz", tmp_path / "unl.npz", lambda c: c.pop("arch"))
    with pytest.raises(ValueError, match="does not describe a model"):
        checkpoint.load(unlabelled)


def test_cli_refuses_the_other_networks_flags(capsys, tmp_path):
    for flags, words in ((["--data", "digits", "--arch", "unet", "--width", "64", "--coords", "raw"],
                          ("--width, --coords", "MLP only")),
                         (["--data", "moons", "--base-width", "16"], ("--base-width", "U-Net")),
                         (["--data", "moons", "--arch", "unet"], ("image data set", "'moons'")),
                         (["--data", "digits", "--arch", "unet", "--base-width", "12"], ("groups = 8", "12"))):
        assert main(["train", *flags, "--steps", "2", "--out", str(tmp_path / "m")]) != 0
        err = capsys.readouterr().err
        assert all(w in err for w in words), err
    assert not (tmp_path / "m" / "model.npz").exists()


def test_cli_trains_a_unet_that_sample_and_nll_load(capsys, tmp_path):
    out = tmp_path / "u"
    assert main(["train", "--data", "digits", "--arch", "unet", "--base-width", "8", "--steps", "2", "--batch-size", "4",
                 "--out", str(out)]) == 0
    ck = checkpoint.load(out / "model.npz")
    assert ck.arch == "unet" and ck.model.config.widths == (8, 16, 16) and ck.model.config.parameterization == "v"
    capsys.readouterr()
    assert main(["sample", "--model", str(out), "--sampler", "ddim", "--steps", "3", "--n", "2",
                 "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (2, 64)
    assert main(["nll", "--model", str(out), "--data", "digits", "--n", "2", "--method", "vlb", "--T", "3",
                 "--json"]) == 0
    assert "bpd" in capsys.readouterr().out


@pytest.mark.parametrize("change, words", [
    ({"widths": [8, 10**9]}, ("widths", "exceeds")),
    ({"num_res_blocks": 5000}, ("num_res_blocks = 5000", "stored weights")),
    ({"groups": 3}, ("groups",)),
    ({"width": 16}, ("width",)),
])
def test_a_forged_unet_config_is_refused_before_it_is_built(tmp_path, change, words):
    checkpoint.save(tmp_path / "unet.npz", DiffusionUNet(TINY, vp_linear(), rng=0))
    bad = _rewrite_config(tmp_path / "unet.npz", tmp_path / "bad.npz", lambda c: c["model"].update(change))
    with pytest.raises(ValueError) as info:
        checkpoint.load(bad)
    assert all(w in str(info.value) for w in words), str(info.value)
