r"""Where in time a 2D model's likelihood gap comes from: the exact field below t*, the model's above, and back.

    python benchmarks/gap_by_time.py                                  # trains the recipe on three sets, seed 0
    python benchmarks/gap_by_time.py --sets checkerboard --load DIR   # DIR/checkerboard-seed0/model.npz
    python benchmarks/gap_by_time.py --seed 1 --append                 # seed 1 beside the file's other seeds

The probability-flow ODE carries a density from the prior at t_max to the data at t_min through the field of
the denoiser's eps at every t between. On a 2D set the exact eps is known (the set's oracle,
:meth:`npdiff.data.toy2d.Toy2D.oracle`), so a flow can take the trained model's eps on one part of the time
axis and the exact eps on the rest, and its exact likelihood (:func:`npdiff.likelihood.ode_log_likelihood`)
says what the model's errors on that part cost. For each split time t*:

- ``model_below``: the model's eps for t < t*, the exact eps above: the paired gap
  :math:`\log p_{true}(x) - \log p(x)` of the times below t* alone (0 at t* = t_min, the model's whole gap at
  t* = t_max);
- ``model_above``: the exact eps below t*, the model's above: the gap of the times above t*.

Gaps of different parts do not add exactly (an error early moves the points where a later error acts), so
both are reported. Every flow is scored on the same test points as the recipes page (seed s:
``default_rng(10_000 + s)``), the points paired across rows; RK45 at rtol = atol = 1e-5 from t_min = 1e-5.
Models: the ``"2d"`` recipe trained and scored by ``benchmarks/quality_2d.py``'s ``run_set`` (the model's own
flow is its row), saved as ``DIR/SET-seedS/model.npz`` in ``--save DIR`` (default ``benchmarks/out/gap_by_time``);
``--load DIR`` reads that layout, which is also ``quality_2d.py --save DIR``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import mean_se, write_results  # noqa: E402
from quality_2d import run_set  # noqa: E402

from npdiff import checkpoint  # noqa: E402
from npdiff.data import toy2d  # noqa: E402
from npdiff.likelihood import ode_log_likelihood  # noqa: E402

T_STARS = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)
T_MIN = 1e-5


class TimeSplice:
    r"""A denoiser that is ``below`` at times t < ``t_star`` and ``above`` at the others (the ODE asks one t per call)."""

    def __init__(self, t_star: float, below, above) -> None:
        self.t_star, self.below, self.above = t_star, below, above
        self.schedule, self.dim = below.schedule, 2

    def _at(self, t):
        return self.below if float(np.max(t)) < self.t_star else self.above

    def eps(self, x: np.ndarray, t, y=None) -> np.ndarray:
        return self._at(t).eps(x, t)

    def eps_and_divergence(self, x: np.ndarray, t, y=None) -> tuple[np.ndarray, np.ndarray]:
        return self._at(t).eps_and_divergence(x, t)


def measure(name: str, seed: int, n_test: int, load: str | None, save: str) -> list[dict]:
    model_dir = os.path.join(load or save, f"{name}-seed{seed}")  # quality_2d.py's layout: DIR/SET-seedS/model.npz
    t0 = time.perf_counter()
    # the model's own flow, scored (and the model trained, unless loaded) as on the recipes page
    whole = run_set(name, seed=seed, n_test=n_test, t_min=T_MIN, with_vlb=False, fast=None,
                    save=None if load else model_dir, load=os.path.join(model_dir, "model.npz") if load else None)
    print(f"{name} seed {seed}: whole gap {whole['gap']:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    model = checkpoint.load(os.path.join(model_dir, "model.npz")).denoiser(ema=True)
    data = toy2d.load(name)
    oracle = data.oracle(model.schedule)
    x = data.sample(n_test, np.random.default_rng(10_000 + seed))  # (n, 2) run_set's test points
    log_p_true = data.log_prob(x)  # (n,)

    def gap(denoiser) -> tuple[float, float]:
        return mean_se(log_p_true - ode_log_likelihood(denoiser, x, t_min=T_MIN).log_p)

    rows = [{"set": name, "seed": seed, "t_star": 1.0, "sigma": float(model.schedule.sigma(1.0)),
             "model_below": whole["gap"], "model_below_se": whole["gap_se"],
             "model_above": 0.0, "model_above_se": 0.0, "share_below": 1.0}]
    for t_star in T_STARS:
        (below, below_se), (above, above_se) = gap(TimeSplice(t_star, model, oracle)), gap(TimeSplice(t_star, oracle, model))
        rows.append({"set": name, "seed": seed, "t_star": t_star, "sigma": float(model.schedule.sigma(t_star)),
                     "model_below": below, "model_below_se": below_se, "model_above": above, "model_above_se": above_se,
                     "share_below": below / whole["gap"]})
        print(f"  t* = {t_star:g}: below {below:.4f}, above {above:.4f}", flush=True)
    return sorted(rows, key=lambda r: r["t_star"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", nargs="+", default=["checkerboard", "rings", "8gaussians"], choices=toy2d.NAMES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=2000, help="fresh test points per set (default 2000)")
    ap.add_argument("--load", metavar="DIR", help="read DIR/SET-seedS/model.npz instead of training")
    ap.add_argument("--save", metavar="DIR", default=os.path.join("benchmarks", "out", "gap_by_time"),
                    help="where trained models go, as DIR/SET-seedS/model.npz (default benchmarks/out/gap_by_time)")
    ap.add_argument("--append", action="store_true", help="keep the results file's rows of other sets and seeds")
    ap.add_argument("--results", default="gap_by_time", metavar="NAME")
    args = ap.parse_args()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"{args.results}.json")
    kept, runs = [], []
    if args.append and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        kept = [r for r in old["rows"] if (r["set"], r["seed"]) not in {(n, args.seed) for n in args.sets}]
        runs = old["notes"].get("runs", [old["command"]])
    runs = [*runs, "python " + " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]])]
    rows = [r for name in args.sets for r in measure(name, args.seed, args.n_test, args.load, args.save)]
    print(write_results(args.results, kept + rows, notes={"n_test": args.n_test, "t_min": T_MIN, "rtol": 1e-5, "atol": 1e-5,
                                                           "test_points": "default_rng(10000 + seed)",
                                                           **({"runs": runs} if args.append else {})}))


if __name__ == "__main__":
    main()
