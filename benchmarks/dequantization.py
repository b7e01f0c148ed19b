r"""Bits/dim of the digits by dequantization and draws, and the bound of the full chain against its best steps.

    python benchmarks/dequantization.py --model benchmarks/out/models/digits.npz --only ode --part 0  # ~3 min each
    python benchmarks/dequantization.py --model benchmarks/out/models/digits.npz --only ode --part 1
    python benchmarks/dequantization.py --model benchmarks/out/models/digits.npz --only ode --part 2
    python benchmarks/dequantization.py --model benchmarks/out/models/digits.npz --only bound  # ~4 min
    python benchmarks/dequantization.py --model benchmarks/out/models/digits.npz --only chain  # ~3 min

A trained digits MLP (``benchmarks/digits.py --save FILE`` writes one) is scored on the test split:

- ``ode``: the exact probability-flow ODE likelihood (:func:`npdiff.likelihood.dequantized_bpd`, RK45 at
  rtol = atol = 1e-5 from t_min = 1e-5, exact trace) of the first ``--n-ode`` test images with 16
  dequantization draws each, by dequantization: uniform; the truncated normal at i-DODE's scale
  :math:`\sigma(t_{\min})/\sqrt{\bar\alpha(t_{\min})}` (Zheng et al. 2023, Sec. 4.3); the truncated normal at
  :math:`s = \delta`, half a bin. The figures at S = 1, 4 and 16 draws come from the same 16 draws (the first
  S of them), so every difference is paired, image by image.
- ``bound``: the variational bound of the model's chain (:func:`npdiff.likelihood.dequantized_vlb_bpd`,
  "large" variance) on all 360 test images, T = 50 (the recipe's) and T = 1000 (every step), with the same
  dequantizations and draws, beside the bound of the levels through the discretized decoder
  (:func:`npdiff.likelihood.vlb` with ``K``, no dequantization). The column ``noise_bias`` bounds what the
  Monte Carlo noise of the chain's terms (one draw of :math:`x_t` each) can add to the log-mean-exp: half the
  variance of :math:`L` over fresh chain noise at fixed dequantization, in bits/dim.
- ``chain``: the bound with the ``"analytic"`` variance of the full chain (1,000 steps) against the best 100
  of those steps (:func:`npdiff.likelihood.optimal_steps` on :func:`npdiff.likelihood.bound_costs` estimated
  on the 1,437 training images, dequantized as the test images are), S = 1, for the levels and for each
  dequantization at a fixed scale.

Each figure is a mean over the images with its standard error; ``*_diff`` columns are paired differences with
their own standard errors. One BLAS thread unless the environment says otherwise.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import write_results  # noqa: E402

from npdiff.checkpoint import load  # noqa: E402
from npdiff.data.images import digits  # noqa: E402
from npdiff.likelihood import (  # noqa: E402
    DequantizedLikelihood,
    bound_costs,
    dequantize,
    dequantized_bpd,
    dequantized_vlb_bpd,
    optimal_steps,
    truncated_normal_scale,
    vlb,
)
from npdiff.reverse import chain_for  # noqa: E402

DRAWS = (1, 4, 16)
T_MIN = 1e-5


def _mse(v: np.ndarray) -> tuple[float, float]:
    r"""Mean and standard error of per-image values (n,)."""
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))


def _dequantizations(half_bin: float, scale_idode: float | None) -> list[tuple[str, str, float | None]]:
    r"""(label, dequantization, scale) of the rows: uniform, i-DODE's truncated normal, the truncated normal at half a bin."""
    return [("uniform", "uniform", None),
            ("truncated normal, i-DODE scale", "truncated_normal", scale_idode),
            ("truncated normal, s = half a bin", "truncated_normal", half_bin)]


def _rows_by_draws(estimator: str, label: str, res, base: dict[int, np.ndarray] | None, n: int,
                   extra: dict | None = None) -> tuple[list[dict], dict[int, np.ndarray]]:
    r"""One row per S of :data:`DRAWS`: the mean bits/dim, its paired gain over S = 1, its paired excess over uniform."""
    rows, by_s = [], {}
    for S in DRAWS:
        b = res.bpd_of_draws(S)  # (n,) the first S draws
        by_s[S] = b
        row = {"estimator": estimator, "dequantization": label, "scale": res.scale, "draws": S, "images": n}
        row["bpd"], row["bpd_se"] = _mse(b)
        row["gain_diff"], row["gain_diff_se"] = _mse(by_s[1] - b)  # bits/dim won by S draws over one
        if base is None:
            row["vs_uniform_diff"], row["vs_uniform_diff_se"] = 0.0, 0.0
        else:
            row["vs_uniform_diff"], row["vs_uniform_diff_se"] = _mse(b - base[S])
        row.update(extra or {})
        rows.append(row)
        print(f"  {estimator:10s} {label:34s} S={S:2d}: {row['bpd']:.4f} +- {row['bpd_se']:.4f} bits/dim; "
              f"gain over S=1 {row['gain_diff']:+.4f} +- {row['gain_diff_se']:.4f}; "
              f"minus uniform {row['vs_uniform_diff']:+.4f} +- {row['vs_uniform_diff_se']:.4f}", flush=True)
    return rows, by_s


