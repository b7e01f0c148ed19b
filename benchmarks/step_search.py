r"""Step times chosen by the exact KL, against the fixed grids and a GITS-style DP, on the same fresh points.

    python benchmarks/step_search.py                                   # oracles, trained model, transfer, digits
    python benchmarks/step_search.py --parts oracle --sets 8gaussians --nfe 10 --samplers dpmpp2m
    python benchmarks/step_search.py --parts trained --model M/model.npz
    python benchmarks/step_search.py --parts digits --digits-model D/model.npz
    python benchmarks/step_search.py --from-json rows.jsonl            # write the results file of saved rows

**Oracles** (8gaussians, checkerboard, rings). Each sampler at each budget runs on: the four fixed
grids of :mod:`npdiff.sample.grids`; GITS's DP (:func:`npdiff.sample.step_dp.dp_steps` on a teacher
of ``--dp-n`` points through 100 log-SNR-uniform fine times; plain, and with each step's error over
the noise level it lands on); and the times of :func:`npdiff.sample.step_search.optimize_steps`
(Powell on ``--n-fit`` fixed points, ``--max-evaluations``, from the fixed grid of least KL on 1,000
other points; its result screened for folds on ``--n-screen`` more, module docstring of
:mod:`npdiff.sample.step_search`). Every row is
scored by the exact :math:`\mathrm{KL}(p_F\,\|\,q_{t_{\min}})` (control-variate estimate, central
differences in float64) on the same ``--n-check`` fresh points, never seen by the search; ``bound``
is the one-sided 95% upper bound kl + 1.645 se; a row whose map folds (det dF/dz <= 0) at any
point is "not estimable" (kl null) with its folded share.

**Trained** (the default ``npdiff train --data 8gaussians`` model, ``--model``). The target is the
model's converged flow: RK45 at rtol = atol = ``--flow-tol`` from the same noise. For each step choice:
the KL to the flow at ``t_min`` (:func:`npdiff.sample.step_search.flow_log_density` as :math:`\log q`)
on the first ``--n-kl-trained`` of the ``--n-trained`` noise draws, and the mean TRUE log-density of the
data at the samples after the final denoising step (``nfe + 1`` evaluations) minus the flow's (also
denoised), paired on the same noise. The step choices: the fixed grids, the DP, the oracle's optimized
steps (transfer), and a search on the model against its flow (warm-started from the oracle's steps; its
cost).

**Transfer to another set**: the 8gaussians oracle's steps on the checkerboard and rings oracles.

**Digits** (``--digits-model``): the exact KL is too dear to optimize in 64 dimensions; the steps
are chosen by (a) the DP and (b) a search of the pathwise distance to the converged flow's output
from the same noise, and their times written to the results file (the exact 64-D KL is measured
elsewhere).

Results: ``benchmarks/results/step_search.json`` (``--results NAME``).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import write_results  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

from npdiff import checkpoint  # noqa: E402
from npdiff.data import toy2d  # noqa: E402
from npdiff.sample import fast_sample, ode_sample  # noqa: E402
from npdiff.sample.fast import grid_steps  # noqa: E402
from npdiff.sample.grids import GRIDS, time_grid  # noqa: E402
from npdiff.sample.step_dp import dp_steps, teacher_costs  # noqa: E402
from npdiff.sample.step_search import (  # noqa: E402
    flow_log_density,
    log_snr_positions,
    optimize_steps,
    steps_kl,
    times_from_positions,
)

T_MIN = 1e-3
Z95 = 1.6448536269514722  # one-sided 95% normal quantile
COLUMNS = ["part", "set", "model", "sampler", "nfe", "steps", "kl", "se", "bound", "folded", "shift", "shift_se",
           "evaluations", "seconds", "times"]


def row(**kw) -> dict:
    out = {c: None for c in COLUMNS}
    out.update(kw)
    if out["kl"] is not None and np.isfinite(out["kl"]) and out["se"] is not None:
        out["bound"] = out["kl"] + Z95 * out["se"]
    if out["kl"] is not None and not np.isfinite(out["kl"]):
        out["kl"] = out["se"] = None  # not estimable: a fold, never a number
    if isinstance(out["times"], np.ndarray):
        out["times"] = [float(t) for t in out["times"]]
    return out


def emit(r: dict, args) -> dict:
    kl = "not estimable" if r["kl"] is None else f"{r['kl']:.4g} +- {r['se']:.2g} (<= {r['bound']:.4g})"
    extra = "" if r["shift"] is None else f"; log-density shift {r['shift']:+.4f} +- {r['shift_se']:.4f}"
    cost = "" if r["evaluations"] is None else f"; {r['evaluations']} evaluations, {r['seconds'] or 0:.1f} s"
    print(f"{r['part']} {r['set']} {r['model']} {r['sampler']} nfe={r['nfe']} {r['steps']}: KL {kl}, folded "
          f"{r['folded']}{extra}{cost}", flush=True)
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(r) + "\n")
    return r


def fixed_and_dp(model, sampler: str, nfe: int, costs) -> dict[str, np.ndarray]:
    K = grid_steps(sampler, nfe)
    out = {g: time_grid(model.schedule, K, g, T_MIN) for g in GRIDS}
    out["dp"] = dp_steps(costs, sampler, nfe)
    out["dp_relative"] = dp_steps(costs, sampler, nfe, relative=True)
    return out


def run_oracles(args, best: dict) -> list[dict]:
    rows = []
    for set_name in args.sets:
        oracle = toy2d.load(set_name).oracle()

        def log_q(x, oracle=oracle):
            return oracle.log_prob(x, T_MIN)

        z = np.random.default_rng(args.seed + 1000).standard_normal((args.n_check, 2))  # the same fresh points
        t0 = time.perf_counter()
        costs = teacher_costs(oracle, args.seed + 7, n=args.dp_n, fine_steps=100, t_min=T_MIN)
        dp_seconds = time.perf_counter() - t0
        for sampler in args.samplers:
            for nfe in args.nfe:
                for name, times in fixed_and_dp(oracle, sampler, nfe, costs).items():
                    kl, se, folded = steps_kl(oracle, log_q, z, times, sampler=sampler, nfe=nfe)
                    rows.append(emit(row(part="oracle", set=set_name, model="oracle", sampler=sampler, nfe=nfe,
                                         steps=name, kl=kl, se=se, folded=folded, times=times,
                                         evaluations=costs.nfe if name.startswith("dp") else None,
                                         seconds=dp_seconds if name.startswith("dp") else None), args))
                z_start = np.random.default_rng(args.seed + 500).standard_normal((1000, 2))
                start = min(GRIDS, key=lambda g: steps_kl(oracle, log_q, z_start, time_grid(
                    oracle.schedule, grid_steps(sampler, nfe), g, T_MIN), sampler=sampler, nfe=nfe)[0])
                res = optimize_steps(oracle, log_q, args.seed, sampler=sampler, nfe=nfe, n_fit=args.n_fit,
                                     n_check=args.n_screen, start=start, max_evaluations=args.max_evaluations)
                evaluations, seconds = res.evaluations, res.seconds
                for _ in range(args.restarts):  # Powell again from where it stopped: a fresh set of directions
                    res = optimize_steps(oracle, log_q, args.seed, sampler=sampler, nfe=nfe, n_fit=args.n_fit,
                                         n_check=args.n_screen, start=res.times, max_evaluations=args.max_evaluations)
                    evaluations, seconds = evaluations + res.evaluations, seconds + res.seconds
                kl, se, folded = steps_kl(oracle, log_q, z, res.times, sampler=sampler, nfe=nfe)
                best[(set_name, sampler, nfe)] = res.times
                rows.append(emit(row(part="oracle", set=set_name, model="oracle", sampler=sampler, nfe=nfe,
                                     steps=f"optimized from {start}", kl=kl, se=se, folded=folded, times=res.times,
                                     evaluations=evaluations, seconds=seconds), args))
    return rows


def transfer_sets(args, best: dict) -> list[dict]:
    rows = []
    for (source, sampler, nfe), times in list(best.items()):
        for set_name in args.transfer_to:
            if set_name == source:
                continue
            oracle = toy2d.load(set_name).oracle()
            z = np.random.default_rng(args.seed + 1000).standard_normal((args.n_check, 2))
            kl, se, folded = steps_kl(oracle, lambda x, o=oracle: o.log_prob(x, T_MIN), z, times, sampler=sampler,
                                      nfe=nfe)
            rows.append(emit(row(part="transfer", set=set_name, model="oracle", sampler=sampler, nfe=nfe,
                                 steps=f"optimized on {source}", kl=kl, se=se, folded=folded, times=times), args))
    return rows


def run_trained(args, best: dict) -> list[dict]:
    model = checkpoint.load(args.model).denoiser(ema=True)
    data = toy2d.load("8gaussians")
    z = np.random.default_rng(args.seed + 2000).standard_normal((args.n_trained, 2))
    t0 = time.perf_counter()
    flow = ode_sample(model, None, 0, x_T=z, rtol=args.flow_tol, atol=args.flow_tol, t_min=T_MIN, denoise=True)
    flow_true = data.log_prob(flow.x)  # (N,) the data's true log-density at the flow's samples
    print(f"trained: flow RK45 {args.flow_tol:g} {flow.nfe} nfe, mean true log-density {flow_true.mean():.4f}, "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    rows = [emit(row(part="trained", set="8gaussians", model="trained", sampler="rk45", nfe=flow.nfe, steps="adaptive",
                     kl=0.0, se=0.0, shift=float(flow_true.mean()), shift_se=0.0), args)]
    log_flow = flow_log_density(model, t_min=T_MIN, rtol=args.flow_tol, atol=args.flow_tol)
    t0 = time.perf_counter()
    log_flow(z[:200])
    flow_cost = (time.perf_counter() - t0) / 200
    print(f"trained: the flow's exact log-density costs {1e3 * flow_cost:.2f} ms per point", flush=True)
    costs = teacher_costs(model, args.seed + 7, n=args.dp_n, fine_steps=100, t_min=T_MIN)
    for sampler in args.samplers:
        for nfe in args.trained_nfe:
            choices = fixed_and_dp(model, sampler, nfe, costs)
            if ("8gaussians", sampler, nfe) in best:
                choices["oracle-optimized"] = best[("8gaussians", sampler, nfe)]
            cost = {}
            if args.search_trained:
                start = choices.get("oracle-optimized", "quadratic")
                res = optimize_steps(model, log_flow, args.seed, sampler=sampler, nfe=nfe, n_fit=args.n_fit_trained,
                                     n_check=2, start=start, max_evaluations=args.max_evaluations_trained)
                choices["optimized on the model"] = res.times
                cost["optimized on the model"] = (res.evaluations, res.seconds)
            for name, times in choices.items():
                kl, se, folded = steps_kl(model, log_flow, z[: args.n_kl_trained], times, sampler=sampler, nfe=nfe)
                x = fast_sample(model, None, 0, sampler=sampler, nfe=nfe, times=times, x_T=z, denoise=True).x
                d = data.log_prob(x) - flow_true  # (N,) paired on the same noise
                ev, sec = cost.get(name, (None, None))
                rows.append(emit(row(part="trained", set="8gaussians", model="trained", sampler=sampler, nfe=nfe,
                                     steps=name, kl=kl, se=se, folded=folded, shift=float(d.mean()),
                                     shift_se=float(d.std(ddof=1) / np.sqrt(d.size)), times=times, evaluations=ev,
                                     seconds=sec), args))
    rows.append(emit(row(part="cost", set="8gaussians", model="trained", sampler="rk45", steps="flow log-density",
                         seconds=flow_cost), args))
    return rows


def run_digits(args) -> list[dict]:
    r"""Steps for the digits model by a cheap surrogate: the pathwise distance to the flow's output, and the DP."""
    model = checkpoint.load(args.digits_model).denoiser(ema=True)
    D = model.dim
    rows = []
    z_fit = np.random.default_rng(args.seed + 3000).standard_normal((args.digits_n, D))
    z_check = np.random.default_rng(args.seed + 3001).standard_normal((args.digits_n, D))
    flows = {}
    for name, zz in (("fit", z_fit), ("check", z_check)):
        flows[name] = ode_sample(model, None, 0, x_T=zz, rtol=1e-6, atol=1e-6, t_min=T_MIN, denoise=False).x
    costs = teacher_costs(model, args.seed + 7, n=args.digits_n, fine_steps=100, t_min=T_MIN, rtol=1e-6, atol=1e-6)

    def distance(times, zz, ref, sampler, nfe):
        x = fast_sample(model, None, 0, sampler=sampler, nfe=nfe, times=times, x_T=zz, denoise=False).x
        d = np.sqrt(((x - ref) ** 2).mean(axis=1))  # (N,) RMS per pixel
        return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))

    out = {}
    for sampler in args.samplers:
        for nfe in args.digits_nfe:
            choices = fixed_and_dp(model, sampler, nfe, costs)
            K = grid_steps(sampler, nfe)
            count = [0]

            def objective(theta, sampler=sampler, nfe=nfe, count=count):
                count[0] += 1
                try:
                    return distance(times_from_positions(model.schedule, theta, T_MIN), z_fit, flows["fit"], sampler,
                                    nfe)[0]
                except FloatingPointError:
                    return 1e3

            t0 = time.perf_counter()
            theta0 = log_snr_positions(model.schedule, choices["quadratic"])
            opt = minimize(objective, theta0, method="Powell",
                           options={"maxfev": args.digits_evaluations, "xtol": 1e-3, "ftol": 1e-6})
            choices["pathwise"] = times_from_positions(model.schedule, opt.x, T_MIN)
            seconds = time.perf_counter() - t0
            for name, times in choices.items():
                m, se = distance(times, z_check, flows["check"], sampler, nfe)
                rows.append(emit(row(part="digits", set="digits", model="trained", sampler=sampler, nfe=nfe, steps=name,
                                     shift=m, shift_se=se, times=times,
                                     evaluations=count[0] if name == "pathwise" else (costs.nfe if name.startswith("dp")
                                                                                      else None),
                                     seconds=seconds if name == "pathwise" else None), args))
            assert K + 1 == choices["pathwise"].size
            out[f"{sampler}/{nfe}"] = {name: [float(t) for t in times] for name, times in choices.items()}
    if args.digits_out:
        with open(args.digits_out, "w") as f:
            json.dump({"t_min": T_MIN, "model": "npdiff train --data digits --arch mlp (the MLP recipe)", "metric_in_results":
                       "RMS per pixel distance to the RK45 1e-6 flow's state at t_min from the same noise",
                       "times": out}, f, indent=1)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", nargs="+", default=["oracle", "transfer", "trained"],
                   choices=["oracle", "transfer", "trained", "digits"])
    p.add_argument("--sets", nargs="+", default=["8gaussians", "checkerboard", "rings"])
    p.add_argument("--samplers", nargs="+", default=["dpmpp2m", "unipc"])
    p.add_argument("--nfe", nargs="+", type=int, default=[5, 8, 10])
    p.add_argument("--n-fit", type=int, default=1000)
    p.add_argument("--n-check", type=int, default=20000)
    p.add_argument("--max-evaluations", type=int, default=1500)
    p.add_argument("--restarts", type=int, default=0, help="Powell runs after the first, each from the last result")
    p.add_argument("--n-screen", type=int, default=5000, help="fresh points on which the search screens its result "
                   "for folds (optimize_steps' n_check)")
    p.add_argument("--dp-n", type=int, default=1000)
    p.add_argument("--transfer-to", nargs="+", default=["checkerboard", "rings"])
    p.add_argument("--model", default=None, help="the default 8gaussians model's model.npz")
    p.add_argument("--trained-nfe", nargs="+", type=int, default=[10])
    p.add_argument("--n-trained", type=int, default=4000, help="noise draws of the log-density shift")
    p.add_argument("--n-kl-trained", type=int, default=1000, help="the first draws of those, for the KL to the flow")
    p.add_argument("--flow-tol", type=float, default=1e-7)
    p.add_argument("--search-trained", action="store_true", help="also search the steps against the model's flow")
    p.add_argument("--n-fit-trained", type=int, default=200)
    p.add_argument("--max-evaluations-trained", type=int, default=300)
    p.add_argument("--best-from", default=None, help="rows (jsonl) holding the oracle's optimized steps")
    p.add_argument("--digits-model", default=None)
    p.add_argument("--digits-nfe", nargs="+", type=int, default=[10, 20])
    p.add_argument("--digits-n", type=int, default=500)
    p.add_argument("--digits-evaluations", type=int, default=400)
    p.add_argument("--digits-out", default=None, help="also write the digits' chosen times to this JSON file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="append every row to this jsonl file")
    p.add_argument("--from-json", default=None, help="write the results file from these rows and stop")
    p.add_argument("--results", default="step_search")
    args = p.parse_args()
    notes = {"t_min": T_MIN, "n_check": args.n_check, "n_fit": args.n_fit, "max_evaluations": args.max_evaluations,
             "dp": f"teacher RK45 1e-7 on {args.dp_n} points through 100 log-SNR-uniform fine times",
             "kl": "exact KL(p_F || q_t_min), control-variate estimate, central differences in float64",
             "bound": "one-sided 95%: kl + 1.645 se", "n_trained": args.n_trained, "flow_tol": args.flow_tol}
    if args.from_json:
        with open(args.from_json) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        write_results(args.results, rows, columns=COLUMNS, notes=notes)
        return
    best: dict = {}
    if args.best_from:
        with open(args.best_from) as f:
            for line in f:
                r = json.loads(line)
                if r["part"] == "oracle" and r["steps"].startswith("optimized"):
                    best[(r["set"], r["sampler"], r["nfe"])] = np.array(r["times"])
    rows = []
    if "oracle" in args.parts:
        rows += run_oracles(args, best)
    if "transfer" in args.parts:
        rows += transfer_sets(args, {k: v for k, v in best.items() if k[0] == "8gaussians"})
    if "trained" in args.parts and args.model:
        rows += run_trained(args, best)
    if "digits" in args.parts and args.digits_model:
        rows += run_digits(args)
    write_results(args.results, rows, columns=COLUMNS, notes=notes)


if __name__ == "__main__":
    main()
