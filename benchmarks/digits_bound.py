r"""The variational bound of a digits model by reverse variance, on the recipe's chain and on the best trajectory.

    npdiff train --data digits --out run                                        # the U-Net
    python benchmarks/digits_bound.py --load run/model.npz                      # ~50 minutes of one core for the U-Net
    python benchmarks/digits_bound.py --load run1/model.npz --results digits_bound_seed1 --skip-long

The bound of the levels through the discretized decoder (K = 17, no dequantization: :func:`npdiff.likelihood.vlb`),
bits/dim, mean +- standard error over images, on the test split (all 360 images) and the first ``--n-train``
training images:

- the recipe's chain (:func:`npdiff.recipes.bound_times`: 50 steps, 49 uniform in sqrt(t) then the decoder from t = 0.02),
  every one of its steps, with the variances ``large``, ``analytic`` (Analytic-DPM's, E||eps||^2 estimated on
  ``--n-stats`` training images that are not scored) and ``diagonal`` (Tweedie's covariance per pixel, from the
  Jacobian's diagonal: 64 tangents of the forward mode per image and step);
- the chain of 50 uniform steps (the decoder from t = 1/50), ``analytic``;
- test split only (skipped with ``--skip-long``): the chain of every step of the 1,000-step grid (``analytic``), and
  the best trajectory of 50 steps on that grid by dynamic programming (:func:`npdiff.likelihood.optimal_steps` on
  :func:`npdiff.likelihood.bound_costs` from the same unscored training images), ``analytic``. Every test row is
  paired with it image by image (``minus_best``): what a chain gives up against the best any chain of its length
  reaches.

The columns ``decoder`` and ``first_kl`` are the decoder's term and the chain's first KL term, the two that where the
chain ends decides. ``--dtype float32`` runs the network in float32 for the Jacobian's diagonal and the long chain
(the bound's arithmetic stays float64); ``--check`` test images are scored with the diagonal in both dtypes and the
largest difference is recorded.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import mean_se, write_results  # noqa: E402

from npdiff.checkpoint import load  # noqa: E402
from npdiff.data.images import digits  # noqa: E402
from npdiff.likelihood import bound_costs, optimal_steps, vlb  # noqa: E402
from npdiff.recipes import RECIPES, bound_times  # noqa: E402
from npdiff.reverse import chain_for  # noqa: E402
from npdiff.reverse_variance import eps_moments  # noqa: E402

GRID = 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load", required=True, metavar="FILE", help="a digits checkpoint (npdiff train --data digits)")
    ap.add_argument("--n", type=int, default=360, help="test images scored (default 360, all)")
    ap.add_argument("--n-train", type=int, default=120, help="training images scored (default 120, the first)")
    ap.add_argument("--n-stats", type=int, default=300,
                    help="training images, after the scored ones, for E||eps||^2 and the trajectory's costs (default 300)")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="the diagonal's network dtype")
    ap.add_argument("--check", type=int, default=10, metavar="N", help="test images of the diagonal in both dtypes")
    ap.add_argument("--skip-long", action="store_true", help="no chain of every grid step, no trajectory search")
    ap.add_argument("--results", default="digits_bound", metavar="NAME")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    d = digits()
    ck = load(args.load)
    model = ck.denoiser(ema=True)
    fast = ck.denoiser(ema=True, dtype=getattr(np, args.dtype))
    ev = RECIPES["images"]["eval"]
    T, times = ev["vlb_T"], bound_times(model.schedule)
    nats = d.dim * np.log(2.0)
    stats = d.train[args.n_train : args.n_train + args.n_stats]  # training images that are never scored
    arch = type(model).__name__
    print(f"{args.load}: {arch}, {ck.step} steps; chain T = {T}; statistics on {stats.shape[0]} training images", flush=True)

    chains = {T: chain_for(model.schedule, T), GRID: chain_for(model.schedule, GRID)}
    t0 = time.perf_counter()
    moments = {k: eps_moments(model, stats, c, np.random.default_rng(args.seed + 1)) for k, c in chains.items()}
    print(f"  E||eps||^2 on the chains: {time.perf_counter() - t0:.0f} s", flush=True)
    best = None
    if not args.skip_long:
        t0 = time.perf_counter()
        costs = bound_costs(fast, stats, chains[GRID], np.random.default_rng(args.seed + 2), K=d.K)
        best = optimal_steps(costs, T)
        print(f"  best {T} of {GRID} steps ({time.perf_counter() - t0:.0f} s): first kept {best[0]} "
              f"(t = {chains[GRID].times[best[0]]:.4f}), {list(best[:8])} ...", flush=True)

    recipe_chain = f"the recipe's: {T} steps, {ev['vlb_grid']} grid to t = {ev['vlb_t_min']:g}"
    assert bound_times(model.schedule).size == T  # as many evaluations as the uniform chain and the best trajectory
    rows, ref = [], None
    for split in ("test", "train"):
        x = d.test[: args.n] if split == "test" else d.train[: args.n_train]
        runs = [(recipe_chain, v, {"times": times}, net) for v, net in (("large", model), ("analytic", model),
                                                                        ("diagonal", fast))]
        runs.append((f"T = {T}, uniform, every step", "analytic", {"T": T}, model))
        if split == "test" and not args.skip_long:  # the best trajectory first: the others are paired with it
            runs = [(f"best {T} of {GRID} steps", "analytic", {"T": GRID, "steps": best}, model),
                    (f"T = {GRID}, uniform, every step", "analytic", {"T": GRID}, fast), *runs]
        for chain, variance, where, net in runs:
            t0 = time.perf_counter()
            mom = moments[GRID if where.get("T") != T else T] if variance == "analytic" else None
            res = vlb(net, x, rng=np.random.default_rng(args.seed + 3), variance=variance, K=d.K, eps_moments=mom, **where)
            bpd = res.total / nats  # (n,)
            steps = where.get("steps")
            first = float(where["times"][-1]) if "times" in where else float(
                chains[where["T"]].times[1 if steps is None else steps[0]])
            row = {"split": split, "chain": chain, "variance": variance, "images": int(x.shape[0]), "t_first": first,
                   "decoder": float(res.decoder.mean() / nats), "first_kl": float(res.terms[:, 1].mean() / nats),
                   "s": time.perf_counter() - t0, "dtype": "float64" if net is model else args.dtype}
            row["bpd"], row["bpd_se"] = mean_se(bpd)
            if split == "test" and chain.startswith("best"):
                ref = bpd
            row["minus_best"], row["minus_best_se"] = mean_se(bpd - ref) if split == "test" and ref is not None else (None, None)
            rows.append(row)
            print(f"  {split} {chain:42s} {variance:9s}: {row['bpd']:.4f} +- {row['bpd_se']:.4f} bits/dim "
                  f"(decoder {row['decoder']:.3f}, first KL {row['first_kl']:.3f}; minus the best trajectory "
                  f"{row['minus_best'] if row['minus_best'] is None else round(row['minus_best'], 4)}) {row['s']:.0f} s",
                  flush=True)
            write_results(args.results, rows, notes=notes(args, ck, arch, T, best, stats.shape[0], chains))
    if args.check:
        x = d.test[: args.check]
        a = vlb(fast, x, rng=np.random.default_rng(args.seed + 3), variance="diagonal", K=d.K, times=times).total / nats
        b = vlb(model, x, rng=np.random.default_rng(args.seed + 3), variance="diagonal", K=d.K, times=times).total / nats
        check = float(np.abs(a - b).max())
        print(f"  diagonal, {args.dtype} against float64 on {args.check} test images: largest difference {check:.2e}")
        write_results(args.results, rows, notes={**notes(args, ck, arch, T, best, stats.shape[0], chains),
                                                 "dtype_check": {"images": args.check, "largest_difference": check}})


def notes(args, ck, arch: str, T: int, best, n_stats: int, chains) -> dict:
    return {"checkpoint": os.path.basename(os.path.dirname(os.path.abspath(args.load))), "arch": arch,
            "checkpoint_steps": ck.step, "T": T, "grid": GRID, "statistics_images": n_stats, "seed": args.seed,
            "best_steps": None if best is None else [int(s) for s in best],
            "best_first_t": None if best is None else float(chains[GRID].times[best[0]]),
            "units": "bits/dim of the 17 levels through the discretized decoder; no dequantization"}


if __name__ == "__main__":
    main()
