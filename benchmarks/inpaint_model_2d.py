r"""Inpainting by a model trained for it (GLIDE) in 2D, against the exact conditional and the other methods.

Trains a :class:`~npdiff.nn.context_mlp.ContextMLP` on 8gaussians with the context [x * m | m] of random masks
(:class:`~npdiff.data.masked.MaskedPairs`: 0 or 1 known coordinate, uniformly, and which one uniformly), the
"2d" recipe's network and training otherwise, ``--steps`` steps of batch ``--batch-size`` (fewer and smaller than
the recipe's 26,000 of 512: the context model runs the plain NumPy reference, without the fast path). Then, as
``benchmarks/inpaint_2d.py`` does for replacement, RePaint and DPS, x1 = a is known for a on a mode, between modes
and in a tail, 5,000 samples of x2 are drawn (:func:`npdiff.edit.inpaint_model_sample`: ancestral DDPM, vp_linear,
T = 1000 respaced, fixed-large variance, one evaluation a step) and their Wasserstein-1 distance to the exact
conditional p(x2 | x1 = a) is written to ``benchmarks/results/inpaint_model_2d.json`` beside its floor. The same
model with no coordinate known (the mask all 0: its unconditional half) is scored by the exact ODE NLL of 2,000
fresh points against the set's true NLL of them, to show what the conditioning cost the unconditional model.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/inpaint_model_2d.py
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
from npdiff.data.masked import MaskedPairs  # noqa: E402
from npdiff.edit import exact_conditional, inpaint_model_sample  # noqa: E402
from npdiff.edit.cascade import WithContext  # noqa: E402
from npdiff.likelihood import ode_log_likelihood  # noqa: E402
from npdiff.nn.context_mlp import ContextMLP, ContextMLPConfig  # noqa: E402
from npdiff.recipes import recipe  # noqa: E402
from npdiff.train import TrainConfig, Trainer  # noqa: E402

VALUES = [(0.0, "mode"), (1.0, "between"), (4.0, "tail")]  # benchmarks/inpaint_2d.py's for 8gaussians
BUDGETS = (20, 100)  # the budgets benchmarks/inpaint_2d.py gives its trained model
N = 5000
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "inpaint_model", "8gaussians.npz")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reuse", action="store_true", help="load the checkpoint of an earlier run instead of training")
    args = p.parse_args(argv)
    data = toy2d.load("8gaussians")
    model_kw, train_kw, schedule = recipe("2d")
    train_kw["loss_second_moment_bins"] = 0  # the context MLP's step keeps no per-example losses for the draw
    train_s = None
    if args.reuse and os.path.exists(OUT):
        model = checkpoint.load(OUT).model
    else:
        net = ContextMLP(ContextMLPConfig(dim=2, context_dim=4, **model_kw), schedule, rng=args.seed)
        trainer = Trainer(net, MaskedPairs(data, 2), TrainConfig(**{**train_kw, "steps": args.steps,
                                                                     "batch_size": args.batch_size}), args.seed)
        t0 = time.perf_counter()
        trainer.run(progress=False)
        train_s = time.perf_counter() - t0
        os.makedirs(os.path.dirname(OUT), exist_ok=True)
        trainer.save(OUT)
        model = trainer.denoiser()
        print(f"trained {args.steps} steps in {train_s:.0f} s", file=sys.stderr, flush=True)
    rows = []
    for a, where in VALUES:
        cond = exact_conditional(data, a)
        floor = cond.wasserstein1(cond.sample(N, np.random.default_rng(args.seed + 1)))
        for budget in BUDGETS:
            t0 = time.perf_counter()
            res = inpaint_model_sample(model, np.array([a, 0.0]), np.array([True, False]), N,
                                       np.random.default_rng(args.seed), steps=budget)
            w1 = cond.wasserstein1(res.x[:, 1])
            rows.append(dict(model="mask-conditioned (trained)", data="8gaussians", a=a, where=where,
                             log_p_a=cond.log_marginal, method="mask-conditioned model", budget=budget, steps=budget,
                             nfe=res.nfe, w1=w1, floor=floor, sample_s=time.perf_counter() - t0))
            print(rows[-1], file=sys.stderr, flush=True)
    # the unconditional half: the mask all 0, the context all 0
    x = data.sample(2000, np.random.default_rng(args.seed + 2))
    ll = ode_log_likelihood(WithContext(model, np.zeros((x.shape[0], 4))), x)
    gap = data.log_prob(x) - ll.log_p  # (2000,) the paired gap, nats
    notes = dict(samples=N, schedule="vp_linear", T=1000, variance="large", train_steps=args.steps,
                 batch_size=args.batch_size, train_s=train_s, network="ContextMLP, the 2d recipe's fields, context [x*m | m]",
                 unconditional_nll=float(-ll.log_p.mean()), true_nll=float(-data.log_prob(x).mean()),
                 unconditional_gap=float(gap.mean()), unconditional_gap_se=float(gap.std(ddof=1) / np.sqrt(gap.size)),
                 nll_points=int(x.shape[0]), conditional_grid="trapezoid, 16001 points on [-8, 8]")
    print(notes, file=sys.stderr)
    write_results("inpaint_model_2d", rows, notes=notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
