"""The command line end to end: tiny runs with --json, and every user mistake as one line."""

import json
import subprocess
import sys

import numpy as np
import pytest

PNG = b"\x89PNG\r\n\x1a\n"


def run(*args, cwd):
    proc = subprocess.run([sys.executable, "-m", "npdiff", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    code, out, err = run("train", "--data", "8gaussians", "--steps", "300", "--batch-size", "128", "--width", "32",
                         "--seed", "3", "--out", "run", "--json", cwd=d)
    assert code == 0, err
    return d, last_json(out)


def test_train_writes_a_model_and_reports_json(trained):
    d, r = trained
    assert (d / "run" / "model.npz").exists()
    assert r["steps"] == 300 and r["seconds"] > 0 and r["steps_per_s"] > 0 and np.isfinite(r["final_loss"])


def test_nll_reports_the_paired_gap_and_saves_per_point_values(trained):
    d, _ = trained
    code, out, err = run("nll", "--model", "run/model.npz", "--data", "8gaussians", "--n", "64", "--method", "both",
                         "--save", "ll.npz", "--json", cwd=d)
    assert code == 0, err
    r = last_json(out)
    assert abs(r["true_entropy_nats"] - 2.833) < 0.005
    assert r["nll_nats"] == pytest.approx(r["true_entropy_nats"] + r["gap_nats"], abs=0.6)  # different test points
    assert r["gap_se"] > 0 and r["ode_nfe"] > 0 and r["vlb_nfe"] == 1000 and r["vlb_nats"] >= r["nll_nats"] - 1.0
    saved = np.load(d / "ll.npz")
    assert saved["x"].shape == (64, 2) and saved["log_p_model"].shape == (64,)
    gap = saved["log_p_true"] - saved["log_p_model"]
    assert gap.mean() == pytest.approx(r["gap_nats"], rel=1e-12)


def test_nll_of_one_point_is_strict_json_without_a_standard_error(trained):
    # the standard error of one value is undefined: None in the JSON (which has no NaN), no "+-" on screen
    d, _ = trained
    code, out, err = run("nll", "--model", "run/model.npz", "--data", "8gaussians", "--n", "1", "--method", "both",
                         "--T", "10", "--json", cwd=d)
    assert code == 0, err

    def no_nan(token):
        raise AssertionError(f"not strict JSON: {token}")

    r = json.loads(out.strip().splitlines()[-1], parse_constant=no_nan)
    assert r["gap_se"] is None and r["vlb_gap_se"] is None and np.isfinite(r["gap_nats"]), r
    assert "+-" not in err, err


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "ode", "sde"])
def test_sample_every_sampler(trained, sampler):
    d, _ = trained
    code, out, err = run("sample", "--model", "run/model.npz", "--sampler", sampler, "--steps", "20", "--n", "50",
                         "--out", f"{sampler}.npy", "--plot", f"{sampler}.png", "--json", cwd=d)
    assert code == 0, err
    r = last_json(out)
    x = np.load(d / f"{sampler}.npy")
    assert x.shape == (50, 2) and np.all(np.isfinite(x)) and r["n"] == 50 and r["nfe"] >= 20
    assert (d / f"{sampler}.png").read_bytes()[:8] == PNG


@pytest.mark.parametrize("flags, nfe", [
    (["--sampler", "dpmpp2m"], 21),  # 20 evaluations by default, and one to denoise
    (["--sampler", "edm", "--steps", "9", "--grid", "karras"], 10),
    (["--sampler", "dpm3", "--steps", "7", "--grid", "uniform"], 8),
    (["--sampler", "ddim", "--steps", "10", "--grid", "log_snr"], 10),
    (["--sampler", "ode", "--steps", "5", "--grid", "quadratic"], 11),
])
def test_sample_with_a_few_step_sampler_on_a_grid(trained, flags, nfe, capsys):
    from npdiff.cli import main

    d, _ = trained
    code = main(["sample", "--model", str(d / "run" / "model.npz"), *flags, "--n", "40", "--out", str(d / "fast.npy"),
                 "--json"])
    out = capsys.readouterr().out
    assert code == 0
    r = last_json(out)
    assert r["nfe"] == nfe and r["sampler"] == flags[1], r
    assert r["grid"] == (flags[flags.index("--grid") + 1] if "--grid" in flags else None), r
    x = np.load(d / "fast.npy")
    assert x.shape == (40, 2) and np.all(np.isfinite(x))


