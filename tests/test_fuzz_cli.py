"""Fuzzing the command line: every bad argument is exit status 2 and one line on stderr, never a traceback.

Numbers outside each flag's domain (zero, negative, NaN, infinite, huge, not a number) are drawn
by hypothesis per flag; unknown names, missing, empty, truncated, corrupted, pickled and foreign
model files and a model of another dimension are listed. ``npdiff.cli.main`` runs in-process;
two cases go through ``python -m npdiff`` to show the real entry point behaves the same. Every
case fails before any training or sampling starts, so each takes milliseconds.
"""

import contextlib
import io
import pickle
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npdiff import cli
from npdiff.checkpoint import save
from npdiff.nn import MLPConfig
from npdiff.nn.context_mlp import ContextMLP, ContextMLPConfig
from npdiff.nn.model import DiffusionMLP
from npdiff.schedule import vp_linear


def run_main(argv):
    """(exit status, stdout, stderr) of cli.main(argv) in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in argv])  # paths and numbers as the shell would pass them
        except SystemExit as exc:  # argparse's errors
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(argv, code, err, *words):
    assert code == 2, f"{argv}: exit status {code}, stderr {err!r}"
    assert "Traceback" not in err, f"{argv}: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("npdiff"), f"{argv}: stderr is not one line: {err!r}"
    for w in words:
        assert w in lines[0], f"{argv}: {w!r} not in {lines[0]!r}"


def one_line_error(argv, *words):
    """Run argv and check it fails with one line on stderr holding every word."""
    code, _, err = run_main(argv)
    assert_one_line_error(argv, code, err, *words)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Model files, good and bad, in one folder; returns the folder."""
    d = tmp_path_factory.mktemp("cli_fuzz")
    rng = np.random.default_rng(0)
    good = save(d / "good.npz", DiffusionMLP(MLPConfig(width=8, depth=1, emb_dim=8), vp_linear(), rng=rng))
    save(d / "m3.npz", DiffusionMLP(MLPConfig(dim=3, width=8, depth=1, emb_dim=8), vp_linear(), rng=rng))
    save(d / "sr.npz", ContextMLP(ContextMLPConfig(width=8, depth=1, emb_dim=4), vp_linear(), rng=rng))
    data = good.read_bytes()
    (d / "truncated.npz").write_bytes(data[: len(data) // 2])
    (d / "empty.npz").write_bytes(b"")
    (d / "garbage.npz").write_bytes(b"this is not a checkpoint")
    (d / "pickled.npz").write_bytes(pickle.dumps({"params": [1.0, 2.0]}))
    np.save(d / "single.npy", np.zeros(3))
    corrupt = bytearray(data)
    i = corrupt.index(b"params.npy") + 120
    corrupt[i:i + 16] = b"\xff" * 16
    (d / "corrupt.npz").write_bytes(bytes(corrupt))
    with np.load(good) as z:
        arrays = dict(z)
    np.savez(d / "nan.npz", **{**arrays, "params": np.full_like(arrays["params"], np.nan)})
    (d / "folder.npz").mkdir()
    return d


# -- numbers outside every flag's domain ----------------------------------------------------------------

_NOT_A_NUMBER = st.sampled_from(["", "abc", "1,5", "--", "0x10", "1e", "nan%", "None"])


def _bad_positive_int(maximum):
    return st.one_of(st.integers(max_value=0).map(str), st.integers(maximum + 1, 10**30).map(str),
                     st.sampled_from(["nan", "inf", "-inf", "1.5", "1e3", "1e400"]), _NOT_A_NUMBER)


def _bad_positive_float(maximum):
    return st.one_of(st.floats(max_value=0.0, allow_nan=False).map(repr),
                     st.floats(min_value=maximum, exclude_min=True, allow_infinity=False).map(repr),
                     st.sampled_from(["nan", "inf", "-inf", "1e400", "-1e-400"]), _NOT_A_NUMBER)


def _bad_unit(hi_open):
    bad_high = st.floats(min_value=1.0, exclude_min=not hi_open, allow_infinity=False).map(repr)
    return st.one_of(st.floats(max_value=0.0, exclude_max=True, allow_nan=False).map(repr), bad_high,
                     st.sampled_from(["nan", "inf", "-inf"]), _NOT_A_NUMBER)


_TRAIN = ["train", "--data", "moons", "--out", "run"]
_SAMPLE = ["sample", "--model", "good.npz", "--out", "s.npy"]
_NLL = ["nll", "--model", "good.npz", "--data", "moons"]
_LATENT = ["train", "--data", "digits", "--latent", "--out", "run"]
_UPSAMPLE = ["upsample", "--model", "sr.npz", "--image-index", "0", "--out", "u.npy"]
_INPAINT = ["inpaint", "--model", "good.npz", "--image-index", "0", "--out", "s.npy"]
_IMG2IMG = ["img2img", "--model", "good.npz", "--image-index", "0", "--out", "s.npy"]
FLAGS = [
    (["inpaint", "--model", "good.npz", "--out", "s.npy"], "--image-index",
     st.one_of(st.integers(max_value=-1).map(str), st.integers(360, 10**30).map(str), st.sampled_from(["1.5", "nan", "inf"]),
               _NOT_A_NUMBER)),
    (_INPAINT, "--n", _bad_positive_int(cli.MAX_POINTS)),
    (_INPAINT, "--steps", _bad_positive_int(cli.MAX_T)),
    (_INPAINT, "--resamplings", _bad_positive_int(1000)),
    (_IMG2IMG, "--strength", _bad_unit(hi_open=False)),
    (_IMG2IMG, "--steps", _bad_positive_int(cli.MAX_T)),
    (_TRAIN, "--steps", _bad_positive_int(cli.MAX_STEPS)),
    (_TRAIN, "--batch-size", _bad_positive_int(cli.MAX_BATCH)),
    (_TRAIN, "--width", _bad_positive_int(cli.MAX_WIDTH)),
    (_TRAIN, "--depth", st.one_of(st.integers(max_value=-1).map(str), st.integers(cli.MAX_DEPTH + 1, 10**30).map(str),
                                  _NOT_A_NUMBER)),
    (_TRAIN, "--lr", _bad_positive_float(1.0)),
    (_TRAIN, "--weight-decay", _bad_unit(hi_open=False)),
    (_TRAIN, "--ema-decay", _bad_unit(hi_open=True)),
    (_TRAIN, "--log-snr-fraction", _bad_unit(hi_open=False)),
    (_TRAIN, "--seed", st.one_of(st.integers(max_value=-1).map(str), st.sampled_from(["1.5", "nan"]), _NOT_A_NUMBER)),
    (["demo", "--out", "d"], "--n", _bad_positive_int(cli.MAX_POINTS)),
    (["demo", "--out", "d"], "--grid", _bad_positive_int(1000)),
    (_SAMPLE, "--n", _bad_positive_int(cli.MAX_POINTS)),
    (_SAMPLE, "--steps", _bad_positive_int(cli.MAX_T)),
    (_SAMPLE, "--seed", st.integers(max_value=-1).map(str)),
    (_NLL, "--n", _bad_positive_int(cli.MAX_POINTS)),
    (_NLL, "--T", _bad_positive_int(cli.MAX_T)),
    (_NLL, "--draws", _bad_positive_int(1000)),
    (_NLL, "--rtol", _bad_positive_float(0.1)),
    (_NLL, "--atol", _bad_positive_float(0.1)),
    (["schedules"], "--T", _bad_positive_int(cli.MAX_T)),
    (_TRAIN, "--p-uncond", _bad_unit(hi_open=False)),
    (_SAMPLE, "--label", st.one_of(st.integers(max_value=-1).map(str), st.integers(cli.MAX_CLASSES + 1, 10**30).map(str),
                                   st.sampled_from(["1.5", "nan", "inf"]), _NOT_A_NUMBER)),
    (_SAMPLE, "--guidance", st.one_of(st.floats(max_value=0.0, exclude_max=True, allow_nan=False).map(repr),
                                      st.floats(min_value=100.0, exclude_min=True, allow_infinity=False).map(repr),
                                      st.sampled_from(["nan", "inf", "-inf"]), _NOT_A_NUMBER)),
    (_NLL, "--label", st.one_of(st.integers(max_value=-1).map(str), st.sampled_from(["1.5", "nan"]), _NOT_A_NUMBER)),
    (_LATENT, "--latent-dim", st.one_of(st.integers(max_value=1).map(str), st.integers(33, 10**30).map(str),
                                        st.sampled_from(["1.5", "nan", "inf"]), _NOT_A_NUMBER)),
    (_LATENT, "--beta", st.one_of(st.floats(max_value=0.0, allow_nan=False).map(repr),
                                  st.floats(min_value=1e6, exclude_min=True, allow_infinity=False).map(repr),
                                  st.sampled_from(["nan", "inf", "-inf"]), _NOT_A_NUMBER)),
    (_LATENT, "--ae-steps", _bad_positive_int(cli.MAX_STEPS)),
    (_UPSAMPLE, "--n", _bad_positive_int(cli.MAX_POINTS)),
    (_UPSAMPLE, "--steps", _bad_positive_int(1000)),
    (_UPSAMPLE, "--aug-level", st.one_of(st.floats(max_value=0.0, exclude_max=True, allow_nan=False).map(repr),
                                         st.floats(min_value=1.0, exclude_min=True, allow_infinity=False).map(repr),
                                         st.sampled_from(["nan", "inf", "-inf"]), _NOT_A_NUMBER)),
    (_UPSAMPLE, "--image-index", st.one_of(st.integers(max_value=-1).map(str), st.sampled_from(["1.5", "nan"]),
                                           _NOT_A_NUMBER)),
]


@pytest.mark.parametrize("base, flag, values", FLAGS, ids=[f"{b[0]}{f}" for b, f, _ in FLAGS])
def test_numbers_outside_a_flags_domain_are_one_line_errors(files, monkeypatch, base, flag, values):
    monkeypatch.chdir(files)

    @settings(max_examples=12, deadline=None, derandomize=True)
    @given(value=values)
    def check(value):
        argv = [*base, f"{flag}={value}"]  # '=' so that values starting with '-' stay values
        code, _, err = run_main(argv)
        assert_one_line_error(argv, code, err, flag)

    check()


# -- names and files -------------------------------------------------------------------------------------

CASES = [
    (["train", "--data", "nope", "--out", "run"], "unknown data set 'nope'"),
    (["train", "--data", "", "--out", "run"], "unknown data set"),
    (["train", "--data", "moons", "--out", "run", "--schedule", "exotic"], "invalid choice"),
    (["train", "--data", "moons", "--out", "run", "--activation", "relu"], "invalid choice"),
    (["train", "--data", "moons", "--out", "run", "--parameterization", "score"], "invalid choice"),
    (["train", "--data", "moons", "--out", "run", "--lr-schedule", "linear"], "invalid choice"),
    (["train", "--data", "moons"], "required"),
    (["train", "--data", "moons", "--out", "run", "--no-such-flag"], "unrecognized"),
    (["sample", "--model", "good.npz", "--out", "s.npy", "--sampler", "rk4"], "invalid choice"),
    (["nll", "--model", "good.npz", "--data", "moons", "--method", "exact"], "invalid choice"),
    (["nll", "--model", "good.npz", "--data", "digits", "--split", "valid"], "invalid choice"),
    (["nll", "--model", "good.npz", "--data", "moons", "--variance", "medium"], "invalid choice"),
    (["fit"], "invalid choice"),
    (["nll", "--model", "missing.npz", "--data", "moons"], "does not exist"),
    (["sample", "--model", "missing.npz", "--out", "s.npy"], "does not exist"),
    (["sample", "--model", "empty.npz", "--out", "s.npy"], "not a valid npdiff checkpoint"),
    (["sample", "--model", "garbage.npz", "--out", "s.npy"], "not a valid npdiff checkpoint"),
    (["sample", "--model", "truncated.npz", "--out", "s.npy"], "not a valid npdiff checkpoint"),
    (["nll", "--model", "corrupt.npz", "--data", "moons"], "not a valid npdiff checkpoint"),
    (["nll", "--model", "pickled.npz", "--data", "moons"], "pickle"),
    (["nll", "--model", "single.npy", "--data", "moons"], "single array"),
    (["nll", "--model", "nan.npz", "--data", "moons"], "NaN"),
    (["nll", "--model", "folder.npz", "--data", "moons"], "folder.npz"),
    (["nll", "--model", "m3.npz", "--data", "moons"], "trained on 3-D data"),
    (["nll", "--model", "good.npz", "--data", "digits"], "trained on 2-D data"),
    (["sample", "--model", "m3.npz", "--data", "moons", "--out", "s.npy"], "trained on 3-D data"),
    (["sample", "--model", "good.npz", "--sampler", "ddpm", "--steps", "5000", "--out", "s.npy"], "steps"),
    # outputs that cannot be written are refused before the work that would fill them
    (["sample", "--model", "good.npz", "--out", "no/such/dir/s.npy", "--n", "2", "--steps", "2"], "no/such/dir"),
    (["sample", "--model", "good.npz", "--out", "folder.npz", "--n", "2", "--steps", "2"], "is a folder"),
    (["sample", "--model", "good.npz", "--out", "s.npy", "--plot", "good.npz/p.png", "--n", "2"], "--plot"),
    (["nll", "--model", "good.npz", "--data", "moons", "--out", "no/dir/ll.npz"], "--out"),
    (["nll", "--model", "good.npz", "--data", "moons", "--save", "no/dir/ll.npz"], "no/dir"),  # --out's old name
    (["train", "--data", "moons", "--out", "good.npz/run", "--steps", "2"], "not a writable folder"),
    (["demo", "--out", "good.npz", "--steps", "2"], "not a writable folder"),
    (["schedules", "--plot", "missing/s.png"], "--plot"),
    (["upsample", "--model", "good.npz", "--image-index", "0", "--out", "u.npy"], "not a super-resolution model"),
    (["upsample", "--model", "missing.npz", "--image-index", "0", "--out", "u.npy"], "does not exist"),
    (["upsample", "--model", "sr.npz", "--image-index", "360", "--out", "u.npy"], "--image-index must be in 0..359"),
    (["upsample", "--model", "sr.npz", "--image-index", "0", "--out", "no/dir/u.npy"], "no/dir"),
    (["upsample", "--model", "sr.npz", "--image-index", "0", "--out", "u.npy", "--figure", "no/f.png"], "--figure"),
    (["upsample", "--model", "sr.npz", "--out", "u.npy"], "required"),
    # prompts: a model without prompts, and the prompt model's data set
    (["sample", "--model", "good.npz", "--out", "s.npy", "--prompt", "seven"], "--prompt needs a prompt model"),
    (["train", "--data", "moons", "--out", "run", "--arch", "prompt_mlp"], "--arch prompt_mlp"),
    # the digits train the U-Net without --arch: an MLP flag there names itself and --arch mlp, never switches networks
    (["train", "--data", "digits", "--out", "run", "--width", "64"], "--arch mlp"),
    (["train", "--data", "digits", "--out", "run", "--coord-scale", "4", "--depth", "2"], "--depth, --coord-scale"),
    (["train", "--data", "digits", "--out", "run", "--arch", "unet", "--activation", "silu"], "--activation"),
    (["train", "--data", "moons", "--out", "run", "--base-width", "8"], "--base-width"),
    # argparse would drop a value '--' and leave the flag at its default (then train for real)
    (["train", "--data", "moons", "--out", "run", "--steps=--"], "--steps"),
    ([*_LATENT, "--latent-dim=--"], "--latent-dim"),
    # latent diffusion: the digits and the MLP only, no pixel-only flag, the autoencoder's flags with --latent only
    (["train", "--data", "moons", "--out", "run", "--latent"], "--latent needs an image data set"),
    ([*_LATENT, "--arch", "unet"], "--arch unet"),
    ([*_LATENT, "--coords", "raw"], "--coords"),
    ([*_LATENT, "--conditional"], "--conditional"),
    (["train", "--data", "digits", "--out", "run", "--beta", "0.1"], "--beta"),
    ([*_INPAINT, "--mask", "right"], "invalid choice"),
    ([*_INPAINT, "--method", "sdedit"], "invalid choice"),
    ([*_IMG2IMG, "--coarse", "sketch"], "invalid choice"),
    ([*_IMG2IMG, "--strength", "0"], "--strength"),
    (_INPAINT, "2-D model"),  # the digits commands refuse a model of the 2-D sets
    (_IMG2IMG, "2-D model"),
    (["inpaint", "--model", "m3.npz", "--image-index", "0", "--out", "s.npy"], "3-D model"),
    (["img2img", "--model", "good.npz", "--image-index", "0", "--out", "no/dir/s.npy"], "no/dir"),
]


@pytest.mark.parametrize("argv, words", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_unknown_names_and_bad_model_files_are_one_line_errors(files, monkeypatch, argv, words):
    monkeypatch.chdir(files)
    code, _, err = run_main(argv)
    assert_one_line_error(argv, code, err, words)


@pytest.mark.parametrize("argv, words", [
    (["train", "--data", "moons", "--out", "run", "--steps", "1e99"], "--steps"),
    (["sample", "--model", "truncated.npz", "--out", "s.npy"], "not a valid npdiff checkpoint"),
])
def test_the_console_entry_point_behaves_the_same(files, argv, words):
    proc = subprocess.run([sys.executable, "-m", "npdiff", *argv], cwd=files, capture_output=True, text=True, timeout=120)
    assert_one_line_error(argv, proc.returncode, proc.stderr, words)
