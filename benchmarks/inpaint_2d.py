r"""Inpainting in 2D, measured against the exact conditional: replacement, RePaint and DPS.

    python benchmarks/inpaint_2d.py                                   # the exact oracles (~4 min)
    python benchmarks/inpaint_2d.py --model benchmarks/out/models/8gaussians-seed0/model.npz   # and a trained model (~10 min)

For 8gaussians, checkerboard and rings, the first coordinate is known, x1 = a, for three values of a per set
(on a mode, between modes, in a tail: :data:`VALUES`), and the second is sampled by each method with the set's
exact oracle as the denoiser (so only the method's error shows), on the ancestral DDPM chain (vp_linear,
T = 1000 respaced, fixed-large variance):

- replacement (:func:`npdiff.edit.replacement_sample`);
- RePaint (:func:`npdiff.edit.repaint_sample`) with jump length 1 and 2 resamplings (every step taken twice)
  and with jump length 5 and 3 resamplings;
- DPS (:func:`npdiff.edit.dps_sample`) with the normalized step zeta = 0.1 and 0.3.

Against a budget of denoiser evaluations (20, 50, 100, 250), each method takes the most steps whose
evaluations fit the budget (RePaint: :func:`npdiff.edit.repaint_nfe`; DPS: two calls a step, eps and then
eps_vjp) and records the evaluations it used. The figure is the Wasserstein-1 distance of 5,000 samples of x2
to the exact conditional p(x2 | x1 = a) (:func:`npdiff.edit.exact_conditional`: the trapezoid rule on 16,001
points of [-8, 8]; W1 = the integral of |F_n - F|, exact), beside its floor, the same figure for 5,000 exact
draws of the conditional. With ``--model`` the same table for a trained 8gaussians model (the default "2d"
recipe, ``npdiff train --data 8gaussians``) on fewer budgets, where its exact figures are the model's error and
the method's together.
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

from npdiff import checkpoint  # noqa: E402
from npdiff.data import toy2d  # noqa: E402
from npdiff.edit import dps_sample, exact_conditional, repaint_nfe, repaint_sample, replacement_sample  # noqa: E402

#: per set, (a, where it is): x1 = a on a mode, between modes and in a tail of the marginal of x1
VALUES = {
    "8gaussians": [(0.0, "mode"), (1.0, "between"), (4.0, "tail")],
    # the columns [2k, 2k + 2) of the board; its support ends at |x1| = 4, so its "tail" is the outer edge
    "checkerboard": [(1.0, "mode"), (1.9, "between"), (3.9, "tail")],
    "rings": [(0.0, "mode"), (1.875, "between"), (3.1, "tail")],
}
BUDGETS = (20, 50, 100, 250)
METHODS = [("replacement", {}), ("repaint j=1 r=2", dict(jump_length=1, resamplings=2)),
           ("repaint j=5 r=3", dict(jump_length=5, resamplings=3)), ("dps zeta=0.1", dict(scale=0.1)),
           ("dps zeta=0.3", dict(scale=0.3))]
N = 5000


def steps_for(method: str, kw: dict, budget: int) -> int | None:
    r"""The most chain steps whose evaluations fit the budget (None when none does)."""
    if method == "replacement":
        return budget
    if method.startswith("dps"):
        return budget // 2
    for steps in range(budget, 0, -1):
        try:
            if repaint_nfe(steps, kw["jump_length"], kw["resamplings"]) <= budget:
                return steps
        except ValueError:  # a jump longer than the chain
            continue
    return None


def run(denoiser, method: str, kw: dict, steps: int, a: float, rng: np.random.Generator):
    known, mask = np.array([a, 0.0]), np.array([True, False])
    if method == "replacement":
        return replacement_sample(denoiser, known, mask, N, rng, steps=steps)
    if method.startswith("repaint"):
        return repaint_sample(denoiser, known, mask, N, rng, steps=steps, **kw)
    return dps_sample(denoiser, known, mask, N, rng, steps=steps, **kw)


def table(name: str, denoiser, model: str, budgets, methods, seed: int) -> list[dict]:
    data = toy2d.load(name)
    rows = []
    for a, where in VALUES[name]:
        cond = exact_conditional(data, a)
        floor = cond.wasserstein1(cond.sample(N, np.random.default_rng(seed + 1)))
        for method, kw in methods:
            for budget in budgets:
                steps = steps_for(method, kw, budget)
                if steps is None:
                    continue
                t0 = time.perf_counter()
                res = run(denoiser, method, kw, steps, a, np.random.default_rng(seed))
                w1 = cond.wasserstein1(res.x[:, 1])
                rows.append(dict(model=model, data=name, a=a, where=where, log_p_a=cond.log_marginal, method=method,
                                 budget=budget, steps=steps, nfe=res.nfe, w1=w1, floor=floor,
                                 known_error=float(np.mean(np.abs(res.x[:, 0] - a)))))
                print(f"{model} {name} a={a} {method} budget={budget} steps={steps} nfe={res.nfe} W1={w1:.4f} "
                      f"floor={floor:.4f} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="a trained 8gaussians checkpoint, run beside the oracles")
    p.add_argument("--sets", nargs="+", default=list(VALUES), choices=list(VALUES))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rows = []
    for name in args.sets:
        rows += table(name, toy2d.load(name).oracle(), "oracle", BUDGETS, METHODS, args.seed)
    if args.model:
        model = checkpoint.load(args.model).denoiser(ema=True)
        # the network's VJP is a backward pass: DPS with one scale, to keep the run to minutes
        rows += table("8gaussians", model, "trained", (20, 100), METHODS[:3], args.seed)
        rows += table("8gaussians", model, "trained", (20, 100), METHODS[3:4], args.seed)
    write_results("inpaint_2d", rows, notes=dict(samples=N, schedule="vp_linear", T=1000, variance="large",
                                                 conditional_grid="trapezoid, 16001 points on [-8, 8]",
                                                 model=args.model or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
