"""The command line as a newcomer meets it: pure JSON, the model's data set, folders, typos, help, files.

One tiny model (30 steps) serves every test; the commands that need a real entry point run as
``python -m npdiff`` subprocesses, the rest in-process through ``cli.main``.
"""

import contextlib
import io
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from npdiff import __version__, checkpoint, cli
from npdiff.nn import MLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.recipes import recipe
from npdiff.schedule import vp_linear

TINY = ["--steps", "30", "--batch-size", "64", "--width", "16", "--depth", "1"]


def run(*args, cwd):
    proc = subprocess.run([sys.executable, "-m", "npdiff", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def run_main(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:  # argparse's exits (errors, --version)
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder with run/model.npz trained on 8gaussians, and old.npz: a model saved without its data set's name."""
    d = tmp_path_factory.mktemp("first_use")
    code, _, err = run("train", "--data", "8gaussians", "--out", "run", *TINY, cwd=d)
    assert code == 0, err
    checkpoint.save(d / "old.npz", DiffusionMLP(MLPConfig(width=8, depth=1, emb_dim=8), vp_linear(), rng=0))
    return d


def only_json(code, out, err):
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1, f"stdout holds more than the JSON line: {out!r}"
    return json.loads(lines[0])


JSON_COMMANDS = {
    "train": ["train", "--data", "moons", "--out", "again", *TINY],
    "nll": ["nll", "--model", "run", "--data", "8gaussians", "--n", "20", "--method", "both", "--T", "4", "--rtol", "1e-3",
            "--atol", "1e-3"],
    "sample": ["sample", "--model", "run", "--sampler", "ode", "--n", "10", "--out", "s.npy"],
    "demo": ["demo", "--out", "demo", "--n", "20", "--grid", "4", *TINY],
    "datasets": ["datasets"],
    "schedules": ["schedules", "--T", "10"],
}


@pytest.mark.parametrize("name", JSON_COMMANDS)
def test_with_json_stdout_holds_only_the_json_line(folder, name):
    r = only_json(*run(*JSON_COMMANDS[name], "--json", cwd=folder))
    assert isinstance(r, dict) and r, r


def test_datasets_and_schedules_print_their_tables_on_stdout_without_json(folder):
    code, out, _ = run_main("datasets")
    assert code == 0 and "moons" in out and "true entropy" in out
    code, out, _ = run_main("schedules", "--T", "10")
    assert code == 0 and "alpha_bar[t]" in out


def test_version():
    code, out, _ = run_main("--version")
    assert code == 0 and out.strip() == f"npdiff {__version__}"


def test_a_misspelt_flag_names_the_closest_one_and_the_subcommands_help():
    code, _, err = run_main("train", "--data", "moons", "--out", "x", "--stpes", "3")
    assert code == 2 and err.count("\n") == 1, err
    assert "unrecognized arguments: --stpes 3" in err and "did you mean --steps?" in err and "npdiff train --help" in err
    code, _, err = run_main("nll", "--model", "m", "--data", "moons", "--methd=vlb")
    assert code == 2 and "did you mean --method?" in err and "npdiff nll --help" in err, err
    code, _, err = run_main("sample", "--model", "m", "--out", "s.npy", "--zzzz")
    assert code == 2 and "unrecognized arguments: --zzzz" in err and "did you mean" not in err, err


def test_a_misspelt_data_set_names_the_closest_one(folder):
    code, _, err = run_main("train", "--data", "moosn", "--out", str(folder / "x"), "--steps", "2")
    assert code == 2 and "unknown data set 'moosn' (did you mean moons?)" in err, err


def test_model_may_be_the_folder_train_wrote(folder, monkeypatch):
    monkeypatch.chdir(folder)
    code, _, err = run_main("sample", "--model", "run", "--sampler", "ddim", "--steps", "3", "--n", "4", "--out", "f.npy")
    assert code == 0, err
    assert np.load(folder / "f.npy").shape == (4, 2)
    (folder / "empty_dir").mkdir(exist_ok=True)
    code, _, err = run_main("nll", "--model", "empty_dir", "--data", "8gaussians")
    assert code == 2 and "model folder 'empty_dir' holds no model.npz" in err, err


def test_a_model_is_refused_on_another_data_set_unless_the_user_insists(folder, monkeypatch):
    monkeypatch.chdir(folder)
    assert checkpoint.load("run/model.npz").data_name == "8gaussians"
    for argv in (["nll", "--model", "run", "--data", "moons", "--n", "5"],
                 ["sample", "--model", "run", "--data", "moons", "--n", "5", "--out", "m.npy"]):
        code, _, err = run_main(*argv)
        assert code == 2 and "was trained on '8gaussians', not on 'moons'" in err and "--other-data" in err, (argv, err)
        code, _, err = run_main(*argv, "--other-data", "--json")
        assert code == 0 and "note: model 'run' was trained on '8gaussians'" in err, (argv, err)
    # a checkpoint from before the name was recorded: nothing to compare, it runs
    code, _, err = run_main("nll", "--model", "old.npz", "--data", "moons", "--n", "5", "--rtol", "1e-3", "--atol", "1e-3")
    assert code == 0, err


def test_sample_reports_the_file_it_really_wrote(folder, monkeypatch):
    monkeypatch.chdir(folder)
    code, out, err = run_main("sample", "--model", "run", "--sampler", "ddpm", "--steps", "3", "--n", "3", "--out", "noext",
                              "--json")
    assert code == 0, err
    assert (folder / "noext.npy").exists() and not (folder / "noext").exists()
    assert "to noext.npy" in err and json.loads(out)["out"] == "noext.npy"


def test_nll_reports_each_methods_own_evaluations_and_writes_with_out_or_save(folder, monkeypatch):
    monkeypatch.chdir(folder)
    common = ["nll", "--model", "run", "--data", "8gaussians", "--n", "16", "--rtol", "1e-3", "--atol", "1e-3", "--json"]
    ode = json.loads(run_main(*common, "--method", "ode")[1])
    both = json.loads(run_main(*common, "--method", "both", "--T", "7", "--out", "both")[1])
    assert both["ode_nfe"] == ode["ode_nfe"] and both["vlb_nfe"] == 7 and "nfe" not in both
    assert both["nll_nats"] == ode["nll_nats"]  # the same points, the same solve
    with np.load(folder / "both.npz") as z:
        assert z["x"].shape == (16, 2) and z["vlb_nats"].shape == (16,)
    code, _, err = run_main(*common, "--save", "saved.npz")
    assert code == 0 and (folder / "saved.npz").exists(), err


def test_the_nll_line_says_what_the_paired_gap_is(folder, monkeypatch):
    monkeypatch.chdir(folder)
    code, out, err = run_main("nll", "--model", "run", "--data", "8gaussians", "--n", "16", "--rtol", "1e-3", "--atol",
                              "1e-3", "--json")
    assert code == 0, err
    r = json.loads(out)
    # the gap is the model's NLL minus the true density's NLL on the same points, not minus the entropy
    assert r["gap_nats"] == pytest.approx(r["nll_nats"] - r["nll_true_nats"], abs=1e-12)
    assert "mean of log p_true - log p_model over the same points" in err and f"{r['nll_true_nats']:.4f}" in err


def test_a_trained_model_honours_the_umask(folder):
    old = os.umask(0o027)
    try:
        code, _, err = run_main("train", "--data", "moons", "--out", str(folder / "masked"), "--steps", "2", "--width", "8")
    finally:
        os.umask(old)
    assert code == 0, err
    assert os.stat(folder / "masked" / "model.npz").st_mode & 0o777 == 0o640


def test_every_flag_says_what_it_is_and_every_seed_defaults_to_zero():
    parser = cli.build_parser()
    for name, sub in parser.commands.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and action.help.strip("() "), f"npdiff {name} {action.option_strings[0]} has no help"
            if action.dest == "seed":
                assert action.default == 0, f"npdiff {name} --seed defaults to {action.default}"
        if any(a.dest == "seed" for a in sub._actions):
            assert "(default: 0)" in sub.format_help(), f"npdiff {name} --help does not show the seed's default"


def test_the_schedules_table_lists_what_schedule_accepts():
    code, out, _ = run_main("schedules", "--T", "10", "--json")
    assert code == 0
    r = json.loads(out)
    parser = cli.build_parser()
    choices = next(a.choices for a in parser.commands["train"]._actions if a.dest == "schedule")
    assert set(r["alpha_bar_T"]) == set(choices) and set(r["reference_alpha_bar_T"]) == {"ddpm_linear"}
    code, out, _ = run_main("schedules", "--T", "10")
    assert code == 0
    header = next(line for line in out.splitlines() if line.lstrip().startswith("t "))
    assert header.split()[1:] == [*sorted(choices), "ddpm_linear"]


def _png_width(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">I", data[16:20])[0]


def test_sample_plot_draws_the_data_beside_2d_samples(folder, monkeypatch):
    monkeypatch.chdir(folder)
    base = ["sample", "--model", "run", "--sampler", "ddim", "--steps", "3", "--n", "50", "--out", "p.npy"]
    assert run_main(*base, "--plot", "alone.png")[0] == 0
    assert run_main(*base, "--plot", "beside.png", "--data", "8gaussians")[0] == 0
    assert _png_width(folder / "beside.png") > 1.7 * _png_width(folder / "alone.png")  # two panels, not one


# -- help ----------------------------------------------------------------------------------------


def test_bare_npdiff_prints_the_help_as_a_usage_error():
    # argparse's convention for a call without its required argument: status 2, the message on stderr;
    # the message is the whole help, so a newcomer sees the commands rather than an error about them
    code, out, err = run_main()
    assert code == 2 and out == ""
    assert err.startswith("usage: npdiff") and "npdiff COMMAND --help" in err
    for name in ("demo", "train", "sample", "nll", "datasets", "schedules"):
        assert f"    {name} " in err, f"{name} missing from the help: {err}"
    code, out, _ = run_main("--help")
    assert code == 0 and out.startswith("usage: npdiff")


def test_each_commands_help_lists_only_what_applies_to_it():
    commands = cli.build_parser().commands
    flags = {name: {s for a in p._actions for s in a.option_strings} for name, p in commands.items()}
    # the demo trains an unconditional model of 8gaussians with the 2d recipe: no data, model, labels or images
    assert not flags["demo"] & {"--data", "--model", "--label", "--conditional", "--p-uncond", "--split", "--draws"}
    demo = commands["demo"].format_help()
    assert "images" not in demo and "every recipe" not in demo and "(default: 512)" in demo
    train = commands["train"].format_help()
    assert "--conditional" in train
    # the digits train the U-Net without --arch: its recipe's defaults beside the MLP's, and none for the MLP's shape
    train_help = {a.option_strings[0]: a.help for a in commands["train"]._actions if a.option_strings}
    (mlp_model, mlp_train, _), (_, unet_train, _) = recipe("images"), recipe("images", arch="unet")
    steps = train_help["--steps"]
    assert f"{unet_train['steps']} (images recipe, U-Net)" in steps
    assert f"{mlp_train['steps']} (images recipe, --arch mlp)" in steps
    assert "U-Net" not in train_help["--width"] and f"{mlp_model['width']} (images recipe, --arch mlp)" in train_help["--width"]
    assert "Default: unet on image data sets, mlp on the point sets" in train_help["--arch"]
    assert not flags["sample"] & {"--width", "--lr", "--split", "--rtol"}
    assert not flags["datasets"] - {"-h", "--help", "--json"}


def test_each_steps_flag_says_what_it_counts():
    commands = cli.build_parser().commands

    def help_of(name, flag):
        return next(a.help for a in commands[name]._actions if flag in a.option_strings)

    assert help_of("demo", "--steps").startswith("optimizer steps")
    assert help_of("train", "--steps").startswith("optimizer steps")
    sample = help_of("sample", "--steps")
    assert "steps of the chain" in sample and "denoiser evaluations" in sample and "Heun steps" in sample
    assert "one denoiser evaluation each" in help_of("nll", "--T")


# -- the two likelihoods side by side ------------------------------------------------------------


@pytest.mark.parametrize("diff, se, words", [
    (0.05, 0.01, "above the exact NLL by 5.0 standard errors"),
    (-0.05, 0.01, "below the exact NLL by 5.0 standard errors"),
    (-0.005, 0.01, "within 2 standard errors of 0"),
    (0.015, 0.01, "within 2 standard errors of 0"),
    (0.3, None, "no standard error"),
    (0.3, 0.0, "above on every point"),
])
def test_the_bound_is_compared_with_the_exact_nll_by_its_paired_error(diff, se, words):
    from npdiff.cli.nll import compare_bound

    assert words in compare_bound(diff, se)


def test_nll_both_says_what_the_paired_difference_shows(folder, monkeypatch):
    monkeypatch.chdir(folder)
    code, out, err = run_main("nll", "--model", "run", "--data", "8gaussians", "--n", "16", "--method", "both", "--T",
                              "4", "--rtol", "1e-3", "--atol", "1e-3", "--json", "--save", "pair")
    r = only_json(code, out, err)
    with np.load(folder / "pair.npz") as z:
        diff = z["vlb_nats"] + z["log_p_model"]  # the bound minus the exact NLL, per point
    d, se = diff.mean(), diff.std(ddof=1) / 4.0
    assert r["vlb_minus_exact_nats"] == pytest.approx(d, rel=1e-12) and r["vlb_minus_exact_se"] == pytest.approx(se)
    line = next(x for x in err.splitlines() if x.startswith("VLB - exact NLL"))
    assert f"{d:.4f} +- {se:.4f} nats" in line
    side = "above" if d > 2 * se else "below" if d < -2 * se else "within 2 standard errors"
    assert side in line and "so above the exact gap" not in err, line
