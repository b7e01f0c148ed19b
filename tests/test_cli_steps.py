"""``npdiff steps`` and ``npdiff sample --steps-file``, and the default sampler of ``npdiff sample``.

One tiny model (300 steps, width 32) serves every test; the step search runs on a small budget (tens of
trials on tens of points, seconds), which is enough to check what the command writes and what reads it.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from npdiff import checkpoint, cli, sample
from npdiff.cli import sample as sample_cmd
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.sample.step_file import load_steps, save_steps
from npdiff.schedule import cosine, vp_linear

SMALL = ("--n-fit", "40", "--n-check", "60", "--evaluations", "12")


def run_main(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's exits
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("steps")
    code, _, err = run_main("train", "--data", "8gaussians", "--steps", "300", "--batch-size", "128", "--width", "32",
                            "--seed", "3", "--out", d / "run")
    assert code == 0, err
    return d


@pytest.fixture(scope="module")
def written(folder):
    code, out, err = run_main("steps", "--model", folder / "run", "--sampler", "dpmpp2m", "--steps", "8", *SMALL,
                              "--out", folder / "steps", "--json")
    assert code == 0, err
    return json.loads(out), err


def test_steps_writes_a_step_file_for_the_model(folder, written):
    r, err = written
    assert r["out"] == str(folder / "steps.json")  # .json appended
    f = load_steps(folder / "steps.json")
    model = checkpoint.load(folder / "run" / "model.npz").model
    assert f.schedule == model.schedule and f.sampler == "dpmpp2m" and f.nfe == 8 and f.steps == 8
    assert f.times[0] == model.schedule.t_max and f.t_min == 1e-3 and np.all(np.diff(f.times) < 0)
    assert np.array_equal(f.times, r["times"]) and f.data == "8gaussians" and "converged flow" in f.objective
    assert r["evaluations"] >= 1 and r["seconds"] > 0 and r["start"] == "quadratic"
    if r["folded"]:  # a folded sampler's KL is not a number anywhere
        assert r["kl"] is None and f.kl is None and "not estimable" in err
    else:
        assert f.kl == r["kl"] and f.kl_se == r["kl_se"] and r["kl_se"] > 0 and f"{r['kl']:.4f}" in err
    assert "npdiff sample --model" in err and "--steps-file" in err  # it says how to use the file


def test_sample_walks_the_files_times(folder, written):
    model = checkpoint.load(folder / "run" / "model.npz").model
    code, out, err = run_main("sample", "--model", folder / "run", "--steps-file", folder / "steps.json", "--n", "30",
                              "--seed", "5", "--out", folder / "x.npy", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["sampler"] == "dpmpp2m" and r["nfe"] == 9 and r["steps_file"] == str(folder / "steps.json")
    f = load_steps(folder / "steps.json")
    expect = sample.fast_sample(model, 30, np.random.default_rng(5), sampler="dpmpp2m", nfe=8, times=f.times).x
    np.testing.assert_array_equal(np.load(folder / "x.npy"), expect)
    # another sampler that can walk 8 steps: Heun spends two evaluations on each
    code, out, err = run_main("sample", "--model", folder / "run", "--steps-file", folder / "steps.json", "--sampler",
                              "heun", "--n", "10", "--out", folder / "h.npy", "--json")
    assert code == 0 and json.loads(out)["nfe"] == 17, err


def test_a_file_of_times_only_is_walked_by_the_default_sampler(folder):
    save_steps(folder / "bare.json", [1.0, 0.5, 0.1, 0.02, 1e-3], vp_linear())
    code, out, err = run_main("sample", "--model", folder / "run", "--steps-file", folder / "bare.json", "--n", "10",
                              "--out", folder / "b.npy", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["sampler"] == sample_cmd.DEFAULT_SAMPLER and r["nfe"] == 5


def test_step_files_that_do_not_fit_are_refused_in_one_line(folder):
    save_steps(folder / "cosine.json", [0.999, 0.5, 1e-3], cosine(), sampler="dpmpp2m")
    (folder / "up.json").write_text(json.dumps({"format": "npdiff-steps", "version": 1, "times": [1.0, 1e-3, 0.5],
                                                "schedule": vp_linear().config()}))
    save_steps(folder / "one.json", [1.0, 1e-3], vp_linear(), sampler="ddim")
    base = ("sample", "--model", folder / "run", "--out", folder / "bad.npy")
    for flags, message in [
        (("--steps-file", folder / "cosine.json"), f"made for the schedule {cosine()!r}, but the model's schedule "
                                                   "is VPLinear(beta_min=0.1, beta_max=20.0)"),
        (("--steps-file", folder / "up.json"), "field 'times': times must decrease strictly"),
        (("--steps-file", folder / "one.json", "--sampler", "dpmpp3m"), "dpmpp3m cannot walk a grid of 1 steps"),
        (("--steps-file", folder / "steps.json", "--grid", "karras"), "--grid and --steps-file both say"),
        (("--steps-file", folder / "steps.json", "--sampler", "ddpm"), "--sampler ddpm takes its own times"),
        (("--steps-file", folder / "steps.json", "--steps", "10"), "--steps 10 does not fit the step file"),
        (("--steps-file", folder / "missing.json"), "cannot be read"),
    ]:
        code, out, err = run_main(*base, *flags)
        assert code == 2 and out == "" and err.count("\n") == 1 and message in err, (flags, err)
        assert "Traceback" not in err


def test_steps_refuses_a_budget_below_the_order(folder):
    code, _, err = run_main("steps", "--model", folder / "run", "--sampler", "dpmpp3m", "--steps", "2",
                            "--out", folder / "s3.json")
    assert code == 2 and "--steps 2 is below what dpmpp3m needs for its order: at least 3" in err, err
    assert not (folder / "s3.json").exists()


def test_an_image_model_gets_surrogate_steps_and_no_kl(folder):
    image = DiffusionMLP(MLPConfig(dim=64, width=16, depth=1, emb_dim=8), vp_linear(), rng=np.random.default_rng(0))
    checkpoint.save(folder / "img.npz", image)
    code, out, err = run_main("steps", "--model", folder / "img.npz", "--steps", "6", "--n-fit", "20",
                              "--out", folder / "s64.json", "--json")
    assert code == 0, err
    r = json.loads(out)
    f = load_steps(folder / "s64.json")
    assert r["kl"] is None and f.kl is None and "surrogate" in f.objective and "64-D" in err
    assert f.steps == 6 and f.nfe == 6 and f.schedule == image.schedule and np.array_equal(f.times, r["times"])
    code, out, err = run_main("sample", "--model", folder / "img.npz", "--steps-file", folder / "s64.json", "--n", "3",
                              "--out", folder / "x64.npy", "--json")
    assert code == 0 and json.loads(out)["nfe"] == 7 and np.load(folder / "x64.npy").shape == (3, 64), err


def test_the_default_sampler_is_the_few_step_one_the_help_names(folder):
    model = checkpoint.load(folder / "run" / "model.npz").model
    code, out, err = run_main("sample", "--model", folder / "run", "--n", "30", "--seed", "2", "--out",
                              folder / "d.npy", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["sampler"] == sample_cmd.DEFAULT_SAMPLER and r["nfe"] == sample_cmd.DEFAULT_NFE + 1  # and one to denoise
    expect = sample.fast_sample(model, 30, np.random.default_rng(2), sampler=sample_cmd.DEFAULT_SAMPLER,
                                nfe=sample_cmd.DEFAULT_NFE, grid=sample_cmd.DEFAULT_GRID).x
    np.testing.assert_array_equal(np.load(folder / "d.npy"), expect)
    code, out, _ = run_main("sample", "--help")
    text = " ".join(out.split())
    assert code == 0
    assert (f"Default: {sample_cmd.DEFAULT_SAMPLER} on the {sample_cmd.DEFAULT_GRID} grid at "
            f"{sample_cmd.DEFAULT_NFE} evaluations") in text
    assert " ".join(sample_cmd.DEFAULT_WHY.split()) in text and "--steps-file" in text
