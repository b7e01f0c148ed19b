"""``npdiff inpaint`` and ``npdiff img2img`` on a tiny untrained digits model: what they write, and their refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from npdiff.checkpoint import save
from npdiff.data.images import digits
from npdiff.edit.coarse import coarse_digits
from npdiff.edit.mask import image_mask
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.schedule import vp_linear

from .test_fuzz_cli import run_main


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_edit")
    rng = np.random.default_rng(0)
    save(d / "digits.npz", DiffusionMLP(MLPConfig(dim=64, width=8, depth=1, emb_dim=8), vp_linear(), rng=rng))
    save(d / "toy.npz", DiffusionMLP(MLPConfig(dim=2, width=8, depth=1, emb_dim=8), vp_linear(), rng=rng))
    return d


@pytest.mark.parametrize("method, extra", [("replacement", []), ("repaint", ["--jump-length", 1, "--resamplings", 2]),
                                           ("dps", ["--scale", 0.2]), ("replacement", ["--sampler", "ddim"])])
def test_inpaint_writes_n_completions_that_keep_the_known_pixels(models, method, extra):
    out = models / f"{method}{len(extra)}.npy"
    code, stdout, err = run_main(["inpaint", "--model", models / "digits.npz", "--image-index", 7, "--mask", "bottom",
                                  "--method", method, "--steps", 4, "--n", 3, "--out", out, "--json", *extra])
    assert code == 0, err
    x = np.load(out)
    assert x.shape == (3, 64) and np.isfinite(x).all()
    report = json.loads(stdout)
    assert report["method"] == method and report["n"] == 3 and report["label"] == int(digits().test_labels[7])
    known = image_mask("bottom")
    if method != "dps":  # the pasting methods return the known pixels exactly; DPS only approaches them
        np.testing.assert_array_equal(x[:, known], np.broadcast_to(digits().test[7][known], (3, known.sum())))
    # RePaint jumps back one step after each of the steps 3, 2, 1 (repaint_nfe(4, 1, 2)); DPS calls eps and eps_vjp
    assert report["nfe"] == {"replacement": 4, "repaint": 7, "dps": 8}[method]


def test_inpaint_random_mask_and_noise_follow_the_seed(models):
    a, b, c = (models / f"r{k}.npy" for k in range(3))
    base = ["inpaint", "--model", models / "digits.npz", "--image-index", 0, "--mask", "random", "--method",
            "replacement", "--steps", 3, "--n", 2]
    for path, seed in ((a, 5), (b, 5), (c, 6)):
        assert run_main([*base, "--seed", seed, "--out", path])[0] == 0
    np.testing.assert_array_equal(np.load(a), np.load(b))
    assert not np.array_equal(np.load(a), np.load(c))


def test_img2img_writes_edits_and_a_figure(models):
    out, fig = models / "edit", models / "edit.png"
    code, stdout, err = run_main(["img2img", "--model", models / "digits.npz", "--image-index", 359, "--coarse", "block",
                                  "--strength", "0.05", "--steps", 40, "--n", 2, "--out", out, "--figure", fig,
                                  "--json"])
    assert code == 0, err
    x = np.load(str(out) + ".npy")
    assert x.shape == (2, 64) and fig.stat().st_size > 0
    report = json.loads(stdout)
    assert report["coarse"] == "block" and report["nfe"] == 2  # round(0.05 * 40) steps of the chain cut at t0
    # a weak edit stays near its coarse input even with an untrained model
    coarse = coarse_digits(digits().test[359:360], "block")
    assert np.sqrt(np.mean((x - coarse) ** 2)) < 0.5


@pytest.mark.parametrize("extra, words", [
    (["--strength", "0"], "--strength"),
    (["--strength", "1.5"], "--strength"),
    (["--strength", "nan"], "--strength"),
    (["--coarse", "sketch"], "--coarse"),
    (["--image-index", "360"], "--image-index"),
    (["--image-index", "-1"], "--image-index"),
])
def test_img2img_refuses_bad_flags_by_name(models, extra, words):
    argv = ["img2img", "--model", models / "digits.npz", "--image-index", 0, "--out", models / "z.npy", *extra]
    code, _, err = run_main(argv)
    assert code == 2 and words in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("extra, words", [
    (["--mask", "right"], "--mask"),
    (["--method", "sdedit"], "--method"),
    (["--method", "repaint", "--scale", "0.3"], "--scale"),
    (["--method", "dps", "--resamplings", "3"], "--resamplings"),
    (["--method", "repaint", "--steps", "4"], "--jump-length 5 must be below --steps 4"),
    (["--method", "dps", "--sampler", "ddim"], "--sampler"),
    (["--method", "replacement", "--sampler", "ode"], "--sampler"),
    (["--model", "TOY"], "2-D model"),
])
def test_inpaint_refuses_bad_flags_and_a_2d_model_by_name(models, extra, words):
    extra = [str(models / "toy.npz") if e == "TOY" else e for e in extra]
    argv = ["inpaint", "--model", models / "digits.npz", "--image-index", 0, "--out", models / "z.npy", *extra]
    code, _, err = run_main(argv)
    assert code == 2 and words in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (models / "z.npy").exists()
