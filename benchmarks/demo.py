r"""The demo's figures and its time per phase: ``npdiff demo`` run as a fresh command.

Runs ``python -m npdiff demo --json`` in a new process (so the Numba cache and the BLAS set-up are what a
user gets) into a temporary folder and records what it prints: the exact NLL of the test points, the true
density's NLL of the same points, the paired gap with its standard error, the network evaluations, and the
wall time of each phase. ``--rounds`` runs it several times (the figures must agree to the last digit; the
times are given per round).

    python benchmarks/demo.py --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from _common import write_results

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def run_demo(extra: list[str]) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.abspath(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run([sys.executable, "-m", "npdiff", "demo", "--json", "--out", out, *extra],
                              env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1, help="fresh runs of the demo")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the demo's)")
    args = p.parse_args()
    extra = [] if args.steps is None else ["--steps", str(args.steps)]
    figures, times = [], []
    for k in range(args.rounds):
        r = run_demo(extra)
        print(json.dumps(r), file=sys.stderr)
        ph = r["phase_seconds"]
        times.append({"round": k + 1, "total_s": r["total_seconds"], "train_s": ph["train"],
                      "steps_per_s": r["steps_per_s"], "nll_s": ph["nll"], "sample_s": ph["sample"],
                      "density_s": ph["density"]})
        figures.append(r)
    r = figures[0]
    write_results("demo", [{
        "n": r["n"], "nll": r["nll_nats"], "true_nll": r["nll_true_nats"], "true_entropy": r["true_entropy_nats"],
        "gap": r["gap_nats"], "gap_se": r["gap_se"], "nfe": r["ode_nfe"], "steps": r["steps"]}])
    write_results("demo_time", times)


if __name__ == "__main__":
    main()