@pytest.mark.parametrize("flags, message", [
    (["--sampler", "dpm3", "--steps", "2"], "nfe must be an integer >= 3"),
    (["--sampler", "sde", "--grid", "karras"], "--grid applies to"),
    (["--sampler", "ode", "--grid", "log_snr"], "without --steps"),
])
def test_sampler_and_grid_mistakes_are_one_clear_line(trained, flags, message, capsys):
    from npdiff.cli import main

    d, _ = trained
    code = main(["sample", "--model", str(d / "run" / "model.npz"), *flags, "--out", str(d / "bad.npy")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_an_unknown_grid_is_refused_by_the_parser(capsys):
    from npdiff.cli import main

    with pytest.raises(SystemExit) as exit_:  # argparse's own exit, before any file is read
        main(["sample", "--model", "missing.npz", "--out", "x.npy", "--sampler", "dpmpp2m", "--grid", "cubic"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and "--grid" in err[0] and "invalid choice" in err[0], err


@pytest.mark.parametrize("variance", ["analytic", "trace"])
def test_nll_and_ddpm_take_the_model_based_variances(trained, variance):
    d, _ = trained
    code, out, err = run("nll", "--model", "run/model.npz", "--data", "8gaussians", "--n", "64", "--method", "vlb",
                         "--T", "20", "--variance", variance, "--json", cwd=d)
    assert code == 0, err
    r = last_json(out)
    assert np.isfinite(r["vlb_nats"]) and r["vlb_gap_se"] > 0 and r["vlb_nfe"] == 20
    assert ("estimating E||eps||^2" in err) == (variance == "analytic"), err
    code, out, err = run("sample", "--model", "run/model.npz", "--sampler", "ddpm", "--steps", "20", "--n", "50",
                         "--variance", variance, "--data", "8gaussians", "--out", "s.npy", "--json", cwd=d)
    assert code == 0, err
    x = np.load(d / "s.npy")
    assert x.shape == (50, 2) and np.all(np.isfinite(x)) and last_json(out)["nfe"] == 20


def test_datasets_lists_the_true_entropies(tmp_path):
    code, out, err = run("datasets", "--json", cwd=tmp_path)
    assert code == 0, err
    rows = {r["name"]: r["entropy_nats"] for r in last_json(out)["datasets"]}
    assert len(rows) == 8 and abs(rows["checkerboard"] - np.log(32)) < 1e-3


def test_demo_end_to_end_on_a_tiny_budget(tmp_path):
    code, out, err = run("demo", "--steps", "200", "--n", "64", "--grid", "10", "--width", "32", "--out", "demo", "--json",
                         cwd=tmp_path)
    assert code == 0, err
    r = last_json(out)
    for key in ("nll_nats", "true_entropy_nats", "gap_nats", "gap_se", "ode_nfe", "steps", "steps_per_s", "final_loss", "out"):
        assert key in r, key
    assert np.isfinite(r["gap_nats"]) and r["steps"] == 200
    for name in ("samples.png", "trajectory.png", "density.png", "loss.png"):
        assert (tmp_path / "demo" / name).read_bytes()[:8] == PNG, name
    assert "true entropy" in err


@pytest.mark.parametrize("args, message", [
    (("train", "--data", "nope", "--out", "x"), "unknown data set 'nope'"),
    (("nll", "--model", "missing.npz", "--data", "moons"), "does not exist"),
    (("nll", "--model", "garbage.npz", "--data", "moons"), "not a valid npdiff checkpoint"),
    (("sample", "--model", "garbage.npz", "--out", "s.npy"), "not a valid npdiff checkpoint"),
    (("train", "--data", "moons", "--out", "x", "--steps", "-3"), "expected a positive int"),
    (("train", "--data", "moons", "--out", "x", "--lr", "nan"), "expected a positive float"),
    (("sample", "--model", "m.npz", "--out", "s.npy", "--sampler", "rk4"), "invalid choice"),
    (("sample", "--model", "m.npz", "--out", "s.npy", "--sampler", "ode", "--variance", "trace"), "has none"),
    (("sample", "--model", "m.npz", "--out", "s.npy", "--sampler", "ddpm", "--variance", "analytic"),
     "give the model's --data"),
])
def test_user_mistakes_are_one_clear_line(tmp_path, args, message):
    (tmp_path / "garbage.npz").write_bytes(b"this is not a checkpoint")
    code, _, err = run(*args, cwd=tmp_path)
    assert code == 2, (code, err)
    assert message in err and "Traceback" not in err, err


def test_a_model_for_other_dimensions_is_refused(tmp_path):
    from npdiff.checkpoint import load, save
    from npdiff.nn import MLPConfig
    from npdiff.nn.model import DiffusionMLP
    from npdiff.schedule import vp_linear

    model3 = DiffusionMLP(MLPConfig(dim=3, width=16, depth=1, emb_dim=8), vp_linear(), rng=np.random.default_rng(0))
    save(tmp_path / "m3.npz", model3)
    assert load(tmp_path / "m3.npz").model.dim == 3
    code, _, err = run("nll", "--model", "m3.npz", "--data", "moons", cwd=tmp_path)
    assert code == 2 and "trained on 3-D data" in err and "Traceback" not in err, err


@pytest.mark.parametrize("flags, expect", [
    ([], {"coords": "raw+sinusoidal", "coord_scale": 8.0}),  # the 2d recipe
    (["--coords", "raw"], {"coords": "raw"}),
    (["--coords", "sinusoidal", "--coord-scale", "25"], {"coords": "sinusoidal", "coord_scale": 25.0}),
])
def test_coordinate_embedding_flags_reach_the_saved_model(tmp_path, flags, expect):
    from npdiff.checkpoint import load
    from npdiff.cli import main

    code = main(["train", "--data", "moons", "--steps", "3", "--width", "8", "--out", str(tmp_path), *flags])
    assert code == 0
    cfg = load(tmp_path / "model.npz").denoiser().config
    assert {k: getattr(cfg, k) for k in expect} == expect, f"{flags} gave {cfg}"


@pytest.mark.parametrize("flag, value", [("--rtol", "1e-14"), ("--atol", "1e-15"), ("--rtol", "0.5")])
def test_nll_tolerances_outside_what_the_solver_accepts_are_refused_by_the_parser(flag, value, capsys):
    from npdiff.cli import main

    with pytest.raises(SystemExit) as exit_:  # argparse's own exit, before any file is read
        main(["nll", "--model", "missing.npz", "--data", "8gaussians", flag, value])
    code = exit_.value.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and flag.lstrip("-") in err[0], err


def test_a_conditional_model_trains_samples_a_class_with_guidance_and_scores_it(tmp_path):
    code, out, err = run("train", "--data", "circles", "--conditional", "--steps", "60", "--batch-size", "64", "--width",
                         "16", "--out", "run", "--json", cwd=tmp_path)
    assert code == 0, err
    code, out, err = run("sample", "--model", "run/model.npz", "--label", "1", "--guidance", "2", "--sampler", "ddim",
                         "--steps", "10", "--n", "8", "--out", "s.npy", "--json", cwd=tmp_path)
    assert code == 0, err
    r = last_json(out)
    assert (r["label"], r["guidance"], r["n"]) == (1, 2.0, 8) and np.load(tmp_path / "s.npy").shape == (8, 2)
    code, out, err = run("nll", "--model", "run/model.npz", "--data", "circles", "--label", "0", "--n", "16", "--json",
                         cwd=tmp_path)
    assert code == 0, err
    r = last_json(out)
    assert r["label"] == 0 and r["n"] == 16 and np.isfinite(r["gap_nats"]) and r["ode_nfe"] > 0
    model = ("--model", "run/model.npz", "--out", "s.npy")
    for args, message in ((("sample", *model, "--label", "2"), "--label must be in 0..1"),
                          (("sample", *model, "--guidance", "1"), "--guidance needs --label"),
                          (("train", "--data", "swissroll", "--conditional", "--out", "r"), "has no labels")):
        code, out, err = run(*args, cwd=tmp_path)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
