"""`npdiff train` without --arch: the U-Net on image data, the MLP on points; an MLP flag on images without --arch
is one line naming it and `--arch mlp`; and every command that takes a digits model takes the default one.
In-process, tiny networks (the U-Net at base width 8), a couple of steps."""

import json

import numpy as np
import pytest

from npdiff import checkpoint
from npdiff.cli.train import MLP_ONLY, default_arch
from npdiff.data import toy2d
from npdiff.edit.mask import image_mask
from npdiff.nn.model import DiffusionMLP
from npdiff.nn.unet.model import DiffusionUNet

from .test_fuzz_cli import one_line_error, run_main

TINY_UNET = ["--base-width", "8", "--steps", "2", "--batch-size", "4"]
TINY_MLP = ["--width", "8", "--depth", "1", "--steps", "2", "--batch-size", "4"]


def _ok(argv):
    code, out, err = run_main(argv)
    assert code == 0, f"{argv}: exit status {code}, stderr {err!r}"
    return out


@pytest.fixture(scope="module")
def unet_run(tmp_path_factory):
    """A folder holding the model `npdiff train --data digits` writes with no --arch (tiny U-Net, 2 steps)."""
    pytest.importorskip("sklearn")  # the digits
    d = tmp_path_factory.mktemp("cli_default_arch")
    _ok(["train", "--data", "digits", *TINY_UNET, "--out", d / "run"])
    return d


def test_the_default_network_is_the_unet_on_images_and_the_mlp_on_points():
    pytest.importorskip("sklearn")
    from npdiff.data.images import digits

    assert default_arch(digits()) == "unet"
    assert all(default_arch(toy2d.load(name)) == "mlp" for name in toy2d.NAMES)
    for not_a_data_set in (None, "digits", np.zeros((4, 64))):
        with pytest.raises(TypeError, match="data must be a data set of npdiff"):
            default_arch(not_a_data_set)


def test_train_on_digits_without_arch_writes_a_unet(unet_run):
    ck = checkpoint.load(unet_run / "run" / "model.npz")
    assert ck.arch == "unet" and isinstance(ck.model, DiffusionUNet), (ck.arch, type(ck.model))
    assert ck.model.config.widths == (8, 16, 16) and ck.model.dim == 64 and ck.data_name == "digits"
    assert ck.step == 2 and ck.train_config["batch_size"] == 4


def test_the_default_unet_trains_with_likelihood_weighting(unet_run):
    # the eps-loss with t uniform in log-SNR: the recipe's choice for the U-Net (docs/measurements/likelihood_levers.md)
    ck = checkpoint.load(unet_run / "run" / "model.npz")
    assert (ck.train_config["loss"], ck.train_config["log_snr_fraction"]) == ("eps", 1.0), ck.train_config


def test_loss_and_log_snr_fraction_flags_reach_the_training_config(tmp_path):
    pytest.importorskip("sklearn")
    # the U-Net recipe's training before likelihood weighting, as the measurement pages' older runs were trained
    _ok(["train", "--data", "digits", *TINY_UNET, "--loss", "v", "--log-snr-fraction", "0", "--out", tmp_path / "u"])
    _ok(["train", "--data", "moons", *TINY_MLP, "--loss", "x0", "--log-snr-fraction", "0.25", "--out", tmp_path / "m"])
    for run, want in (("u", ("v", 0.0)), ("m", ("x0", 0.25))):
        cfg = checkpoint.load(tmp_path / run / "model.npz").train_config
        assert (cfg["loss"], cfg["log_snr_fraction"]) == want, (run, cfg)


def test_an_unknown_loss_is_one_line_naming_the_flag_and_the_choices():
    one_line_error(["train", "--data", "moons", "--loss", "score", "--out", "run"], "--loss", "score", "eps", "x0", "v")


def test_train_on_a_point_set_without_arch_still_writes_the_mlp(tmp_path):
    _ok(["train", "--data", "moons", *TINY_MLP, "--out", tmp_path / "run"])
    ck = checkpoint.load(tmp_path / "run" / "model.npz")
    assert ck.arch == "mlp" and isinstance(ck.model, DiffusionMLP)
    assert (ck.model.dim, ck.model.config.width, ck.model.config.depth) == (2, 8, 1)


def test_arch_mlp_on_digits_trains_the_mlp_with_its_flags(tmp_path):
    pytest.importorskip("sklearn")
    _ok(["train", "--data", "digits", "--arch", "mlp", *TINY_MLP, "--activation", "silu", "--out", tmp_path / "run"])
    ck = checkpoint.load(tmp_path / "run" / "model.npz")
    assert ck.arch == "mlp" and isinstance(ck.model, DiffusionMLP)
    assert (ck.model.dim, ck.model.config.width, ck.model.config.activation) == (64, 8, "silu")


