"""Small images: the digits loader and its split, the baselines quoted beside them, the IDX reader, the
figures, and a quick digits training scored by both likelihoods from the command line (the bits/dim
functions themselves: tests/test_likelihood_images.py)."""

import gzip
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from npdiff.data import images
from npdiff.data.images import DIGITS_BASELINES, DIGITS_K, digits, digits_split, read_idx, write_idx
from npdiff.schedule import vp_linear

PNG = b"\x89PNG\r\n\x1a\n"
UNIFORM_BPD = np.log2(17)  # 4.087: every one of the 17 levels equally likely


# -- the digits ----------------------------------------------------------------------------------


def test_digits_are_sklearns_images_on_17_levels_with_the_documented_split():
    # independent path: scikit-learn's own loader and the split written out as the docs state it
    from sklearn.datasets import load_digits

    bunch = load_digits()
    perm = np.random.default_rng(0).permutation(1797)
    d = digits()
    assert d.train.shape == (1437, 64) and d.test.shape == (360, 64) and d.dim == 64 and d.shape == (8, 8)
    assert d.K == DIGITS_K == 17
    np.testing.assert_array_equal(d.train, 2.0 * bunch.data[perm[:1437]] / 16.0 - 1.0)
    np.testing.assert_array_equal(d.test, 2.0 * bunch.data[perm[1437:]] / 16.0 - 1.0)
    np.testing.assert_array_equal(d.train_labels, bunch.target[perm[:1437]])
    np.testing.assert_array_equal(d.test_labels, bunch.target[perm[1437:]])
    # every value is one of the 17 levels 2v/16 - 1, and both ends are used
    levels = (d.test + 1.0) * 8.0
    np.testing.assert_array_equal(levels, np.round(levels))
    assert d.train.min() == -1.0 and d.train.max() == 1.0


def test_split_is_a_deterministic_partition():
    train, test = digits_split()
    train2, test2 = digits_split()
    np.testing.assert_array_equal(train, train2)
    np.testing.assert_array_equal(test, test2)
    assert len(train) == 1437 and len(test) == 360
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    a, b = digits(), digits()
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.test, b.test)


def test_the_baselines_that_need_no_fitting_loop_match_their_quoted_figures():
    # recomputed here from the data as DIGITS_BASELINES's docstring describes them, on the test split
    d = digits()
    assert DIGITS_BASELINES["uniform over 17 levels"] == round(np.log2(17), 3)
    v_train = np.round((d.train + 1.0) * 8.0).astype(int)  # (1437, 64) levels
    v_test = np.round((d.test + 1.0) * 8.0).astype(int)
    counts = np.stack([np.bincount(v_train[:, j], minlength=17) for j in range(64)])  # (64, 17)
    log_p = np.log((counts + 1.0) / (1437 + 17))
    categorical = -log_p[np.arange(64), v_test].sum(axis=1).mean() / (64 * np.log(2.0))
    assert abs(categorical - DIGITS_BASELINES["independent per-pixel categorical"]) < 5e-4, categorical
    # full-covariance Gaussian, maximum likelihood on dequantized training images, one draw of each split
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    fit = d.train + rng.uniform(-1 / 16, 1 / 16, d.train.shape)
    xd = d.test + rng.uniform(-1 / 16, 1 / 16, d.test.shape)
    log_p = multivariate_normal(fit.mean(0), np.cov(fit, rowvar=False, bias=True)).logpdf(xd)
    gaussian = -(log_p + 64 * np.log(2 / 16)).mean() / (64 * np.log(2.0))
    # the quoted figure is one draw too (2.949 in expectation over the draws, tutorial 6)
    assert abs(gaussian - DIGITS_BASELINES["full-covariance Gaussian (dequantized)"]) < 5e-3, gaussian
    # the mixtures must beat the single models they mix
    assert DIGITS_BASELINES["mixture of 10 Gaussians"] < DIGITS_BASELINES["full-covariance Gaussian (dequantized)"]
    assert (DIGITS_BASELINES["mixture of 10-40 per-pixel categoricals"]
            < DIGITS_BASELINES["independent per-pixel categorical"])


