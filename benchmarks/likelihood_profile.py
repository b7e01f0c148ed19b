r"""Where one exact-likelihood evaluation goes: matmuls, fused kernels, embedding, glue, and the solver.

    OPENBLAS_NUM_THREADS=1 python benchmarks/likelihood_profile.py [--n 2000] [--repeats 30]

One evaluation of the likelihood ODE's field on ``--n`` points is what
:func:`npdiff.likelihood.ode_log_likelihood` calls ~200 times: the network's output and exact
trace by the blocked forward mode of :mod:`npdiff.nn.fast.trace`. The script times it whole,
then each kind of call it makes, replayed alone with the same shapes and the same buffers (the
calls are recorded once by standing in for the trace module's kernels and for ``np.matmul``), so
the parts add up to about the whole and the rest is Python glue. It also counts the matmuls'
floating-point operations, which give the rate BLAS reaches, and times a full solve to split it
into evaluations and the solver's own work (SciPy's RK45 between evaluations). Medians of
``--repeats`` runs, written to ``benchmarks/results/likelihood_profile.json``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import machine_facts, write_results

import npdiff.nn.fast.trace as trace_module
from npdiff.data import toy2d
from npdiff.likelihood import ode_log_likelihood
from npdiff.nn import MLPConfig
from npdiff.nn.fast import kernels as K
from npdiff.nn.model import DiffusionMLP
from npdiff.recipes import recipe


class _Recorder:
    r"""Stands in for numpy and the kernels inside the trace module, recording every call with its arguments."""

    def __init__(self, target) -> None:
        self.target, self.calls = target, []

    def __getattr__(self, name):
        fn = getattr(self.target, name)
        if not callable(fn) or name not in ("matmul", "embed", "act_tangents", "trace_out"):
            return fn

        def record(*args, **kwargs):
            self.calls.append((name, fn, args, kwargs))
            return fn(*args, **kwargs)

        return record


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    print(machine_facts())
    model_kw, _, schedule = recipe("2d")
    model = DiffusionMLP(MLPConfig(dim=2, **model_kw), schedule, rng=np.random.default_rng(0))
    x = toy2d.load("8gaussians").sample(args.n, np.random.default_rng(1))
    t = np.full(args.n, 0.5)
    print(f"{args.n} points, {model!r}")

    def evaluate():
        return model.eps_and_divergence(x, t)

    evaluate()  # compile
    whole = median_time(evaluate, args.repeats)

    rec_np, rec_k = _Recorder(np), _Recorder(K)
    trace_module.np, trace_module.K = rec_np, rec_k
    try:
        evaluate()
    finally:
        trace_module.np, trace_module.K = np, K
    parts = {}
    for name in ("matmul", "embed", "act_tangents", "trace_out"):
        calls = [(fn, a, kw) for n, fn, a, kw in rec_np.calls + rec_k.calls if n == name]

        def replay(calls=calls):
            for fn, a, kw in calls:
                fn(*a, **kw)

        parts[name] = (median_time(replay, args.repeats), len(calls))
    flops = sum(2 * a[0].shape[0] * a[0].shape[1] * a[1].shape[1] for n, _, a, _ in rec_np.calls if n == "matmul")

    print(f"one evaluation: {1e3 * whole:.2f} ms")
    accounted = 0.0
    labels = {"matmul": "matrix products (points and their tangents, every layer)",
              "act_tangents": "fused activation kernels on the tangent rows",
              "embed": "the coordinate and time embedding", "trace_out": "the trace read off the output tangents"}
    rows = []
    for name, (seconds, count) in parts.items():
        accounted += seconds
        rows.append({"part": labels[name], "ms": 1e3 * seconds, "share": seconds / whole, "calls": count})
        extra = f", {flops / 1e9:.3f} GFLOP at {flops / seconds / 1e9:.1f} GFLOP/s" if name == "matmul" else ""
        print(f"  {name:13s} {1e3 * seconds:7.2f} ms  {100 * seconds / whole:5.1f}%  ({count} calls{extra})")
    print(f"  {'the rest':13s} {1e3 * (whole - accounted):7.2f} ms  {100 * (whole - accounted) / whole:5.1f}%  "
          "(Python glue, the checks at the model's door, the conversion to eps, allocations)")

    res = ode_log_likelihood(model, x[:50])  # compile the solver's path
    t0 = time.perf_counter()
    res = ode_log_likelihood(model, x)
    solve = time.perf_counter() - t0
    per_eval = median_time(lambda: model.eps_and_divergence(x, 0.5), max(5, args.repeats // 3))
    print(f"a full solve: {solve:.2f} s for {res.nfe} evaluations; evaluations {res.nfe * per_eval:.2f} s, "
          f"the solver's own work {solve - res.nfe * per_eval:.2f} s")
    rows.append({"part": "the rest (Python glue, checks, allocations)", "ms": 1e3 * (whole - accounted),
                 "share": (whole - accounted) / whole, "calls": None})
    rows.append({"part": "one evaluation, whole", "ms": 1e3 * whole, "share": 1.0, "calls": None})
    write_results("likelihood_profile", rows,
                  notes={"n": args.n, "repeats": args.repeats, "gflop": flops / 1e9,
                         "gflop_per_s": flops / parts["matmul"][0] / 1e9, "solve_s": solve, "solve_nfe": res.nfe,
                         "solver_own_s": solve - res.nfe * per_eval})


if __name__ == "__main__":
    main()
