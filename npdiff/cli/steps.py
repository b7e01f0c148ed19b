r"""``npdiff steps``: step times optimized for one model, written as a step file for ``npdiff sample --steps-file``.

For a 2-D model the times minimize the exact divergence :math:`\mathrm{KL}(p_F\,\|\,p_{\text{flow}})` of
what the few-step sampler draws from the model's own converged flow
(:func:`npdiff.sample.step_search.optimize_steps` with :func:`~npdiff.sample.step_search.flow_log_density`
as the target), so that ``--steps`` evaluations draw what some hundred RK45 evaluations draw. The KL is
reported on fresh starting points, beside the grid the search started from. ``--steps`` counts denoiser
evaluations, as in ``npdiff sample``. For an image model (64-D) the exact KL would need an exact
likelihood per trial of the times; its steps come from a surrogate instead, GITS's dynamic programme over
a teacher trajectory's local errors (:mod:`npdiff.sample.step_dp`), and no KL is reported.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..sample.fast import MIN_NFE
from ..sample.step_dp import dp_steps, teacher_costs
from ..sample.step_file import save_steps
from ..sample.step_search import flow_log_density, optimize_steps
from ._common import UserError, check_out_file, emit, load_model, pm, say

__all__ = ["DEFAULT_EVALUATIONS", "DEFAULT_NFE", "json_path", "run", "surrogate"]

#: the budget of evaluations to optimize for without ``--steps``
DEFAULT_NFE = 10
#: trials of the times at most (each one run of the sampler's Jacobian and one exact likelihood of the flow on the
#: fitting points, one to two seconds on the default 2-D model): 200 trials took unipc's 10 steps on the trained
#: 8gaussians model from KL 0.027 (the quadratic grid) to 0.0029 to its flow, in about seven minutes
DEFAULT_EVALUATIONS = 200


def json_path(path: str) -> Path:
    r"""The file written for ``path``: ``.json`` is appended unless the name ends with it."""
    return Path(path if path.endswith(".json") else path + ".json")


def _kl_text(kl: float, se: float) -> str:
    return f"{kl:.4f}{pm(se)}" if np.isfinite(kl) else "not estimable (the sampler folds space there)"


def surrogate(args: argparse.Namespace, ck, model, out: Path) -> int:
    r"""A model of more than two dimensions: the exact KL would need an exact likelihood (D tangents a step) per
    trial, so the times come from GITS's dynamic programme over a teacher's local errors
    (:func:`~npdiff.sample.step_dp.dp_steps`, each step priced relative to its noise level), a surrogate
    whose KL is not computed."""
    say(f"model {args.model!r} is {model.dim}-D: the exact KL to its flow would cost one exact likelihood per trial of "
        f"the times, so they come from a surrogate, GITS's dynamic programme over a teacher's local errors on "
        f"{args.n_fit} points (no KL is reported)")
    t0 = time.perf_counter()
    costs = teacher_costs(model, np.random.default_rng(args.seed), n=args.n_fit)
    times = dp_steps(costs, args.sampler, args.steps, relative=True)
    seconds = time.perf_counter() - t0
    objective = ("GITS-style dynamic programme: the cheapest path of DDIM steps between a teacher trajectory's "
                 "fine times, each step's error relative to the noise level it lands on (a surrogate of the KL)")
    save_steps(out, times, model.schedule, sampler=args.sampler, nfe=args.steps, objective=objective,
               data=ck.data_name, model=str(args.model))
    say(f"wrote {times.size - 1} steps to {out} (t = " + ", ".join(f"{t:.4g}" for t in times) + f"; {costs.nfe} "
        f"evaluations, {seconds:.0f} s); use them: npdiff sample --model {args.model} --steps-file {out} --out x.npy")
    emit(args, {"out": str(out), "sampler": args.sampler, "nfe": args.steps, "times": [float(t) for t in times],
                "kl": None, "kl_se": None, "objective": objective, "evaluations": int(costs.nfe),
                "seconds": round(seconds, 3)})
    return 0


def run(args: argparse.Namespace) -> int:
    r"""``npdiff steps``."""
    if args.steps < MIN_NFE[args.sampler]:
        raise UserError(f"--steps {args.steps} is below what {args.sampler} needs for its order: at least "
                        f"{MIN_NFE[args.sampler]} evaluations")
    check_out_file(args.out, "--out")
    out = json_path(args.out)
    check_out_file(str(out), "--out")
    ck, model = load_model(args.model)
    if model.dim != 2:
        return surrogate(args, ck, model, out)
    log_q = flow_log_density(model)
    bar = tqdm(total=args.evaluations, desc="npdiff steps", unit="trial", leave=False, dynamic_ncols=True,
               file=sys.stderr, disable=args.json and not sys.stderr.isatty())

    def counted(x: np.ndarray) -> np.ndarray:  # one call per trial of the times, then two for the validation
        bar.update(1)
        return log_q(x)

    say(f"optimizing the step times of {args.sampler} at {args.steps} evaluations for model {args.model!r} by the "
        f"exact KL to its converged flow ({args.n_fit} fitting points, at most {args.evaluations} trials, starting "
        f"from the {args.start} grid)")
    try:
        res = optimize_steps(model, counted, np.random.default_rng(args.seed), sampler=args.sampler, nfe=args.steps,
                             n_fit=args.n_fit, n_check=args.n_check, start=args.start,
                             max_evaluations=args.evaluations)
    finally:
        bar.close()
    folded = res.folded > 0 or not np.isfinite(res.kl)
    say(f"KL(p_F || p_flow) on {args.n_check} fresh points: {_kl_text(res.kl, res.kl_se)}"
        + ("" if not folded else f"; {res.folded} of {args.n_check} points fold"))
    say(f"  the {args.start} grid it started from: {_kl_text(res.kl_start, res.kl_start_se)}")
    say(f"  search: {res.evaluations} trials in {res.seconds:.0f} s")
    save_steps(out, res.times, model.schedule, sampler=res.sampler, nfe=res.nfe,
               objective=f"{res.objective}, target: the model's converged flow (exact ODE likelihood)",
               data=ck.data_name, model=str(args.model), kl=None if folded else res.kl,
               kl_se=None if folded else res.kl_se)
    say(f"wrote {res.times.size - 1} steps to {out} (t = " + ", ".join(f"{t:.4g}" for t in res.times) + "); "
        f"use them: npdiff sample --model {args.model} --steps-file {out} --out samples.npy")
    emit(args, {"out": str(out), "sampler": res.sampler, "nfe": res.nfe, "times": [float(t) for t in res.times],
                "kl": None if folded else res.kl, "kl_se": None if folded else res.kl_se, "folded": int(res.folded),
                "kl_start": res.kl_start if np.isfinite(res.kl_start) else None,
                "kl_start_se": res.kl_start_se if np.isfinite(res.kl_start) else None, "start": args.start,
                "evaluations": res.evaluations, "seconds": round(res.seconds, 3)})
    return 0