def test_samplers_draw_training_images_and_dequantize_within_a_bin():
    d = digits()
    x = d.sample(500, np.random.default_rng(0))
    train_rows = {r.tobytes() for r in d.train}
    assert all(r.tobytes() in train_rows for r in x), "sample() must return rows of the train split"
    xd = d.sample_dequantized(500, np.random.default_rng(0))
    # same generator state for the rows, then U(-1/16, 1/16) noise: the nearest level is the original pixel
    np.testing.assert_array_equal(np.round((xd + 1.0) * 8.0), (x + 1.0) * 8.0)
    assert np.abs(xd - x).max() <= 1.0 / 16.0 and np.abs(xd - x).min() > 0.0
    with pytest.raises(ValueError, match="split"):
        d.split("validation")


def test_missing_scikit_learn_raises_an_error_naming_the_extra(monkeypatch):
    images._digits_table.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn", None)  # what `import sklearn` sees when it is not installed
    try:
        with pytest.raises(ImportError, match=r"npdiff\[images\]"):
            digits()
    finally:
        images._digits_table.cache_clear()


def test_cli_without_scikit_learn_is_one_line():
    code = ("import sys; sys.modules['sklearn'] = None; from npdiff.cli import main; "
            "sys.exit(main(['nll', '--model', 'nothing.npz', '--data', 'digits']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "npdiff[images]" in lines[0], proc.stderr


# -- IDX ------------------------------------------------------------------------------------------


def _idx_bytes(arr, code, fmt):
    # written here from the format's definition (LeCun et al.), not by npdiff
    head = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", n) for n in arr.shape)
    return head + b"".join(struct.pack(fmt, v) for v in arr.ravel().tolist())


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_reads_an_mnist_style_file_written_by_hand(tmp_path, gz):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(3, 5, 4)).astype(np.uint8)  # like MNIST's (N, 28, 28) uint8
    raw = _idx_bytes(imgs, 0x08, ">B")
    path = tmp_path / ("imgs.idx.gz" if gz else "imgs-idx3-ubyte")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    got = read_idx(path)
    assert got.dtype == np.uint8 and got.shape == (3, 5, 4)
    np.testing.assert_array_equal(got, imgs)
    labels = np.array([7, 0, 255], dtype=np.uint8)
    (tmp_path / "labels.idx").write_bytes(_idx_bytes(labels, 0x08, ">B"))
    np.testing.assert_array_equal(read_idx(tmp_path / "labels.idx"), labels)


@pytest.mark.parametrize("dtype, code, fmt", [(np.int8, 0x09, ">b"), (np.int16, 0x0B, ">h"), (np.int32, 0x0C, ">i"),
                                              (np.float32, 0x0D, ">f"), (np.float64, 0x0E, ">d")])
def test_write_idx_matches_the_format_and_round_trips(tmp_path, dtype, code, fmt):
    arr = (np.arange(-6, 6).reshape(2, 6) * 3).astype(dtype)
    path = write_idx(tmp_path / "a.idx", arr)
    assert path.read_bytes() == _idx_bytes(arr, code, fmt)
    write_idx(tmp_path / "a.idx.gz", arr)
    assert gzip.decompress((tmp_path / "a.idx.gz").read_bytes()) == _idx_bytes(arr, code, fmt)
    for p in (tmp_path / "a.idx", tmp_path / "a.idx.gz"):
        back = read_idx(p)
        assert back.dtype == np.dtype(dtype) and back.dtype.isnative
        np.testing.assert_array_equal(back, arr, err_msg=str(p))


def test_read_idx_rejects_broken_files_naming_them(tmp_path):
    good = _idx_bytes(np.zeros((2, 3), np.uint8), 0x08, ">B")
    cases = {"short.idx": good[:-1], "magic.idx": b"\x01" + good[1:], "type.idx": good[:2] + b"\x07" + good[3:],
             "header.idx": good[:6], "gz.idx.gz": gzip.compress(good)[:-8]}
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            read_idx(tmp_path / name)
    with pytest.raises(TypeError, match="IDX dtype"):
        write_idx(tmp_path / "b.idx", np.zeros(3, np.uint16))


# -- figures ----------------------------------------------------------------------------------------


