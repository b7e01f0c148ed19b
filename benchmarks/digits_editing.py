r"""Editing the 8x8 digits: inpainting by replacement, RePaint and DPS, and SDEdit from coarse digits.

    python benchmarks/digits_editing.py                     # train the model if missing (~3 min), then both tables (~6 min)
    python benchmarks/digits_editing.py --n 50 --part inpaint     # a quick look
    python benchmarks/digits_editing.py --model run/model.npz     # another unconditional digits model

The model is the unconditional digits MLP of the default ``"images"`` recipe (:mod:`npdiff.recipes`: 48,000
steps, EMA weights), read from ``--model`` (default ``benchmarks/out/editing-digits-images-recipe/model.npz``,
trained there first with ``npdiff train --data digits --arch mlp --seed 0`` when missing). One BLAS thread.

**Inpainting** (``digits_editing.json``): the first ``--n`` (200) test digits, each with each named mask of
:func:`npdiff.edit.mask.image_mask` (the left half, the bottom half, the centre 4x4 square missing; half of the
pixels missing at random, a new draw a digit), completed once by

- replacement, ancestral (:func:`npdiff.edit.replacement_sample`, 250 steps of the 1,000-step chain,
  fixed-large variance) and on DDIM's deterministic step (``sampler="ddim"``, 50 steps);
- RePaint (:func:`npdiff.edit.repaint_sample`, 50 steps, jump length 5, 5 resamplings);
- DPS (:func:`npdiff.edit.dps_sample`, 250 steps, normalized step zeta = 0.1 and 0.3; two evaluations a step).

Scored by the fixed digit classifier (:mod:`npdiff.digit_features`): ``agree``, the share of completions it
gives the label it gives the original; ``accuracy``, the share it gives the true label; ``frechet``, the
Fréchet distance of the completions to the 360 test digits in its features, beside ``floor``, the same
distance for as many real training digits (a distance of n samples is biased upwards with n small, so the floor
is taken at the same n); ``rms_missing``, the RMS error on the missing pixels against the original;
``rms_known``, on the known ones (0 for the methods that paste them); ``nfe``, denoiser evaluations per
completion (DPS counts its eps_vjp as one); ``seconds``. Rows "masked" (missing pixels set to paper, -1) and
"original" score the inputs themselves.

**SDEdit** (``digits_sdedit.json``): the same digits made coarse by each rule of
:func:`npdiff.edit.coarse.coarse_digits` (Gaussian blur of 1 pixel, 2x2 block average, binary strokes) and
edited once by :func:`npdiff.edit.sdedit.sdedit` at each strength s (DDPM, ``round(200 s)`` steps of the chain
cut at t0 = s). Faithfulness is ``rms_coarse``, the RMS distance of the edit to its coarse input; realism is
``confidence``, the classifier's mean top probability, and ``accuracy``, the share classified as the
original's true digit; also ``rms_original``, ``frechet`` and ``bpd``, the model's own exact ODE bits/dim of the
first ``--bpd-n`` edits rounded to the levels (uniform dequantization, one draw; ``bpd_se`` its standard error).
Strength 0 is the coarse input itself.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import machine_facts, write_results  # noqa: E402

from npdiff.checkpoint import load  # noqa: E402
from npdiff.data.images import DIGITS_K, digits  # noqa: E402
from npdiff.digit_features import classify_digits, digit_classifier, digit_features, nearest_levels  # noqa: E402
from npdiff.edit import dps_sample, repaint_sample, replacement_sample  # noqa: E402
from npdiff.edit.coarse import COARSE_KINDS, coarse_digits  # noqa: E402
from npdiff.edit.mask import IMAGE_MASKS, image_mask  # noqa: E402
from npdiff.edit.sdedit import sdedit  # noqa: E402
from npdiff.likelihood.images import image_bpd  # noqa: E402
from npdiff.metrics import frechet_distance  # noqa: E402

MODEL = HERE / "out" / "editing-digits-images-recipe" / "model.npz"
STRENGTHS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
INPAINT_COLUMNS = ["mask", "method", "steps", "nfe", "agree", "accuracy", "frechet", "floor", "rms_missing",
                   "rms_known", "seconds"]
SDEDIT_COLUMNS = ["coarse", "strength", "steps", "nfe", "rms_coarse", "rms_original", "confidence", "accuracy",
                  "frechet", "floor", "bpd", "bpd_se", "seconds"]

#: (method, steps, the call): the inpainters and their settings
METHODS = [
    ("replacement", 250, lambda m, x, k, rng: replacement_sample(m, x, k, None, rng, steps=250)),
    ("replacement (DDIM)", 50, lambda m, x, k, rng: replacement_sample(m, x, k, None, rng, steps=50, sampler="ddim")),
    ("RePaint (j = 5, r = 5)", 50, lambda m, x, k, rng: repaint_sample(m, x, k, None, rng, steps=50, jump_length=5,
                                                                      resamplings=5)),
    ("DPS (zeta = 0.1)", 250, lambda m, x, k, rng: dps_sample(m, x, k, None, rng, steps=250, scale=0.1)),
    ("DPS (zeta = 0.3)", 250, lambda m, x, k, rng: dps_sample(m, x, k, None, rng, steps=250, scale=0.3)),
]


def frechet_and_floor(x: np.ndarray, floor_cache: dict) -> tuple[float, float]:
    r"""Fréchet distance of x (n, 64), rounded to the levels, to the test digits; the floor at the same n."""
    d = digits()
    test = digit_features(d.test)
    n = x.shape[0]
    if n not in floor_cache:
        floor_cache[n] = frechet_distance(digit_features(d.train[:n]), test)
    return frechet_distance(digit_features(nearest_levels(x)), test), floor_cache[n]


def rms(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    diff = (a - b) ** 2
    return float(np.sqrt(diff[where].mean() if where is not None else diff.mean()))


def run_inpaint(model, x: np.ndarray, labels: np.ndarray, seed: int) -> list[dict]:
    floors: dict = {}
    ref = classify_digits(x)  # (n,) the classifier's labels of the originals
    fd, floor = frechet_and_floor(x, floors)
    rows = [{"mask": None, "method": "original", "steps": None, "nfe": None, "agree": 1.0,
             "accuracy": float(np.mean(ref == labels)), "frechet": fd, "floor": floor, "rms_missing": 0.0,
             "rms_known": 0.0, "seconds": None}]
    for name in IMAGE_MASKS:
        mask = image_mask(name, np.random.default_rng(seed), n=x.shape[0])  # (n, 64) True where known
        masked = np.where(mask, x, -1.0)
        fd, floor = frechet_and_floor(masked, floors)
        rows.append({"mask": name, "method": "masked", "steps": None, "nfe": None,
                     "agree": float(np.mean(classify_digits(masked) == ref)),
                     "accuracy": float(np.mean(classify_digits(masked) == labels)), "frechet": fd, "floor": floor,
                     "rms_missing": rms(masked, x, ~mask), "rms_known": 0.0, "seconds": None})
        for method, steps, call in METHODS:
            t0 = time.perf_counter()
            res = call(model, x, mask, np.random.default_rng(seed + 1))
            seconds = time.perf_counter() - t0
            fd, floor = frechet_and_floor(res.x, floors)
            row = {"mask": name, "method": method, "steps": steps, "nfe": int(res.nfe),
                   "agree": float(np.mean(classify_digits(res.x) == ref)),
                   "accuracy": float(np.mean(classify_digits(res.x) == labels)), "frechet": fd, "floor": floor,
                   "rms_missing": rms(res.x, x, ~mask), "rms_known": rms(res.x, x, mask), "seconds": round(seconds, 1)}
            print(f"{name:7s} {method:24s} agree {row['agree']:.3f} accuracy {row['accuracy']:.3f} Frechet {fd:.2f} "
                  f"(floor {floor:.2f}) rms missing {row['rms_missing']:.3f} known {row['rms_known']:.3f} "
                  f"nfe {res.nfe} {seconds:.1f} s", flush=True)
            rows.append(row)
    return rows


def confidence(x: np.ndarray) -> float:
    r"""The classifier's mean top class probability on x rounded to the levels."""
    p = digit_classifier().estimator.predict_proba(nearest_levels(x))  # (n, 10)
    return float(p.max(axis=1).mean())