def table_ode(model, d, n: int, seed: int, part: int | None, parts_dir: str) -> None:
    x = d.test[:n]
    s_idode = truncated_normal_scale(model.schedule, T_MIN)
    configs = _dequantizations(1.0 / (d.K - 1), s_idode)
    os.makedirs(parts_dir, exist_ok=True)
    for i, (label, dq, scale) in enumerate(configs):
        if part is not None and i != part:
            continue
        t0 = time.perf_counter()
        res = dequantized_bpd(model, x, d.K, np.random.default_rng(seed + 1), draws=DRAWS[-1], dequantization=dq,
                              scale=scale, t_min=T_MIN, rtol=1e-5, atol=1e-5, batch_size=60)
        if res.diverged.any():
            raise FloatingPointError(f"{label}: the ODE diverged on {int(res.diverged.sum())} images")
        np.savez(os.path.join(parts_dir, f"ode_{i}.npz"), log_p=res.log_p, log_q=res.log_q, nfe=res.nfe,
                 scale=np.nan if res.scale is None else res.scale, n=n, seed=seed)
        print(f"  {label}: {time.perf_counter() - t0:.0f} s", flush=True)
    rows, base = [], None
    for i, (label, dq, _) in enumerate(configs):  # the table, once every part has been measured
        path = os.path.join(parts_dir, f"ode_{i}.npz")
        if not os.path.exists(path):
            print(f"  part {i} ({label}) not measured yet: run --only ode --part {i}", flush=True)
            return
        with np.load(path) as z:
            if int(z["n"]) != n or int(z["seed"]) != seed:
                raise ValueError(f"{path} holds {int(z['n'])} images of seed {int(z['seed'])}, not {n} of seed {seed}")
            scale = None if np.isnan(z["scale"]) else float(z["scale"])
            res = DequantizedLikelihood(bpd=None, bpd_mean=None, log_p=z["log_p"], diverged=np.zeros(n, dtype=bool),
                                        nfe=int(z["nfe"]), log_q=z["log_q"], dequantization=dq, scale=scale, D=d.dim)
        new, by_s = _rows_by_draws("ODE", label, res, base, n, {"nfe": res.nfe, "noise_bias": None})
        base = by_s if base is None else base
        rows += new
    write_results("dequantization_ode", rows, notes={"images": n, "t_min": T_MIN, "rtol": 1e-5, "seed": seed,
                                                     "split": "test (its first images)"})


def _noise_bias(model, x, K, T, dq, scale, seed: int, repeats: int = 4) -> float:
    r"""Half the variance of L over fresh chain noise at one fixed dequantization, mean over images, bits/dim."""
    y = dequantize(x, K, np.random.default_rng(seed), dq, scale)  # (n, D) one dequantization, kept
    L = np.stack([vlb(model, y, T, rng=np.random.default_rng(seed + 100 + r)).total for r in range(repeats)])  # (R, n)
    return float(0.5 * L.var(axis=0, ddof=1).mean() / (x.shape[1] * np.log(2.0)))


