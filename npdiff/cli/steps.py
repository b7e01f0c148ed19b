r"""``npdiff steps``: step times optimized for one model, written as a step file for ``npdiff sample --steps-file``.

For a 2-D model the times minimize the exact divergence :math:`\mathrm{KL}(p_F\,\|\,p_{\text{flow}})` of
what the few-step sampler draws from the model's own converged flow
(:func:`npdiff.sample.step_search.optimize_steps` with :func:`~npdiff.sample.step_search.flow_log_density`
as the target), so that ``--steps`` evaluations draw what some hundred RK45 evaluations draw. The KL is
reported on fresh starting points, beside the grid the search started from. ``--steps`` counts denoiser
evaluations, as in ``npdiff sample``. An image model (64-D) is refused: the exact KL needs an exact
likelihood per objective evaluation there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..sample.fast import MIN_NFE
from ..sample.step_file import save_steps
from ..sample.step_search import flow_log_density, optimize_steps
from ._common import UserError, check_out_file, emit, load_model, pm, say

__all__ = ["DEFAULT_EVALUATIONS", "DEFAULT_NFE", "json_path", "run"]

#: the budget of evaluations to optimize for without ``--steps``
DEFAULT_NFE = 10
#: trials of the times at most (each one run of the sampler's Jacobian and one exact likelihood of the flow on the
#: fitting points, about a second on the default 2-D model): 150 trials took unipc's 10 steps on the trained
#: 8gaussians model from KL 0.027 (the quadratic grid) to 0.0056 to its flow, in three minutes
DEFAULT_EVALUATIONS = 200


def json_path(path: str) -> Path:
    r"""The file written for ``path``: ``.json`` is appended unless the name ends with it."""
    return Path(path if path.endswith(".json") else path + ".json")


def _kl_text(kl: float, se: float) -> str:
    return f"{kl:.4f}{pm(se)}" if np.isfinite(kl) else "not estimable (the sampler folds space there)"


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
        raise UserError(f"npdiff steps optimizes by the exact KL to the model's flow, which needs one exact likelihood "
                        f"per trial of the times: affordable for 2-D models only, and model {args.model!r} is "
                        f"{model.dim}-D (sample it on a fixed grid: npdiff sample --grid)")
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
