r"""The main job on an idle machine and beside a CPU-bound neighbour: npdiff's thread choice at work.

    python benchmarks/threads_busy.py [--steps 10000] [--n 2000] [--rounds 1] [--blas N]

Runs what ``npdiff demo`` runs first, as a user would, in fresh ``python -m npdiff`` processes:

- the training phase: ``npdiff train --data 8gaussians --steps 10000`` (the demo's recipe, steps
  and seed), timed by the command itself (its JSON ``seconds``);
- the exact likelihood of 2,000 fresh points: ``npdiff nll --n 2000`` on the model just trained
  (its JSON ``seconds``: the solve only, not the import);

once with no process of its own beside them ("idle"), then again while a neighbour, a pure-Python busy loop
this script starts and stops itself, holds one core ("busy"). The goal is busy within 1.5x of idle.

The commands run without any BLAS variable in their environment (``OPENBLAS_NUM_THREADS`` and the
rest of :data:`npdiff.threads.BLAS_ENV` are removed), so what is measured is npdiff's own choice:
one BLAS thread inside the work (:mod:`npdiff.threads`). ``--blas N`` sets
``OPENBLAS_NUM_THREADS=N`` for them instead (a user's explicit setting wins), e.g. ``--blas 2`` for
what the command line did before it chose its threads. A first tiny run of each command fills
the Numba cache, so no figure includes a compile.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine_facts, write_results

from npdiff.threads import BLAS_ENV

REPO = Path(__file__).resolve().parent.parent
NEIGHBOUR = "while True: pass"  # one core, no memory traffic, no BLAS: the browser tab of a laptop


def child_env(blas: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in BLAS_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    if blas is not None:
        env["OPENBLAS_NUM_THREADS"] = str(blas)
    return env


def npdiff_json(args: list[str], env: dict[str, str], cwd: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "npdiff", *args, "--json"], env=env, cwd=cwd, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"npdiff {' '.join(args)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def measure(steps: int, n: int, env: dict[str, str], cwd: str) -> dict[str, float | str]:
    tr = npdiff_json(["train", "--data", "8gaussians", "--steps", str(steps), "--out", "model"], env, cwd)
    nll = npdiff_json(["nll", "--model", "model", "--data", "8gaussians", "--n", str(n)], env, cwd)
    return {"train_s": tr["seconds"], "steps_per_s": tr["steps_per_s"], "nll_s": nll["seconds"], "nfe": nll["ode_nfe"],
            "gap": nll["gap_nats"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10_000, help="training steps (npdiff demo: 10000)")
    ap.add_argument("--n", type=int, default=2000, help="points of the likelihood")
    ap.add_argument("--rounds", type=int, default=1, help="idle-then-busy rounds")
    ap.add_argument("--blas", type=int, default=None, help="set OPENBLAS_NUM_THREADS=N for the commands")
    args = ap.parse_args()
    env = child_env(args.blas)
    os.environ.setdefault("NPDIFF_NO_TORCH", "1")  # the facts below need no PyTorch
    print(machine_facts())
    print("commands' BLAS: " + (f"OPENBLAS_NUM_THREADS={args.blas} (the user's setting)" if args.blas is not None else
                                "no BLAS variable set, npdiff's own choice (one thread inside the work)")
          + f"; NPDIFF_THREADS={env.get('NPDIFF_THREADS', 'unset')}")
    rows = []
    with tempfile.TemporaryDirectory() as cwd:
        npdiff_json(["train", "--data", "8gaussians", "--steps", "20", "--out", "model"], env, cwd)  # fills the cache
        npdiff_json(["nll", "--model", "model", "--data", "8gaussians", "--n", "20"], env, cwd)
        for r in range(args.rounds):
            print(f"round {r + 1}: idle ...", flush=True)
            rows.append(("idle", measure(args.steps, args.n, env, cwd)))
            neighbour = subprocess.Popen([sys.executable, "-c", NEIGHBOUR])
            try:
                time.sleep(1.0)  # let the loop take its core
                print(f"round {r + 1}: busy (neighbour pid {neighbour.pid}) ...", flush=True)
                rows.append(("busy", measure(args.steps, args.n, env, cwd)))
            finally:
                neighbour.terminate()
                neighbour.wait()
    print(f"\n| round | machine | train {args.steps} steps (s) | steps/s | NLL of {args.n} points (s) | nfe | paired gap "
          "|")
    print("|---|---|---|---|---|---|---|")
    for k, (kind, m) in enumerate(rows):
        print(f"| {k // 2 + 1} | {kind} | {m['train_s']:.1f} | {m['steps_per_s']:.0f} | {m['nll_s']:.2f} | {m['nfe']} | "
              f"{m['gap']:.4f} |")
    write_results("threads_busy", [{"round": k // 2 + 1, "machine": kind, **m} for k, (kind, m) in enumerate(rows)],
                  notes={"steps": args.steps, "n": args.n, "blas": args.blas})
    for r in range(args.rounds):
        idle, busy = rows[2 * r][1], rows[2 * r + 1][1]
        print(f"round {r + 1}: busy / idle = {busy['train_s'] / idle['train_s']:.2f}x (training), "
              f"{busy['nll_s'] / idle['nll_s']:.2f}x (likelihood); goal: within 1.5x")


if __name__ == "__main__":
    main()