def table_bound(model, d, seed: int) -> None:
    x = d.test
    n, D = x.shape
    rows = []
    for T in (50, 1000):
        t0 = time.perf_counter()
        levels = vlb(model, x, T, rng=np.random.default_rng(seed + 2), variance="large", K=d.K).total / (D * np.log(2.0))
        row = {"estimator": f"bound, T = {T}", "dequantization": "levels (discretized decoder)", "scale": None,
               "draws": 1, "images": n, "gain_diff": None, "gain_diff_se": None, "vs_uniform_diff": None,
               "vs_uniform_diff_se": None, "nfe": T, "noise_bias": None}
        row["bpd"], row["bpd_se"] = _mse(levels)
        rows.append(row)
        print(f"  bound T={T} levels: {row['bpd']:.4f} +- {row['bpd_se']:.4f}", flush=True)
        s_idode = truncated_normal_scale(model.schedule, float(chain_for(model.schedule, T).times[1]))
        base = None
        for label, dq, scale in _dequantizations(1.0 / (d.K - 1), s_idode):
            res = dequantized_vlb_bpd(model, x, d.K, np.random.default_rng(seed + 2), draws=DRAWS[-1],
                                      dequantization=dq, scale=scale, T=T, variance="large")
            bias = _noise_bias(model, x, d.K, T, dq, res.scale, seed + 3)
            new, by_s = _rows_by_draws(f"bound, T = {T}", label, res, base, n, {"nfe": res.nfe, "noise_bias": bias})
            print(f"    chain-noise bias bound of the log-mean-exp: {bias:.4f} bits/dim", flush=True)
            base = by_s if base is None else base
            rows += new
        print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    write_results("dequantization_bound", rows, notes={"images": n, "variance": "large", "seed": seed,
                                                       "split": "test"})


def table_chain(model, d, seed: int, best: int) -> None:
    x, D = d.test, d.dim
    grid = chain_for(model.schedule, 1000)
    unit = D * np.log(2.0)
    half_bin = 1.0 / (d.K - 1)
    rows = []
    for label, dq, scale in [("levels (discretized decoder)", None, None), ("uniform", "uniform", None),
                             ("truncated normal, s = half a bin", "truncated_normal", half_bin)]:
        t0 = time.perf_counter()
        train = d.train if dq is None else dequantize(d.train, d.K, np.random.default_rng(seed + 4), dq, scale)
        costs = bound_costs(model, train, grid, np.random.default_rng(seed + 5), K=d.K if dq is None else None)
        kept = optimal_steps(costs, best)
        figures = {}
        for name, steps in (("full", None), ("best", kept)):
            if dq is None:
                res = vlb(model, x, 1000, rng=np.random.default_rng(seed + 6), variance="analytic", K=d.K,
                          eps_moments=costs.moments, steps=steps)
                figures[name] = res.total / unit  # (n,)
            else:
                res = dequantized_vlb_bpd(model, x, d.K, np.random.default_rng(seed + 6), dequantization=dq,
                                          scale=scale, T=1000, variance="analytic", eps_moments=costs.moments,
                                          steps=steps)
                figures[name] = res.bpd
        row = {"dequantization": label, "scale": scale, "images": x.shape[0], "best_steps": best,
               "first_kept": int(kept[0]), "first_kept_t": float(grid.times[kept[0]])}
        row["full"], row["full_se"] = _mse(figures["full"])
        row["best"], row["best_se"] = _mse(figures["best"])
        row["full_minus_best"], row["full_minus_best_se"] = _mse(figures["full"] - figures["best"])
        rows.append(row)
        print(f"  {label:34s} full chain {row['full']:.4f} +- {row['full_se']:.4f}; best {best} steps "
              f"{row['best']:.4f} +- {row['best_se']:.4f} (first kept step {kept[0]}, t = {row['first_kept_t']:.3f}); "
              f"full - best {row['full_minus_best']:+.4f} +- {row['full_minus_best_se']:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    write_results("dequantization_chain", rows, notes={"variance": "analytic", "grid": 1000, "best_steps": best,
                                                       "seed": seed, "split": "test",
                                                       "statistics": "bound_costs on the 1,437 training images"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a trained digits checkpoint (benchmarks/digits.py --save)")
    ap.add_argument("--only", choices=("ode", "bound", "chain"), required=True, help="which table to measure")
    ap.add_argument("--n-ode", dest="n_ode", type=int, default=60, help="test images the ODE scores (default 60)")
    ap.add_argument("--best", type=int, default=100, help="steps of the best trajectory (default 100)")
    ap.add_argument("--part", type=int, choices=(0, 1, 2),
                    help="ode: measure only this dequantization (0 uniform, 1 i-DODE's, 2 half a bin); the table is "
                         "written once all three are in --parts")
    ap.add_argument("--parts", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "dequantization"),
                    help="folder of the ODE's per-dequantization arrays")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    d, model = digits(), load(args.model).denoiser(ema=True)
    print(f"scoring {args.model}: {model!r}", flush=True)
    if args.only == "ode":
        table_ode(model, d, args.n_ode, args.seed, args.part, args.parts)
    elif args.only == "bound":
        table_bound(model, d, args.seed)
    else:
        table_chain(model, d, args.seed, args.best)


if __name__ == "__main__":
    main()
