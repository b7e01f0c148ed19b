r"""Sample quality on the 8x8 digits: the Fréchet distance in a fixed classifier's features, and its accuracy.

    python benchmarks/digits_quality.py                    # the default MLP and the conditional MLP (trained if missing)
    python benchmarks/digits_quality.py --model run/model.npz --label "U-Net" --merge   # add any checkpoint's rows
    python benchmarks/digits_quality.py --model run/model.npz --label "U-Net" --sampler ddim --steps 100 --dtype float32 --merge
    python benchmarks/digits_quality.py --quick            # a smoke run: 200 samples of 100 steps, nothing written

The measure (:mod:`npdiff.digit_features`): the features of a digit are the 64 ReLU activations of the
hidden layer of a fixed classifier (scikit-learn's ``MLPClassifier``, one hidden layer of 64,
``random_state=0``, fitted once on the 1,437 training digits); the Fréchet distance
:math:`\|\mu_s - \mu_t\|^2 + \operatorname{tr}(\Sigma_s + \Sigma_t - 2(\Sigma_s\Sigma_t)^{1/2})` (Heusel et al.
2017) is taken between Gaussians fitted to the features of 1,000 samples and of the 360 test digits. Its
**floor** is the same distance from 1,000 real digits (the first 1,000 of the training split) to the test
digits: a finite-sample Fréchet distance is positive even between two samples of one distribution.

For each model: 1,000 unconditional samples (y = None for a conditional model) by the ancestral DDPM
sampler (1,000 steps, fixed-large variance, the chain the models were trained for; ``--sampler ddim --steps
100`` the deterministic DDIM sampler instead, for a network whose 1,000 steps cost too much), clipped and rounded
to the 17 levels, and their distance; for a conditional model also 100 samples of each digit (w = 0, the
conditional model itself, and the guidance weights of ``--w``), their distance, and the share the
classifier reads as the label they were drawn for, beside its accuracy on the real test digits. Every row is
drawn ``--repeats`` times (default 4, seeds ``--seed`` onwards): its median, and the range as the samples' noise.

Models: ``--model PATH`` (repeatable) scores those checkpoints; without it, the default ``"images"``
recipe (``benchmarks/out/models/digits.npz``, as ``benchmarks/digits.py --save`` writes it) and the
conditional model of ``benchmarks/guidance.py`` (``benchmarks/out/guidance-models``), each trained first
when missing (a few minutes each on one core). ``--merge`` keeps the rows of the results file whose
label this run does not produce, so the figures of several runs sit in one table. One BLAS thread.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import RESULTS, machine_facts, write_results  # noqa: E402

from npdiff.checkpoint import load  # noqa: E402
from npdiff.data.images import digits  # noqa: E402
from npdiff.denoiser import num_classes_of  # noqa: E402
from npdiff.digit_features import FLOOR_IMAGES, classify_digits, digit_classifier, digit_frechet, nearest_levels  # noqa: E402
from npdiff.guidance import guided  # noqa: E402
from npdiff.sample import ddim_sample, ddpm_sample  # noqa: E402

UNCONDITIONAL = HERE / "out" / "models" / "digits.npz"
GUIDANCE_MODELS = HERE / "out" / "guidance-models"
REAL = f"real digits ({FLOOR_IMAGES:,} train against the test split; accuracy on the test split)"
COLUMNS = ["model", "labels", "w", "samples", "sampler", "steps", "frechet", "frechet_lo", "frechet_hi", "floor", "accuracy",
           "accuracy_lo", "accuracy_hi", "sample_s"]


def default_models(seed: int) -> list[tuple[str, object]]:
    r"""The default recipe's MLP and the conditional MLP, each trained and saved first if missing."""
    if not UNCONDITIONAL.exists():
        from digits import train_default

        trainer, _, seconds = train_default({}, {}, None, seed, None)
        UNCONDITIONAL.parent.mkdir(parents=True, exist_ok=True)
        trainer.save(UNCONDITIONAL)
        print(f"trained the images recipe in {seconds:.0f} s; saved {UNCONDITIONAL}", flush=True)
    from guidance import trained

    conditional = trained(GUIDANCE_MODELS, "digits", seed=seed)
    return [("MLP (images recipe)", load(UNCONDITIONAL).denoiser(ema=True)), ("MLP, conditional (p_uncond 0.1)", conditional)]


