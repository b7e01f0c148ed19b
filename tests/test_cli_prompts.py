"""The prompt model from the command line: `npdiff train --arch prompt_mlp` and `npdiff sample --prompt`, the samples
equal to the library's, and every mistake (a word outside the vocabulary, a prompt for a model without prompts, a
negative weight, the other networks' flags) one line naming the argument. In-process, tiny model, a few steps."""

import json

import numpy as np
import pytest

from npdiff import checkpoint
from npdiff.checkpoint import save
from npdiff.guidance import guided
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.sample import ddim_sample
from npdiff.schedule import vp_linear

from .test_fuzz_cli import one_line_error, run_main

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--width", "16", "--depth", "1", "--batch-size", "8", "--steps", "3"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    pytest.importorskip("sklearn")  # the digits
    d = tmp_path_factory.mktemp("cli_prompts")
    code, _, err = run_main(["train", "--data", "digits", "--arch", "prompt_mlp", *TINY, "--out", str(d / "run"),
                               "--json"])
    assert code == 0, err
    assert "1388 of 1437 images: the held-out cells left out" in err
    save(d / "mlp.npz", DiffusionMLP(MLPConfig(width=8, depth=1, emb_dim=8), vp_linear(), rng=0))
    return d


def test_train_writes_a_prompt_model_with_the_recipe(folder):
    ck = checkpoint.load(folder / "run" / "model.npz")
    assert ck.arch == "prompt_mlp" and ck.step == 3 and ck.data_name == "digits"
    cfg = ck.model.config
    assert (cfg.dim, cfg.width, cfg.depth, cfg.text_width, cfg.query_tokens) == (64, 16, 1, 32, 8)
    assert type(ck.model.schedule).__name__ == "Cosine"  # the recipe's schedule for the prompt model
    assert "p_uncond" not in json.dumps(ck.train_config) or ck.train_config["p_uncond"] == 0.1


def test_sample_a_prompt_equals_the_library(folder):
    x_path, fig = folder / "x.npy", folder / "f.png"
    code, out, err = run_main(["sample", "--model", str(folder / "run"), "--prompt", "bold seven slanted right",
                               "--guidance", "3", "--n", "4", "--steps", "3", "--seed", "5", "--out", str(x_path),
                               "--figure", str(fig), "--json"])
    assert code == 0, err
    r = json.loads(out.strip().splitlines()[-1])
    assert r["prompt"] == "bold seven slanted right" and r["guidance"] == 3.0 and r["sampler"] == "ddim"
    assert r["threshold"] == "static"
    x = np.load(x_path)
    model = checkpoint.load(folder / "run" / "model.npz").model
    want = ddim_sample(guided(model, "bold seven slanted right", 3.0), 4, np.random.default_rng(5), steps=3,
                       threshold="static").x
    np.testing.assert_array_equal(x, want)
    assert x.shape == (4, 64) and np.all(np.abs(x) <= 1.0)
    assert fig.read_bytes()[:8] == PNG
    # --threshold none without --sampler: the prompt model's default sampler, unclipped
    code, _, err = run_main(["sample", "--model", str(folder / "run"), "--prompt", "two", "--threshold", "none", "--n",
                             "2", "--steps", "2", "--out", str(x_path)])
    assert code == 0, err
    want = ddim_sample(guided(model, "two", 0.0), 2, np.random.default_rng(0), steps=2).x
    np.testing.assert_array_equal(np.load(x_path), want)


def test_prompt_mistakes_are_one_line_errors_naming_the_argument(folder):
    base = ["sample", "--model", str(folder / "run"), "--out", str(folder / "s.npy"), "--n", "2", "--steps", "2"]
    one_line_error([*base, "--prompt", "bold sevn"], "--prompt 'bold sevn'", "did you mean 'seven'")
    one_line_error([*base, "--prompt", "bold seven slanted right right"], "--prompt", "at most 4 words")
    one_line_error([*base, "--prompt", "seven", "--guidance=-1"], "--guidance")
    one_line_error([*base, "--label", "7"], "--label", "prompt model", "--prompt")
    one_line_error([*base, "--prompt", "seven", "--label", "7"], "--label and --prompt")
    one_line_error([*base, "--guidance", "2"], "--guidance needs --label or --prompt")
    one_line_error([*base, "--prompt", " ", "--guidance", "2"], "--prompt is empty", "--guidance 2")
    mlp = ["sample", "--model", str(folder / "mlp.npz"), "--out", str(folder / "s.npy"), "--n", "2"]
    one_line_error([*mlp, "--prompt", "seven"], "--prompt needs a prompt model", "has no conditioning")


def test_train_refuses_what_the_prompt_model_is_not(folder):
    out = ["--out", str(folder / "never")]
    one_line_error(["train", "--data", "moons", "--arch", "prompt_mlp", *out], "--arch prompt_mlp", "'moons'")
    one_line_error(["train", "--data", "digits", "--arch", "prompt_mlp", "--base-width", "8", *out], "--base-width",
                   "U-Net")
    one_line_error(["train", "--data", "digits", "--arch", "prompt_mlp", "--conditional", *out], "--conditional")
    assert not (folder / "never").exists()