def model_bpd(model, x: np.ndarray, n: int, seed: int) -> tuple[float, float]:
    r"""The model's own exact ODE bits/dim (uniform dequantization, one draw) of the first n of x rounded to the levels:
    realism as the model sees it, the mean and its standard error."""
    bpd = image_bpd(model, nearest_levels(x[:n]), DIGITS_K, np.random.default_rng(seed + 3), method="ode").ode.bpd
    return float(np.mean(bpd)), float(np.std(bpd, ddof=1) / np.sqrt(bpd.size))


def run_sdedit(model, x: np.ndarray, labels: np.ndarray, seed: int, steps: int, bpd_n: int) -> list[dict]:
    floors: dict = {}
    rows = []
    for kind in COARSE_KINDS:
        coarse = coarse_digits(x, kind)  # (n, 64)
        fd, floor = frechet_and_floor(coarse, floors)
        rows.append({"coarse": kind, "strength": 0.0, "steps": 0, "nfe": 0, "rms_coarse": 0.0,
                     "rms_original": rms(coarse, x), "confidence": confidence(coarse),
                     "accuracy": float(np.mean(classify_digits(coarse) == labels)), "frechet": fd, "floor": floor,
                     **dict(zip(("bpd", "bpd_se"), model_bpd(model, coarse, bpd_n, seed))), "seconds": None})
        for s in STRENGTHS:
            t0 = time.perf_counter()
            res = sdedit(model, coarse, np.random.default_rng(seed + 2), strength=s, sampler="ddpm", steps=steps)
            seconds = time.perf_counter() - t0
            fd, floor = frechet_and_floor(res.x, floors)
            row = {"coarse": kind, "strength": s, "steps": max(1, round(s * steps)), "nfe": int(res.nfe),
                   "rms_coarse": rms(res.x, coarse), "rms_original": rms(res.x, x), "confidence": confidence(res.x),
                   "accuracy": float(np.mean(classify_digits(res.x) == labels)), "frechet": fd, "floor": floor,
                   **dict(zip(("bpd", "bpd_se"), model_bpd(model, res.x, bpd_n, seed))), "seconds": round(seconds, 1)}
            print(f"{kind:8s} s={s:<4g} rms to coarse {row['rms_coarse']:.3f} to original {row['rms_original']:.3f} "
                  f"confidence {row['confidence']:.3f} accuracy {row['accuracy']:.3f} Frechet {fd:.2f} "
                  f"bits/dim {row['bpd']:.3f} {seconds:.1f} s",
                  flush=True)
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--n", type=int, default=200, help="the first n test digits")
    ap.add_argument("--part", choices=("inpaint", "sdedit", "both"), default="both")
    ap.add_argument("--sdedit-steps", dest="sdedit_steps", type=int, default=200,
                    help="DDPM steps of a full-strength edit (an edit of strength s takes round(s * steps))")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bpd-n", dest="bpd_n", type=int, default=30,
                    help="SDEdit: the model's exact ODE bits/dim of the first n edits of each row")
    args = ap.parse_args(argv)
    if not args.model.exists():
        if args.model != MODEL:
            raise SystemExit(f"--model {args.model} does not exist")
        print(f"training the images recipe into {MODEL.parent} ...", flush=True)
        subprocess.run([sys.executable, "-m", "npdiff", "train", "--data", "digits", "--arch", "mlp", "--seed", "0", "--out",
                        str(MODEL.parent)], check=True, cwd=HERE.parent)
    print(machine_facts(), flush=True)
    model = load(args.model).denoiser(ema=True)
    d = digits()
    x, labels = d.test[: args.n], d.test_labels[: args.n]
    notes = {"model": "unconditional digits MLP, the images recipe (48,000 steps, seed 0), EMA weights",
             "digits": f"the first {x.shape[0]} test digits", "seed": args.seed,
             "classifier": "npdiff.digit_features (scikit-learn MLPClassifier, 64 hidden units)",
             "floor": "Frechet distance of as many real training digits to the 360 test digits"}
    if args.part in ("inpaint", "both"):
        rows = run_inpaint(model, x, labels, args.seed)
        write_results("digits_editing", rows, columns=INPAINT_COLUMNS,
                      notes={**notes, "masks": "named by the part missing; random: half the pixels, a draw a digit",
                             "chain": "vp_linear, T = 1000 respaced, fixed-large variance (DDPM)",
                             "nfe": "denoiser evaluations per completion; DPS counts eps and eps_vjp as two"})
    if args.part in ("sdedit", "both"):
        rows = run_sdedit(model, x, labels, args.seed, args.sdedit_steps, args.bpd_n)
        write_results("digits_sdedit", rows, columns=SDEDIT_COLUMNS,
                      notes={**notes, "sampler": f"DDPM, round({args.sdedit_steps} s) steps of the chain cut at t0",
                             "coarse": "npdiff.edit.coarse: blur sigma 1 px, 2x2 block average, binary strokes",
                             "bpd": f"exact ODE bits/dim by the model of the first {args.bpd_n} edits on the levels, "
                                    "uniform dequantization, S = 1"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
