r"""Thresholding under classifier-free guidance on the conditional digits model: none, static, dynamic.

    python benchmarks/thresholding.py                  # w in {0, 1, 3, 5, 10}, DDPM and DDIM (~3 min, one core)
    python benchmarks/thresholding.py --w 1 5 --n-per-digit 50
    python benchmarks/thresholding.py --replot --plot docs/measurements/thresholding.png   # the figure of the last run

For each guidance weight w (classifier-free, ``(1 + w) eps(x, t, y) - w eps(x, t, None)``; w = 0 is the
conditional model itself) and each thresholding of the predicted x0 (:mod:`npdiff.thresholding`: none,
static clipping to [-1, 1], dynamic at Imagen's percentile 0.995), ``--n-per-digit`` samples of each digit
(1,000 in all by default) from the same starting noise (and dynamic thresholding at ``--extra-percentiles``,
default 0.9, too), by DDPM (``--ddpm-steps`` of the 1,000-step chain,
fixed-large variance) and by DDIM (eta = 0, ``--ddim-steps``), scored by

- the share of saturated pixels, :math:`|x| \ge 0.99` in the raw samples (before any rounding);
- the class accuracy: the share of samples the fixed digit classifier (:func:`npdiff.digit_features.classify_digits`)
  labels with the digit they were guided to;
- the Fréchet distance to the 360 test digits in the classifier's features
  (:func:`npdiff.digit_features.digit_frechet`, samples rounded to the 17 levels), beside its floor (1,000 real
  training digits).

A first row scores the real test digits the same way (their saturated share, the classifier's test accuracy, and
the Fréchet distance of the 1,000 training digits, which is the floor).

The model is the conditional MLP of ``benchmarks/guidance.py`` (``--model``, default
``benchmarks/out/guidance-models/digits-conditional-seed0.npz``; train it with ``python benchmarks/guidance.py train``).
One BLAS thread.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import machine_facts, write_results  # noqa: E402

from npdiff.checkpoint import load  # noqa: E402
from npdiff.data.images import digits  # noqa: E402
from npdiff.digit_features import classify_digits, digit_frechet  # noqa: E402
from npdiff.guidance import guided  # noqa: E402
from npdiff.sample import ddim_sample, ddpm_sample  # noqa: E402
from npdiff.thresholding import IMAGEN_PERCENTILE, THRESHOLDS  # noqa: E402

MODEL = HERE / "out" / "guidance-models" / "digits-conditional-seed0.npz"
SATURATED = 0.99
COLUMNS = ["sampler", "steps", "w", "threshold", "percentile", "saturated", "accuracy", "frechet", "floor", "sample_s"]


def run(args: argparse.Namespace) -> list[dict]:
    model = load(args.model).denoiser(ema=True)
    labels = np.repeat(np.arange(10), args.n_per_digit)  # (N,)
    x_T = np.random.default_rng(args.seed).standard_normal((labels.size, model.dim))  # shared by every row
    real = digits().test  # (360, 64) the reference row: real test digits
    fd_real, floor = digit_frechet(digits().train[:1000])
    rows = [{"sampler": "real digits", "steps": None, "w": None, "threshold": None, "percentile": None,
             "saturated": float(np.mean(np.abs(real) >= SATURATED)),
             "accuracy": float(np.mean(classify_digits(real) == digits().test_labels)),
             "frechet": fd_real, "floor": floor, "sample_s": None}]
    variants = [(t, IMAGEN_PERCENTILE) for t in THRESHOLDS] + [("dynamic", p) for p in args.extra_percentiles]
    for sampler, steps in (("ddpm", args.ddpm_steps), ("ddim", args.ddim_steps)):
        for w in args.w:
            g = guided(model, labels, w)
            for threshold, percentile in variants:
                t0 = time.perf_counter()
                fn = ddpm_sample if sampler == "ddpm" else ddim_sample
                x = fn(g, None, np.random.default_rng(args.seed + 1), steps=steps, threshold=threshold,
                       percentile=percentile, x_T=x_T).x  # (N, 64)
                seconds = time.perf_counter() - t0
                fd, floor = digit_frechet(x)
                row = {"sampler": sampler, "steps": steps, "w": w, "threshold": threshold,
                       "percentile": percentile if threshold == "dynamic" else None,
                       "saturated": float(np.mean(np.abs(x) >= SATURATED)),
                       "accuracy": float(np.mean(classify_digits(x) == labels)),
                       "frechet": fd, "floor": floor, "sample_s": round(seconds, 1)}
                print(f"{sampler:4s} w={w:<4g} {threshold:7s} {percentile:<6g} saturated {row['saturated']:.3f}  accuracy "
                      f"{row['accuracy']:.3f}  Frechet {fd:.3f} (floor {floor:.3f})  {seconds:.1f} s", flush=True)
                rows.append(row)
    return rows


def plot(rows: list[dict], path: str) -> None:
    r"""Saturated share, accuracy and Fréchet distance against w, one line per thresholding, one row of panels per sampler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real = next(r for r in rows if r["sampler"] == "real digits")
    samplers = [s for s in ("ddpm", "ddim") if any(r["sampler"] == s for r in rows)]
    fig, axes = plt.subplots(len(samplers), 3, figsize=(12, 3.4 * len(samplers)), squeeze=False)
    for ax_row, sampler in zip(axes, samplers):
        mine = [r for r in rows if r["sampler"] == sampler]
        variants = sorted({(r["threshold"], r["percentile"]) for r in mine}, key=lambda v: (THRESHOLDS.index(v[0]), -(v[1] or 0)))
        for threshold, percentile in variants:
            rs = sorted((r for r in mine if (r["threshold"], r["percentile"]) == (threshold, percentile)), key=lambda r: r["w"])
            label = threshold if percentile is None else f"{threshold} (p = {percentile:g})"
            for ax, key in zip(ax_row, ("saturated", "accuracy", "frechet")):
                ax.plot([r["w"] for r in rs], [r[key] for r in rs], marker="o", label=label)
        for ax, key, title in zip(ax_row, ("saturated", "accuracy", "frechet"),
                                  ("share of pixels with |x| >= 0.99", "class accuracy", "Fréchet distance")):
            ax.axhline(real[key] if key != "frechet" else real["floor"], color="k", ls="--", lw=0.8, label="real digits")
            ax.set_title(f"{sampler} ({mine[0]['steps']} steps): {title}", fontsize=9)
            ax.set_xlabel("guidance weight w")
        ax_row[2].set_yscale("log")
        ax_row[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--w", type=float, nargs="+", default=[0.0, 1.0, 3.0, 5.0, 10.0])
    ap.add_argument("--n-per-digit", dest="n_per_digit", type=int, default=100)
    ap.add_argument("--ddpm-steps", dest="ddpm_steps", type=int, default=200)
    ap.add_argument("--ddim-steps", dest="ddim_steps", type=int, default=100)
    ap.add_argument("--extra-percentiles", dest="extra_percentiles", type=float, nargs="*", default=[0.9],
                    help="dynamic thresholding at these percentiles too, beside Imagen's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", help="also draw the figures to this PNG")
    ap.add_argument("--replot", action="store_true", help="only draw --plot from the results file already written")
    args = ap.parse_args(argv)
    if args.replot:
        import json

        plot(json.loads((HERE / "results" / "thresholding.json").read_text())["rows"], args.plot)
        return 0
    print(machine_facts(), flush=True)
    rows = run(args)
    write_results("thresholding", rows, columns=COLUMNS,
                  notes={"model": "the conditional MLP of benchmarks/guidance.py (images recipe, p_uncond 0.1), EMA weights",
                         "samples": int(10 * args.n_per_digit), "percentile": IMAGEN_PERCENTILE,
                         "saturated": f"share of pixels with |x| >= {SATURATED} in the raw samples",
                         "ddpm": "fixed-large variance, steps of the 1,000-step chain", "ddim": "eta = 0",
                         "seed": args.seed})
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
