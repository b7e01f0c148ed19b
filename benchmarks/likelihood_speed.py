r"""Exact ODE likelihood speed: the NLL of 2,000 2D points with the default MLP, in float64.

    python benchmarks/likelihood_speed.py [--n 2000] [--train-steps 3000] [--pairs 5]

Both sides integrate the same augmented ODE (positions and accumulated divergence) with
``scipy.integrate.solve_ivp`` RK45 at rtol = atol = 1e-5 on the whole batch as one state.
npdiff gets the exact trace from its hand-written forward-mode Jacobian (the D tangents of a
block of points ride in one array with the points, :mod:`npdiff.nn.fast.trace`); the PyTorch peer
gets it from autograd, one vector-Jacobian product per coordinate (two for 2D data). The
printed NLLs agree (same function, same solver). The two sides run in alternation (npdiff,
PyTorch, npdiff, ...) after one warm-up run each; the script prints each side's median time and
range and the median and range of the per-pair ratio (``benchmarks/results/likelihood_speed.json``).
Threads: npdiff uses what the environment gives (``OPENBLAS_NUM_THREADS`` inside its matmuls,
``NPDIFF_THREADS`` worker threads over its blocks of points, :mod:`npdiff.nn.fast.workers`); PyTorch gets
the larger of the two counts::

    OPENBLAS_NUM_THREADS=1 python benchmarks/likelihood_speed.py                    # one core each
    OPENBLAS_NUM_THREADS=1 NPDIFF_THREADS=2 python benchmarks/likelihood_speed.py   # two cores each
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import alternate, machine_facts, summary, timed, torch_or_none, trained_default_model, write_results
from scipy.integrate import solve_ivp

from npdiff.data import toy2d
from npdiff.likelihood import ode_log_likelihood


def torch_nll(torch, peer, schedule, x, t_min=1e-5):
    B, D = x.shape
    nfe = 0

    def fun(t, y):
        nonlocal nfe
        nfe += 1
        xt = torch.from_numpy(y[: B * D].reshape(B, D).copy())
        eps, div = peer.eps_and_divergence(xt, torch.full((B,), float(t), dtype=torch.float64))
        beta, sigma = float(schedule.beta(t)), float(schedule.sigma(t))
        dx = -0.5 * beta * (y[: B * D].reshape(B, D) - eps.numpy() / sigma)
        ddiv = -0.5 * beta * (D - div.numpy() / sigma)
        return np.concatenate([dx.ravel(), ddiv])

    sol = solve_ivp(fun, (t_min, schedule.t_max), np.concatenate([x.ravel(), np.zeros(B)]), method="RK45",
                    rtol=1e-5, atol=1e-5)
    z, div = sol.y[: B * D, -1].reshape(B, D), sol.y[B * D :, -1]
    log_p = -0.5 * (D * np.log(2 * np.pi) + np.sum(z**2, 1)) + div
    return -log_p.mean(), nfe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--train-steps", type=int, default=3000)
    ap.add_argument("--pairs", type=int, default=5, help="alternating runs of each side")
    args = ap.parse_args()
    model = trained_default_model(args.train_steps)  # float64 compute
    data = toy2d.load("8gaussians")
    x = data.sample(args.n, np.random.default_rng(1))
    torch = torch_or_none()
    print(machine_facts())
    print(f"{args.n} points, model {model!r}")
    ours = timed(lambda: ode_log_likelihood(model, x))
    theirs = None
    if torch is not None:
        from _torch_peer import TorchMLP, check_same_function

        peer = TorchMLP(model)
        print(f"the PyTorch peer matches npdiff within {check_same_function(model, peer, np.random.default_rng(2)):.1e}")
        theirs = timed(lambda: torch_nll(torch, peer, model.schedule, x))
        theirs()  # warm-up
    ours()  # warm-up: compiles the kernels on a cold cache
    mine, peer_s, ratio = alternate(ours, theirs, args.pairs)
    res = ours.out
    print(f"npdiff: {summary(mine)} s over {len(mine)} runs, {res.nfe} evaluations, NLL {-res.log_p.mean():.4f} nats "
          f"(true entropy {data.entropy:.4f})")
    row = {"n": args.n, "npdiff_s": float(np.median(mine)), "npdiff_min": float(np.min(mine)),
           "npdiff_max": float(np.max(mine)), "npdiff_nfe": res.nfe, "npdiff_nll": float(-res.log_p.mean()),
           "torch_s": None, "torch_min": None, "torch_max": None, "torch_nfe": None, "torch_nll": None,
           "ratio": None, "ratio_min": None, "ratio_max": None}
    if theirs is None:
        print("torch not installed: npdiff only")
        write_results("likelihood_speed", [row], notes={"pairs": args.pairs, "train_steps": args.train_steps})
        return
    nll_t, nfe_t = theirs.out
    row.update(torch_s=float(np.median(peer_s)), torch_min=float(np.min(peer_s)), torch_max=float(np.max(peer_s)),
               torch_nfe=nfe_t, torch_nll=float(nll_t), ratio=float(np.median(ratio)), ratio_min=float(np.min(ratio)),
               ratio_max=float(np.max(ratio)))
    write_results("likelihood_speed", [row], torch=True, notes={"pairs": args.pairs, "train_steps": args.train_steps})
    print(f"torch (autograd trace): {summary(peer_s)} s, {nfe_t} evaluations, NLL {nll_t:.4f} nats")
    print(f"speed-up, per pair of neighbouring runs: {summary(ratio)}x (per evaluation, medians: "
          f"{(np.median(peer_s) / nfe_t) / (np.median(mine) / res.nfe):.2f}x)")


if __name__ == "__main__":
    main()