def test_image_figures_write_pngs(tmp_path):
    from npdiff.plot import plot_image_grid, plot_reverse_process, plot_vlb_terms

    d = digits()
    plot_image_grid(d.test[:30] + 0.1, d.test[30:60], tmp_path / "grid.png")
    plot_image_grid(d.test[:7], None, tmp_path / "grid1.png", cols=5)
    terms = np.concatenate([[0.8], np.linspace(0.3, 1e-4, 48), [1e-6]])
    plot_vlb_terms(terms, tmp_path / "terms.png")
    traj = np.linspace(np.random.default_rng(0).standard_normal(64), d.test[0], 21)  # (21, 64)
    plot_reverse_process(traj, np.linspace(1.0, 0.0, 21), tmp_path / "reverse.png")
    for name in ("grid.png", "grid1.png", "terms.png", "reverse.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG, name


# -- a quick training, end to end through the command line ----------------------------------------------


def _run(*args, cwd):
    # one BLAS thread: at batch 128 x 128 units OpenBLAS's second thread only waits, and with a neighbour on
    # the other core it made this training 100 times slower (4 instead of 490 steps/s, measured)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "npdiff", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def test_quick_digits_training_scores_below_the_uniform_baseline_by_both_estimators(tmp_path):
    code, out, err = _run("train", "--data", "digits", "--arch", "mlp", "--steps", "1500", "--width", "128", "--out", "run",
                          "--json", cwd=tmp_path)
    assert code == 0, err
    code, out, err = _run("nll", "--model", "run/model.npz", "--data", "digits", "--method", "both", "--n", "12",
                          "--json", cwd=tmp_path)
    assert code == 0, err
    r = json.loads(out.strip().splitlines()[-1])
    assert r["data"] == "digits" and r["split"] == "test" and r["n"] == 12 and r["K"] == 17 and r["D"] == 64
    assert r["ode_diverged"] == 0 and r["vlb_diverged"] == 0
    for key in ("bpd_ode", "bpd_vlb"):
        assert np.isfinite(r[key]) and 1.0 < r[key] < UNIFORM_BPD, (key, r[key])
    assert "bits/dim" in err and "diverged" not in err, err
    print(f"quick digits model: ODE {r['bpd_ode']:.3f}, VLB {r['bpd_vlb']:.3f} bits/dim")


def test_cli_refuses_a_model_of_other_dimensions_in_one_line(tmp_path):
    from npdiff.checkpoint import save
    from npdiff.nn import MLPConfig
    from npdiff.nn.model import DiffusionMLP

    toy = DiffusionMLP(MLPConfig(dim=2, width=8, depth=1), vp_linear(), rng=np.random.default_rng(0))
    save(tmp_path / "toy.npz", toy)
    code, _, err = _run("nll", "--model", "toy.npz", "--data", "digits", cwd=tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "64-D" in err, err
    code, _, err = _run("nll", "--model", "toy.npz", "--data", "mnist", cwd=tmp_path)
    assert code == 2 and "digits" in err and len(err.strip().splitlines()) == 1, err


def test_a_diverged_summary_is_printed_as_diverged(capsys):
    from npdiff.cli.nll import report_image_nll

    r = {"n": 6, "K": 17, "ode_diverged": 2, "bpd_ode": None, "bpd_ode_finite": 2.5, "bpd_ode_se": 0.1,
         "vlb_diverged": 0, "bpd_vlb": 2.75, "bpd_vlb_se": 0.05, "vlb_T": 50, "vlb_variance": "large"}
    report_image_nll(r, "test-split")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "exact ODE likelihood: diverged on 2 of 6 test-split images (the other 4: 2.5000)", err
    assert err[1].startswith("VLB (T = 50, large variance, decoder with 17 levels): 2.7500 +- 0.0500 bits/dim"), err
    r = {"n": 1, "K": 17, "ode_diverged": 0, "bpd_ode": 2.5, "bpd_ode_finite": 2.5, "bpd_ode_se": None}
    report_image_nll(r, "test-split")  # one image: no standard error, and no crash formatting it
    assert capsys.readouterr().err.startswith("exact ODE likelihood (uniform dequantization, exact trace): 2.5000 bits/dim")


def test_every_flipped_byte_of_a_gzipped_idx_is_a_clear_error_or_the_same_images(tmp_path):
    # a damaged deflate stream raises zlib.error deep in gzip ("invalid distance too far back"): it must
    # reach the user as the reader's ValueError naming the file, whichever byte is damaged
    path = tmp_path / "a.idx.gz"
    data = np.tile(np.arange(64, dtype=np.uint8), (200, 1)).reshape(200, 8, 8)  # compressible, like digits
    write_idx(path, data)
    raw = path.read_bytes()
    for i in range(10, len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0xFF
        (tmp_path / "b.idx.gz").write_bytes(bytes(bad))
        try:
            out = read_idx(tmp_path / "b.idx.gz")
        except ValueError as exc:
            assert "b.idx.gz" in str(exc), f"byte {i}: {exc}"
        else:
            assert out.shape == data.shape, f"byte {i} gave shape {out.shape}"
