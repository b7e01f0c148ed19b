"""Latent diffusion from the command line: `npdiff train --latent` writes the autoencoder, the latent MLP and the marker;
`npdiff sample` decodes to the 17 levels exactly as the library does; `npdiff nll` prints LSGM's bound as the library
computes it; every flag that makes no sense on a latent is one line naming it. In-process, tiny networks, a few steps."""

import json
import shutil

import numpy as np
import pytest

from npdiff import checkpoint, cli
from npdiff.cli.latent import LATENT_FILE
from npdiff.cli.sample import run_sampler
from npdiff.data.images import digits
from npdiff.latent import LatentDiffusion

from .test_fuzz_cli import one_line_error, run_main

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--latent-dim", "4", "--ae-steps", "4", "--steps", "4", "--width", "16", "--depth", "1", "--batch-size", "16"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    pytest.importorskip("sklearn")  # the digits
    d = tmp_path_factory.mktemp("cli_latent")
    code, out, err = run_main(["train", "--data", "digits", "--latent", *TINY, "--beta", "0.5", "--out", d / "run",
                               "--json"])
    assert code == 0, err
    r = json.loads(out)
    assert (r["steps"], r["autoencoder_steps"], r["latent_dim"], r["beta"]) == (4, 4, 4, 0.5)
    return d


def latent_model(folder):
    ae = checkpoint.load_autoencoder(folder / "run" / "autoencoder.npz")
    return LatentDiffusion(ae, checkpoint.load(folder / "run" / "model.npz").model)


def test_train_writes_the_autoencoder_the_latent_model_and_the_marker(folder):
    marker = json.loads((folder / "run" / LATENT_FILE).read_text())
    ae = checkpoint.load_autoencoder(folder / "run" / "autoencoder.npz")
    assert (ae.config.latent_dim, ae.config.beta, ae.config.width, ae.config.depth) == (4, 0.5, 256, 2)  # config defaults
    assert marker["autoencoder"] == "autoencoder.npz" and marker["latent_dim"] == 4
    assert marker["scale_factor"] == ae.config.scale_factor != 1.0  # set from the encoded training means
    ck = checkpoint.load(folder / "run" / "model.npz")
    assert ck.arch == "mlp" and ck.model.dim == 4 and ck.step == 4 and ck.data_name == "digits"
    assert (ck.model.config.width, ck.model.config.depth, ck.train_config["weight_decay"]) == (16, 1, 0.0)


def test_sample_decodes_to_the_levels_as_the_library_does(folder):
    x_path, fig = folder / "x.npy", folder / "f.png"
    code, out, err = run_main(["sample", "--model", folder / "run" / "model.npz", "--sampler", "ddim", "--steps", "3",
                               "--n", "5", "--seed", "7", "--out", x_path, "--plot", fig, "--data", "digits", "--json"])
    assert code == 0, err
    r = json.loads(out)
    assert r["latent"] is True and r["nfe"] == 3 and r["n"] == 5
    x = np.load(x_path)
    assert x.shape == (5, 64)
    levels = (x + 1.0) * 8.0  # 17 levels in [-1, 1]: 2 v / 16 - 1
    np.testing.assert_array_equal(levels, np.round(levels))
    assert levels.min() >= 0 and levels.max() <= 16
    ld = latent_model(folder)
    want = ld.decode(run_sampler(ld.denoiser, "ddim", 5, 7, 3).x)
    np.testing.assert_array_equal(x, want)
    assert fig.read_bytes()[:8] == PNG


def test_nll_prints_the_lsgm_bound_the_library_computes(folder):
    code, out, err = run_main(["nll", "--model", folder / "run", "--data", "digits", "--n", "3", "--rtol", "1e-3",
                               "--atol", "1e-3", "--seed", "2", "--json"])
    assert code == 0, err
    r = json.loads(out)
    assert r["n"] == 3 and np.isfinite(r["bpd_bound"]) and r["bpd_bound"] > 0
    assert "LSGM bound" in err and "bits/dim" in err
    want = latent_model(folder).bound_bits_per_dim(digits().test[:3], np.random.default_rng(2), rtol=1e-3, atol=1e-3)
    assert r["bpd_bound"] == pytest.approx(float(want.bpd.mean()), rel=1e-12)
    assert r["reconstruction_bpd"] + r["latent_bpd"] == pytest.approx(r["bpd_bound"], rel=1e-12)


