r"""The exact KL of few-step samplers to the converged flow, in 64 dimensions: the MLP on the 8x8 digits.

    python benchmarks/digits_sampler_kl.py --load model.npz               # a saved digits model
    python benchmarks/digits_sampler_kl.py --steps 48000                  # train the "images" recipe first
    python benchmarks/digits_sampler_kl.py --load model.npz --times times.json   # explicit step times

For a sampler of :func:`npdiff.sample.fast_sample` at 10 and 20 evaluations on each fixed grid, the
map F from the noise z to the ODE's state at ``t_min`` = 1e-3 (no denoising step) has the exact
log-density :math:`\log p_F(F(z)) = \log\mathcal N(z) - \log|\det\partial F/\partial z|`, its Jacobian
by 64 tangents pushed through every step (:class:`npdiff.likelihood.FastSampler`, the MLP's
forward mode in float64). The target is the model's own converged flow: :math:`\log p_{flow}(x)` at
the same samples by the exact ODE likelihood (:func:`npdiff.likelihood.ode_log_likelihood` from
``t_min``, RK45 at ``--rtol``, exact trace by 64 tangents). So

.. math:: \mathrm{KL}(p_F\,\|\,p_{flow}) = \mathbb E_z\big[\log p_F(F(z)) - \log p_{flow}(F(z))\big]

measures only what the sampler's discretization adds, by :func:`npdiff.likelihood.sampler_kl` (the
control variate, with "not estimable" where F folds or E[p_flow/p_F] is not 1). ``--times FILE ...``
adds a row per file of explicit step times (a JSON list of times, or a dict with ``times`` and
optionally ``sampler``, ``nfe`` and a ``name`` that the row's grid column shows), passed to
``fast_sample(times=...)`` where it takes them. Rows go to ``benchmarks/results/NAME.json``
(``--results``, default ``digits_sampler_kl``).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import write_results  # noqa: E402

from npdiff.checkpoint import load  # noqa: E402
from npdiff.data.images import digits  # noqa: E402
from npdiff.likelihood import FastSampler, ode_log_likelihood, sampler_kl  # noqa: E402
from npdiff.nn import MLPConfig  # noqa: E402
from npdiff.nn.model import DiffusionMLP  # noqa: E402
from npdiff.recipes import RECIPES, recipe  # noqa: E402
from npdiff.sample import fast_sample  # noqa: E402
from npdiff.train import TrainConfig, Trainer  # noqa: E402


def kl_to_flow(model, sampler: str, nfe: int, z: np.ndarray, *, grid: str | None = None, times=None,
               t_min: float = 1e-3, rtol: float = 1e-5):
    r"""The exact :math:`\mathrm{KL}(p_F\,\|\,p_{flow})` of a sampler's draws to the model's own flow (module docstring).

    Parameters
    ----------
    model : a denoiser with ``eps_jvp`` (the float64 MLP).
    sampler : a sampler of ``fast_sample``.
    nfe : its evaluations.
    z : (N, D) the starting noise.
    grid : one of the fixed grids (None: the sampler's default), or
    times : explicit step times, for a ``fast_sample`` that takes ``times=`` (then ``grid`` is not used).
    t_min : where the sampler stops, and where the flow's likelihood starts.
    rtol : the likelihood ODE's tolerances (rtol = atol).

    Returns
    -------
    :class:`npdiff.likelihood.SamplerKL`.
    """
    options = dict(t_min=t_min, denoise=False)
    if times is not None:  # the sampler stops at the last of its times, where the flow's likelihood starts
        options, t_min = dict(times=times, denoise=False), float(np.min(times))
    else:
        options["grid"] = grid
    F = FastSampler(model, sampler, nfe, **options)
    return sampler_kl(F, z, lambda x: ode_log_likelihood(model, x, t_min=t_min, rtol=rtol, atol=rtol).log_p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load", metavar="FILE", help="a saved digits model (else train the images recipe)")
    ap.add_argument("--steps", type=int, default=None, help="training steps when training (default: the recipe's)")
    ap.add_argument("--save", metavar="FILE", help="save the model trained here")
    ap.add_argument("--samplers", nargs="+", default=["dpmpp2m", "unipc"])
    ap.add_argument("--grids", nargs="+", default=["uniform", "log_snr", "karras", "quadratic"])
    ap.add_argument("--nfe", nargs="+", type=int, default=[10, 20])
    ap.add_argument("--times", metavar="FILE", nargs="+", default=[],
                    help="JSON step times (a list, or a dict with 'times', 'sampler' and a 'name' for the row's grid "
                         "column), one extra row per file")
    ap.add_argument("--n", type=int, default=200, help="noise draws z, the same for every row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--results", default="digits_sampler_kl")
    args = ap.parse_args()

    if args.load:
        model, note = load(args.load).denoiser(ema=True), f"loaded {args.load}"
    else:
        model_kw, train_kw, schedule = recipe("images")
        if args.steps is not None:
            train_kw["steps"] = args.steps
        d, rng = digits(), np.random.default_rng(args.seed)
        source = d.sample_dequantized if RECIPES["images"].get("data", {}).get("dequantize", True) else d.sample
        trainer = Trainer(DiffusionMLP(MLPConfig(dim=d.dim, **model_kw), schedule, rng=rng), source,
                          TrainConfig(**train_kw), rng)
        t0 = time.perf_counter()
        trainer.run(progress=False)
        model = trainer.denoiser(ema=True)
        if args.save:
            trainer.save(args.save)
        note = f"trained the images recipe {trainer.step} steps in {time.perf_counter() - t0:.0f} s"
    print(f"{note}: {model!r}", flush=True)
    z = np.random.default_rng(args.seed + 1).standard_normal((args.n, model.dim))
    cases = [(s, g, k, None) for s in args.samplers for g in args.grids for k in args.nfe]
    for path in args.times:
        with open(path) as f:
            spec = json.load(f)
        times = spec["times"] if isinstance(spec, dict) else spec
        if "times" not in inspect.signature(fast_sample).parameters:
            raise SystemExit("--times: this fast_sample takes no times= argument")
        s = spec.get("sampler", args.samplers[0]) if isinstance(spec, dict) else args.samplers[0]
        name = spec.get("name", "chosen") if isinstance(spec, dict) else "chosen"
        nfe = spec.get("nfe", len(times) - 1) if isinstance(spec, dict) else len(times) - 1
        cases.append((s, name, nfe, times))
    rows = []
    print("| sampler | grid | nfe | KL to the flow (nats) | E[p_flow/p_F] - 1 | folded | s |", flush=True)
    print("|---|---|---|---|---|---|---|", flush=True)
    for sampler, grid, nfe, times in cases:
        t0 = time.perf_counter()
        res = kl_to_flow(model, sampler, nfe, z, grid=None if times else grid, times=times, rtol=args.rtol)
        ok = res.estimable
        row = dict(sampler=sampler, grid=grid, nfe=nfe, kl=res.kl_cv if ok else None, se=res.se_cv if ok else None,
                   cell=f"{res.kl_cv:.3g} +- {res.se_cv:.1g}" if ok else str(res), estimable=ok,
                   ratio=res.ratio, ratio_se=res.ratio_se, folded=res.density.folded,
                   jacobian=res.density.jacobian, seconds=round(time.perf_counter() - t0, 1))
        rows.append(row)
        print(f"| {sampler} | {grid} | {nfe} | {row['cell']} | {res.ratio - 1:+.2e} +- {res.ratio_se:.1e} | "
              f"{row['folded']} | {row['seconds']} |", flush=True)
    write_results(args.results, rows, notes={"n": args.n, "seed": args.seed, "rtol": args.rtol, "t_min": 1e-3,
                                            "model": note})


if __name__ == "__main__":
    main()
