r"""Bits/dim on the 8x8 digits: the default image recipe, both likelihoods, train and test splits, baselines.

    python benchmarks/digits.py                          # train the default recipe (~5-10 min), the full table
    python benchmarks/digits.py --quick                  # a 2-minute smoke run (fewer steps, fewer images)
    python benchmarks/digits.py --set width=512 --set weight_decay=0.3 --schedule '{"kind": "cosine"}'
    python benchmarks/digits.py --load run/model.npz     # score a saved model (no training)

Trains the ``"images"`` recipe of :mod:`npdiff.recipes` on the 1,437 training digits (fresh uniform
dequantization per batch) and reports, on the 360 test images and on 360 training images (the
first 360 of the train split, to show over- or under-fitting):

- the exact ODE likelihood of uniformly dequantized images (:func:`npdiff.likelihood.image_bpd`: RK45 at
  rtol = atol = 1e-5 from t_min = 1e-5, exact trace by 64 forward-mode tangents, float64;
  a runaway or overflowing solve is counted as diverged, never averaged in);
- the VLB with the discretized decoder (K = 17) at the recipe's T and variance, and for reference at
  other T and with the other fixed variance;
- simple baselines computed here on the same split: uniform over 17 levels (log2 17), a
  full-covariance Gaussian fitted to dequantized training images, independent per-pixel
  categoricals (add-one smoothing); and the mixture baselines of
  :data:`npdiff.data.images.DIGITS_BASELINES`.

Figures (``--out``, default ``benchmarks/out``): samples beside real test digits, the per-step
VLB terms, one image along the reverse process. One BLAS thread unless the environment says
otherwise: the matrices are small (a batch of 128 through 256 units) and OpenBLAS threads cost
more than they save, especially on a shared machine.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import split_overrides, write_results  # noqa: E402

from npdiff.checkpoint import load  # noqa: E402
from npdiff.data.images import DIGITS_BASELINES, digits  # noqa: E402
from npdiff.gaussian import log_normal_full  # noqa: E402
from npdiff.likelihood import density_to_bpd, image_bpd, vlb  # noqa: E402
from npdiff.nn import MLPConfig  # noqa: E402
from npdiff.nn.model import DiffusionMLP  # noqa: E402
from npdiff.recipes import RECIPES, recipe  # noqa: E402
from npdiff.schedule import schedule_from_config  # noqa: E402
from npdiff.train import TrainConfig, Trainer  # noqa: E402

LN2 = np.log(2.0)

def baselines(train: np.ndarray, x: np.ndarray, K: int, rng: np.random.Generator) -> dict[str, float]:
    r"""Bits/dim of ``x`` (n, D) under simple models fitted to ``train`` (N, D), all on K levels."""
    D = x.shape[1]
    delta = 1.0 / (K - 1)
    out = {"uniform": float(np.log2(K))}
    # full-covariance Gaussian on dequantized images: maximum likelihood fit, one dequantization draw each
    fit = train + rng.uniform(-delta, delta, size=train.shape)  # (N, D)
    mean, cov = fit.mean(0), np.cov(fit, rowvar=False, bias=True)
    xd = x + rng.uniform(-delta, delta, size=x.shape)
    out["gaussian"] = float(density_to_bpd(log_normal_full(xd, mean, cov), K, D).mean())
    # independent per-pixel categoricals with add-one smoothing: P(v_d) = (count + 1) / (N + K)
    v_train = np.round((train + 1.0) / (2 * delta)).astype(int)  # (N, D) levels
    v = np.round((x + 1.0) / (2 * delta)).astype(int)
    counts = np.stack([np.bincount(v_train[:, d], minlength=K) for d in range(D)])  # (D, K)
    log_p = np.log((counts + 1.0) / (train.shape[0] + K))  # (D, K)
    out["categorical"] = float(-log_p[np.arange(D), v].sum(axis=1).mean() / (D * LN2))
    return out


def shifted(d, p: float):
    r"""A training source: images moved by one pixel (up, down, left or right, the row or column that enters
    filled with background) with probability p, then dequantized afresh, (n, D)."""
    delta = 1.0 / (d.K - 1)

    def source(n: int, rng: np.random.Generator) -> np.ndarray:
        img = d.sample(n, rng).reshape(n, *d.shape).copy()  # (n, 8, 8) on the levels
        move = np.flatnonzero(rng.random(n) < p)
        way = rng.integers(0, 4, move.size)
        for k, (axis, step) in enumerate(((1, 1), (1, -1), (2, 1), (2, -1))):
            rows = move[way == k]
            moved = np.roll(img[rows], step, axis=axis)
            edge = 0 if step == 1 else -1  # the row or column that wrapped around
            if axis == 1:
                moved[:, edge, :] = -1.0
            else:
                moved[:, :, edge] = -1.0
            img[rows] = moved
        x = img.reshape(n, -1)
        return x + rng.uniform(-delta, delta, size=x.shape)

    return source


def train_default(overrides_model: dict, overrides_train: dict, schedule, seed: int, steps: int | None,
                  shift: float = 0.0):
    model_kw, train_kw, default_schedule = recipe("images")
    model_kw.update(overrides_model)
    train_kw.update(overrides_train)
    if steps is not None:
        train_kw["steps"] = steps
    d = digits()
    rng = np.random.default_rng(seed)
    model = DiffusionMLP(MLPConfig(dim=d.dim, **model_kw), schedule or default_schedule, rng=rng)
    dequantize = RECIPES["images"].get("data", {}).get("dequantize", True)
    source = shifted(d, shift) if shift > 0 else d.sample_dequantized if dequantize else d.sample
    trainer = Trainer(model, source, TrainConfig(**train_kw), rng)
    t0 = time.perf_counter()
    history = trainer.run(progress=True)
    seconds = time.perf_counter() - t0
    return trainer, history, seconds


def figures(model, d, out: str, seed: int, terms_bpd: np.ndarray) -> list[str]:
    from npdiff.plot import plot_image_grid, plot_reverse_process, plot_vlb_terms
    from npdiff.sample import ddpm_sample

    os.makedirs(out, exist_ok=True)
    res = ddpm_sample(model, 60, np.random.default_rng(seed + 5), record=False)
    real = d.test[np.random.default_rng(seed + 6).permutation(d.test.shape[0])[:60]]
    paths = [os.path.join(out, name) for name in ("digits_samples.png", "digits_vlb_terms.png", "digits_reverse.png")]
    plot_image_grid(res.x, real, paths[0], shape=d.shape, cols=10,
                    title="DDPM samples (1000 steps) beside real test digits")
    plot_vlb_terms(terms_bpd, paths[1])
    one = ddpm_sample(model, 1, np.random.default_rng(seed + 7), record=True)
    plot_reverse_process(one.trajectory[:, 0], one.times, paths[2], shape=d.shape, panels=10)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, help="training steps (default: the recipe's)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a field of the recipe's MLPConfig or TrainConfig (repeatable)")
    ap.add_argument("--schedule", help='a schedule config as JSON, e.g. \'{"kind": "cosine"}\'')
    ap.add_argument("--shift", type=float, default=0.0, metavar="P",
                    help="train on images moved by one pixel with probability P (a regularizer; default 0)")
    ap.add_argument("--load", metavar="FILE", help="score this checkpoint instead of training")
    ap.add_argument("--save", metavar="FILE", help="save the trained model here")
    ap.add_argument("--n", type=int, default=360, help="images per split (default 360: the whole test split)")
    ap.add_argument("--draws", type=int, default=1, help="dequantization draws per image for the ODE (default 1)")
    ap.add_argument("--T", type=int, nargs="+", default=[20, 50, 100, 1000], help="VLB chain lengths to tabulate")
    ap.add_argument("--quick", action="store_true", help="3,000 steps and 60 images per split")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"),
                    help="folder for the figures")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="append the results as one JSON line to FILE")
    ap.add_argument("--results", default="digits",
                    help="write the tables to benchmarks/results/NAME.json and NAME_vlb.json (default digits)")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.n = args.steps or 3000, min(args.n, 60)
    d = digits()
    model_kw, train_kw = split_overrides(args.set)
    schedule = schedule_from_config(json.loads(args.schedule)) if args.schedule else None
    # the bound of this table: 50 uniform steps, fixed-large variance, as in its earlier rows; the recipe's own chain
    # (the decoder from t = 0.02, a variance per pixel) and the other variances are benchmarks/digits_bound.py's
    T0, var0 = 50, "large"
    row: dict = {"model_overrides": model_kw, "train_overrides": train_kw, "seed": args.seed, "n": args.n, "shift": args.shift,
                 "draws": args.draws, "threads": os.environ.get("OPENBLAS_NUM_THREADS")}

    if args.load:
        model = load(args.load).denoiser(ema=True)
        print(f"scoring {args.load}: {model!r}", flush=True)
    else:
        trainer, history, seconds = train_default(model_kw, train_kw, schedule, args.seed, args.steps, args.shift)
        model = trainer.denoiser(ema=True)
        loss = history["loss"]
        row.update(steps=int(trainer.step), train_s=round(seconds, 1), steps_per_s=round(trainer.step / seconds, 1),
                   final_loss=float(loss[-max(1, len(loss) // 100):].mean()))
        print(f"trained {model!r} for {trainer.step} steps in {seconds:.0f} s ({row['steps_per_s']} steps/s, "
              f"{row['threads']} BLAS thread(s)); final loss {row['final_loss']:.4f}", flush=True)
        if args.save:
            trainer.save(args.save)
    row["model"] = model.config_dict()

    splits = {"test": d.test[: args.n], "train": d.train[: args.n]}
    for name, x in splits.items():
        t0 = time.perf_counter()
        # each estimator with its own stream of noise, so that neither figure depends on the other's run
        ode = image_bpd(model, x, d.K, np.random.default_rng(args.seed + 1), method="ode", draws=args.draws)
        ode_s = time.perf_counter() - t0
        bound = image_bpd(model, x, d.K, np.random.default_rng(args.seed + 2), method="vlb", T=T0, variance=var0)
        r = {**ode.summary(), **bound.summary(), "nfe": ode.ode.nfe, "ode_seconds": round(ode_s, 2)}
        row[name] = {k: v for k, v in r.items() if k.startswith(("bpd", "ode_", "vlb_", "nfe"))}
        ode_text = (f"diverged on {r['ode_diverged']}" if r["bpd_ode"] is None
                    else f"{r['bpd_ode']:.3f} +- {r['bpd_ode_se']:.3f}")
        print(f"{name:5s} ({x.shape[0]} images): ODE {ode_text} bits/dim ({r['nfe']} nfe, {ode_s:.0f} s); "
              f"VLB T={T0} {var0} {r['bpd_vlb']:.3f} +- {r['bpd_vlb_se']:.3f} ({time.perf_counter() - t0:.0f} s total)",
              flush=True)
        if name == "test":
            terms_bpd = bound.vlb_terms_bpd.mean(axis=0)  # (T0 + 1,)
        table = {}
        for T in args.T:
            for variance in ("large", "small"):
                res = vlb(model, x, T, rng=np.random.default_rng(args.seed + 2), variance=variance, K=d.K)
                b = res.total / (d.dim * LN2)
                table[f"T={T} {variance}"] = float(b.mean())
        row[name]["vlb_table"] = table
        print("      VLB by T and variance: " + ", ".join(f"{k} {v:.3f}" for k, v in table.items()), flush=True)

    row["baselines"] = {name: baselines(d.train, x, d.K, np.random.default_rng(args.seed + 3))
                        for name, x in splits.items()}
    print("baselines (fitted on the train split): " + "; ".join(
        f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in b.items()) for name, b in row["baselines"].items()))
    print("DIGITS_BASELINES (test split): " + "; ".join(f"{k} {v:.3f}" for k, v in DIGITS_BASELINES.items()))

    print(f"\n| split | exact ODE (dequantized) | VLB (T={T0}, {var0}) | uniform | Gaussian | per-pixel categorical |")
    print("|---|---|---|---|---|---|")
    for name in splits:
        s, b = row[name], row["baselines"][name]
        ode = "diverged" if s["bpd_ode"] is None else f"{s['bpd_ode']:.3f} +- {s['bpd_ode_se']:.3f}"
        print(f"| {name} | {ode} | {s['bpd_vlb']:.3f} +- {s['bpd_vlb_se']:.3f} | {b['uniform']:.3f} | "
              f"{b['gaussian']:.3f} | {b['categorical']:.3f} |")

    table_rows, vlb_rows = [], []
    for name in splits:
        s, b = row[name], row["baselines"][name]
        table_rows.append({"split": name, "images": int(splits[name].shape[0]), "bpd_ode": s["bpd_ode"],
                           "bpd_ode_se": s.get("bpd_ode_se"), "nfe": s["nfe"], "bpd_vlb": s["bpd_vlb"],
                           "bpd_vlb_se": s["bpd_vlb_se"], "uniform": b["uniform"], "gaussian": b["gaussian"],
                           "categorical": b["categorical"]})
        for key, bpd in s["vlb_table"].items():
            T, variance = key.split()
            vlb_rows.append({"split": name, "T": int(T[2:]), "variance": variance, "bpd_vlb": bpd})
    notes = {"vlb_T": T0, "vlb_variance": var0, "steps": row.get("steps"), "train_s": row.get("train_s"),
             "steps_per_s": row.get("steps_per_s"), "draws": args.draws, "seed": args.seed}
    write_results(args.results, table_rows, notes=notes)
    write_results(f"{args.results}_vlb", vlb_rows, notes=notes)

    if not args.no_figures:
        paths = figures(model, d, args.out, args.seed, terms_bpd)
        print("figures: " + ", ".join(paths))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