def test_train_refuses_what_a_latent_model_is_not(folder):
    out = ["--out", folder / "never"]
    one_line_error(["train", "--data", "moons", "--latent", *out], "--latent", "'moons'")
    one_line_error(["train", "--data", "digits", "--latent", "--arch", "unet", *out], "--arch unet")
    one_line_error(["train", "--data", "digits", "--latent", "--prompts", *out], "--arch prompt_mlp")
    for flag in (["--coords", "raw"], ["--coord-scale", "2"], ["--base-width", "8"], ["--conditional"],
                 ["--p-uncond", "0.2"]):
        one_line_error(["train", "--data", "digits", "--latent", *flag, *out], flag[0], "pixel model")
    one_line_error(["train", "--data", "digits", "--latent-dim", "6", *out], "--latent-dim", "--latent only")
    one_line_error(["train", "--data", "digits", "--latent", "--latent-dim", "40", *out], "--latent-dim")
    assert not (folder / "never").exists()


def test_prompts_is_the_issues_spelling_of_arch_prompt_mlp():
    parser = cli.build_parser()
    assert parser.parse_args(["train", "--data", "digits", "--out", "o", "--prompts"]).arch == "prompt_mlp"
    # no --arch: the network is chosen per data set (npdiff.cli.train.default_arch), not by the parser
    assert parser.parse_args(["train", "--data", "digits", "--out", "o"]).arch is None


def test_sample_and_nll_refuse_the_pixels_flags_by_name(folder):
    base = ["sample", "--model", folder / "run", "--out", folder / "s.npy", "--n", "2", "--steps", "2"]
    one_line_error([*base, "--label", "3"], "--label", "unconditional")
    one_line_error([*base, "--prompt", "seven"], "--prompt", "unconditional")
    one_line_error([*base, "--sampler", "ddpm", "--threshold", "static"], "--threshold", "latent")
    one_line_error([*base, "--sampler", "ddpm", "--variance", "analytic", "--data", "digits"], "--variance analytic")
    one_line_error([*base, "--data", "moons"], "'moons'")
    nll = ["nll", "--model", folder / "run", "--data", "digits", "--n", "2"]
    one_line_error([*nll, "--method", "vlb"], "--method vlb", "LSGM")
    one_line_error([*nll, "--method", "both"], "--method both")
    for flag in (["--dequantization", "uniform"], ["--T", "5"], ["--variance", "large"], ["--label", "1"],
                 ["--vlb-data", "dequantized"], ["--steps-file", "s.json"]):
        one_line_error([*nll, *flag], flag[0], "latent model")
    one_line_error(["nll", "--model", folder / "run", "--data", "moons"], "trained on 'digits'")


def test_a_broken_marker_or_a_missing_autoencoder_is_one_line(folder):
    broken = folder / "broken"
    shutil.copytree(folder / "run", broken)
    (broken / LATENT_FILE).write_text("{not json")
    one_line_error(["nll", "--model", broken, "--data", "digits"], LATENT_FILE, "not a latent model's marker")
    (broken / LATENT_FILE).write_text(json.dumps({"format": "npdiff-latent-1", "autoencoder": "gone.npz"}))
    one_line_error(["sample", "--model", broken, "--out", folder / "s.npy"], "gone.npz")
    (broken / LATENT_FILE).write_text(json.dumps({"format": "npdiff-latent-1", "autoencoder": "autoencoder.npz"}))
    shutil.copy(folder / "run" / "autoencoder.npz", broken / "autoencoder.npz")
    code, _, err = run_main(["train", "--data", "8gaussians", "--out", broken, "--steps", "2", "--width", "8",
                             "--depth", "1", "--batch-size", "8"])
    assert code == 0, err
    assert not (broken / LATENT_FILE).exists()  # a pixel model now: the stale marker is gone