def score(label: str, model, args, rng_key: int) -> list[dict]:
    r"""The rows of one model: unconditional samples, and per-digit samples when it takes labels.

    Each row is drawn ``args.repeats`` times with different seeds: the median and the range of the distance
    (and of the accuracy), so that a difference between two models can be read against the samples' noise.
    """
    rows = []
    n, per = args.n, args.n // 10

    def draws(denoiser, count: int, key: tuple, labels: np.ndarray | None = None) -> dict:
        t0 = time.perf_counter()
        fds, accs = [], []
        for r in range(args.repeats):
            rng = np.random.default_rng([args.seed + r, rng_key, *key])
            x = (ddpm_sample(denoiser, count, rng, steps=args.steps) if args.sampler == "ddpm"
                 else ddim_sample(denoiser, count, rng, steps=args.steps)).x
            x = nearest_levels(x)  # (count, 64) on the 17 levels
            fd, floor = digit_frechet(x, quantize=False)
            fds.append(fd)
            if labels is not None:
                accs.append(float(np.mean(classify_digits(x, quantize=False) == labels)))
        row = {"frechet": float(np.median(fds)), "frechet_lo": min(fds), "frechet_hi": max(fds), "floor": floor,
               "accuracy": float(np.median(accs)) if accs else None, "accuracy_lo": min(accs) if accs else None,
               "accuracy_hi": max(accs) if accs else None, "sample_s": (time.perf_counter() - t0) / args.repeats}
        return row

    def show(row: dict, what: str, w: str) -> None:
        acc = "" if row["accuracy"] is None else (f"{100 * row['accuracy']:.1f}% ({100 * row['accuracy_lo']:.1f}-"
                                                   f"{100 * row['accuracy_hi']:.1f})")
        print(f"| {label} | {what} | {w} | {row['samples']} | {row['frechet']:.3f} ({row['frechet_lo']:.3f}-"
              f"{row['frechet_hi']:.3f}) | {row['floor']:.3f} | {acc} | {row['sample_s']:.0f} |", flush=True)

    row = {"model": label, "labels": "none", "w": None, "samples": n, "sampler": args.sampler, "steps": args.steps,
           **draws(model, n, (0,))}
    rows.append(row)
    show(row, "unconditional", "")
    if num_classes_of(model) == 0:
        return rows
    labels = np.repeat(np.arange(10), per)  # (10 per,) 100 of each digit
    for w in args.w:
        row = {"model": label, "labels": f"10 x {per}", "w": w, "samples": labels.size, "sampler": args.sampler,
               "steps": args.steps,
               **draws(guided(model, labels, w), labels.size, (1, round(100 * w)), labels)}
        rows.append(row)
        show(row, f"{per} of each digit", f"{w:g}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", default=[], metavar="PATH",
                    help="score this checkpoint (repeatable; default: the MLP recipe and the conditional MLP)")
    ap.add_argument("--label", action="append", default=[], metavar="TEXT",
                    help="the row label of each --model, in order (default: the file's name)")
    ap.add_argument("--n", type=int, default=FLOOR_IMAGES, help="samples per model (default 1000: the floor's count)")
    ap.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddpm",
                    help="ancestral DDPM with fixed-large variance (default) or deterministic DDIM (eta = 0)")
    ap.add_argument("--steps", type=int, default=1000, help="sampler steps (default 1000)")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                    help="the network's dtype while sampling (float32: the U-Net's forward pass is several times faster)")
    ap.add_argument("--w", type=float, nargs="+", default=[0.0], help="guidance weights of the conditional samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=4,
                    help="sample sets per row, seeds seed .. seed + repeats - 1: the median and range (default 4)")
    ap.add_argument("--merge", action="store_true", help="keep the results file's rows of other labels")
    ap.add_argument("--quick", action="store_true", help="200 samples of 100 steps; the results file is not written")
    ap.add_argument("--results", default="digits_frechet", help="results file name (default digits_frechet)")
    args = ap.parse_args()
    if args.quick:
        args.n, args.steps, args.repeats = 200, 100, 2
    if args.n < 10 or args.n % 10:
        raise SystemExit(f"--n must be a multiple of 10 (100 of each digit at the default), got {args.n}")
    if len(args.label) > len(args.model):
        raise SystemExit(f"{len(args.label)} --label for {len(args.model)} --model")
    print(machine_facts(), flush=True)

    d = digits()
    clf = digit_classifier()
    test_acc = float(np.mean(classify_digits(d.test) == d.test_labels))
    _, floor = digit_frechet(d.train[:FLOOR_IMAGES])
    print(f"classifier: {clf!r}; accuracy on the {d.test.shape[0]} test digits {100 * test_acc:.2f}%; floor (the first "
          f"{FLOOR_IMAGES} training digits against the test digits) {floor:.4f}", flush=True)
    # the floor's own noise: other draws of 1,000 of the 1,437 training digits (overlapping sets, so if anything narrower)
    floors = [digit_frechet(d.train[np.random.default_rng([args.seed, 99, r]).permutation(d.train.shape[0])[:FLOOR_IMAGES]])[0]
              for r in range(8)]
    print(f"floor of 8 random draws of {FLOOR_IMAGES} training digits: median {np.median(floors):.3f}, range "
          f"{min(floors):.3f}-{max(floors):.3f}", flush=True)
    if args.model:
        labels = args.label + [Path(p).stem for p in args.model[len(args.label):]]
        models = [(label, load(path).denoiser(ema=True)) for label, path in zip(labels, args.model, strict=True)]
        if args.dtype != "float64":
            models = [(label, m.with_dtype(np.dtype(args.dtype))) for label, m in models]
    else:
        models = default_models(args.seed)

    print("\n| model | samples of | w | n | Fréchet distance (range) | floor | classified as their label (range) | s |\n"
          "|---|---|---|---|---|---|---|---|", flush=True)
    # the reference row: the floor's real digits (its range: other draws of 1,000), and the classifier's test accuracy
    rows = [{"model": REAL, "labels": "their own", "w": None, "samples": FLOOR_IMAGES, "sampler": None, "steps": None,
             "frechet": floor,
             "frechet_lo": min(floors), "frechet_hi": max(floors), "floor": floor, "accuracy": test_acc, "accuracy_lo": test_acc,
             "accuracy_hi": test_acc, "sample_s": None}]
    for key, (label, model) in enumerate(models, 1):
        print(f"{label}: {model!r}", flush=True)
        rows += score(label, model, args, key)
    if args.quick:
        return
    notes = {"n": args.n, "repeats": args.repeats,
             "samplers": {"ddpm": "ancestral, fixed-large variance", "ddim": "deterministic (eta = 0), even steps"},
             "seed": args.seed,
             "classifier": repr(clf), "classifier_test_accuracy": test_acc, "test_images": int(d.test.shape[0]),
             "quantized": "samples clipped to [-1, 1] and rounded to the 17 levels",
             "floor_random_subsets": floors, "dtypes": {label: args.dtype for label, _ in models},
             "repeats_by_model": {label: args.repeats for label, _ in models}}
    old_file = os.path.join(RESULTS, f"{args.results}.json")
    if args.merge and os.path.exists(old_file):
        with open(old_file, encoding="utf-8") as f:
            old = json.load(f)
        produced = {r["model"] for r in rows}
        # rows of files written before the sampler had a column were all drawn by DDPM
        kept = [{"sampler": None if r["steps"] is None else "ddpm", **r} for r in old["rows"] if r["model"] not in produced]
        rows = rows[:1] + kept + rows[1:]
        notes["dtypes"] = {**old["notes"].get("dtypes", {}), **notes["dtypes"]}
        old_repeats = {r["model"]: old["notes"].get("repeats") for r in kept if r["steps"] is not None}
        notes["repeats_by_model"] = {**old_repeats, **old["notes"].get("repeats_by_model", {}), **notes["repeats_by_model"]}
        notes["commands"] = [*old["notes"].get("commands", [old["command"]]), " ".join(["python", *sys.argv])]
    write_results(args.results, rows, columns=COLUMNS, notes=notes)


if __name__ == "__main__":
    main()