@pytest.mark.parametrize("flag, value", [("--width", "64"), ("--depth", "2"), ("--activation", "silu"),
                                         ("--coords", "raw"), ("--coord-scale", "4")])
def test_an_mlp_flag_on_digits_without_arch_is_refused_naming_it_and_arch_mlp(tmp_path, flag, value):
    pytest.importorskip("sklearn")
    # never a silent switch of network: the user is told which flag and how to ask for the MLP
    one_line_error(["train", "--data", "digits", flag, value, "--steps", "2", "--out", tmp_path / "run"],
                   flag, "--arch mlp", "U-Net")
    assert not (tmp_path / "run").exists()


def test_the_refusal_covers_every_mlp_only_flag_and_names_them_all(tmp_path):
    pytest.importorskip("sklearn")
    flags = ["--" + f.replace("_", "-") for f in MLP_ONLY]
    values = {"--activation": "silu", "--coords": "raw"}
    argv = ["train", "--data", "digits", "--out", tmp_path / "run"]
    for f in flags:
        argv += [f, values.get(f, "2")]
    one_line_error(argv, ", ".join(flags), "--arch mlp")


def test_latent_and_prompts_keep_their_networks_without_arch(tmp_path):
    pytest.importorskip("sklearn")
    # --latent trains an MLP on the latent, so the MLP's flags are its own there, and --arch unet stays refused
    one_line_error(["train", "--data", "digits", "--latent", "--arch", "unet", "--out", tmp_path / "r"], "--arch unet")
    # --prompts is --arch prompt_mlp, not the default: the U-Net's flag is still refused with it
    one_line_error(["train", "--data", "digits", "--prompts", "--base-width", "8", "--out", tmp_path / "r"],
                   "--base-width", "--arch prompt_mlp")
    assert not (tmp_path / "r").exists()


def test_sample_nll_and_the_editors_take_the_default_digits_model(unet_run):
    d, model = unet_run, unet_run / "run"
    _ok(["sample", "--model", model, "--sampler", "ddim", "--steps", "3", "--n", "2", "--out", d / "s.npy",
         "--plot", d / "s.png"])
    x = np.load(d / "s.npy")
    assert x.shape == (2, 64) and np.all(np.isfinite(x))
    r = json.loads(_ok(["nll", "--model", model, "--data", "digits", "--n", "2", "--method", "both", "--T", "3",
                        "--rtol", "1e-2", "--atol", "1e-2", "--json"]))  # the exact ODE takes the U-Net's exact trace
    assert r["ode_diverged"] == 0 and all(np.isfinite(r[k]) and r[k] > 0 for k in ("bpd_ode", "bpd_vlb")), r
    from npdiff.data.images import digits

    original = digits().test[5]
    for method in ("replacement", "dps"):  # dps takes the U-Net's eps_vjp
        out = d / f"inpaint_{method}.npy"
        _ok(["inpaint", "--model", model, "--image-index", "5", "--mask", "left", "--method", method, "--steps", "3",
             "--n", "2", "--out", out])
        x = np.load(out)
        assert x.shape == (2, 64) and np.all(np.isfinite(x))
        if method == "replacement":  # the known right half is the original's, exactly
            known = image_mask("left")
            np.testing.assert_array_equal(x[:, known], np.broadcast_to(original[known], (2, known.sum())))
    _ok(["img2img", "--model", model, "--image-index", "5", "--coarse", "block", "--steps", "3", "--n", "2",
         "--out", d / "edit.npy"])
    x = np.load(d / "edit.npy")
    assert x.shape == (2, 64) and np.all(np.isfinite(x))


def test_conditional_digits_without_arch_is_a_labelled_unet_that_samples_a_label(tmp_path):
    pytest.importorskip("sklearn")
    _ok(["train", "--data", "digits", "--conditional", *TINY_UNET, "--out", tmp_path / "run"])
    ck = checkpoint.load(tmp_path / "run" / "model.npz")
    assert isinstance(ck.model, DiffusionUNet) and ck.model.num_classes == 10
    _ok(["sample", "--model", tmp_path / "run", "--label", "3", "--guidance", "1", "--sampler", "ddim", "--steps", "3",
         "--n", "2", "--out", tmp_path / "s.npy"])
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (2, 64) and np.all(np.isfinite(x))
