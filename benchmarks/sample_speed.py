r"""Sampling speed: 10,000 2D points through 1,000 ancestral steps and through the RK45 ODE.

    python benchmarks/sample_speed.py [--n 10000] [--train-steps 3000] [--pairs 3]

The model is the default 2d recipe's MLP (npdiff/recipes.py), trained briefly on 8gaussians
so that the ODE has a realistic stiffness. Both sides compute in float32 with the same
weights (the PyTorch peer is checked to compute the same function). The ancestral loop is
the same update on both sides (Ho et al. 2020, Algorithm 2, fixed-large variance); the ODE is
the same ``scipy.integrate.solve_ivp`` RK45 with rtol = atol = 1e-5 calling either network,
so the ODE ratio measures the network evaluations and the glue around them. PyTorch runs
only when installed, with as many threads as numpy's BLAS. Each work runs on both sides in
alternation after a warm-up run; the script prints each side's median time and range and the
median and range of the per-pair ratio; ``--works ode`` or ``--works ancestral`` runs one of the two.
The figures go to ``benchmarks/results/sample_speed.json``.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import alternate, machine_facts, summary, timed, torch_or_none, trained_default_model, write_results
from scipy.integrate import solve_ivp

from npdiff.reverse import chain_for, reverse_log_variance
from npdiff.sample import ddpm_sample, ode_sample


def torch_ancestral(torch, peer, chain, log_var, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float32)
    ab = torch.tensor(chain.alpha_bar, dtype=torch.float32)
    c1 = torch.tensor(chain.posterior_mean_coef1, dtype=torch.float32)
    c2 = torch.tensor(chain.posterior_mean_coef2, dtype=torch.float32)
    std = torch.tensor(np.exp(0.5 * log_var), dtype=torch.float32)
    times = torch.tensor(chain.times, dtype=torch.float32)
    with torch.no_grad():
        for i in range(chain.T, 0, -1):
            eps = peer.eps(x, times[i].expand(n))
            x0 = (x - torch.sqrt(1 - ab[i]) * eps) / torch.sqrt(ab[i])
            x = c1[i] * x0 + c2[i] * x
            if i > 1:
                x = x + std[i] * torch.randn(x.shape, generator=g, dtype=torch.float32)
    return x.numpy()


def torch_ode(torch, peer, schedule, x_T, t_min=1e-3):
    n = x_T.shape[0]
    nfe = 0

    def fun(t, y):
        nonlocal nfe
        nfe += 1
        x = torch.from_numpy(y.reshape(n, 2).astype(np.float32))
        with torch.no_grad():
            eps = peer.eps(x, torch.full((n,), float(t), dtype=torch.float32)).numpy().astype(np.float64)
        beta, sigma = float(schedule.beta(t)), float(schedule.sigma(t))
        return (-0.5 * beta * (y.reshape(n, 2) - eps / sigma)).ravel()

    sol = solve_ivp(fun, (schedule.t_max, t_min), x_T.ravel(), method="RK45", rtol=1e-5, atol=1e-5)
    return sol.y[:, -1].reshape(n, 2), nfe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--train-steps", type=int, default=3000)
    ap.add_argument("--pairs", type=int, default=3, help="alternating runs of each side")
    ap.add_argument("--works", nargs="+", choices=("ancestral", "ode"), default=["ancestral", "ode"])
    args = ap.parse_args()
    model = trained_default_model(args.train_steps).with_dtype(np.float32)
    torch = torch_or_none()
    print(machine_facts())
    print(f"{args.n} points, model {model!r}")
    chain = chain_for(model.schedule, 1000)
    log_var = reverse_log_variance(chain, "large")
    x_T = np.random.default_rng(1).standard_normal((args.n, 2))
    works = {"ancestral, 1000 steps": (timed(lambda: ddpm_sample(model, args.n, np.random.default_rng(0))), None),
             "probability-flow ODE, RK45": (timed(lambda: ode_sample(model, None, np.random.default_rng(0), x_T=x_T,
                                                                      denoise=False)), None)}
    if torch is not None:
        from _torch_peer import TorchMLP, check_same_function

        err = check_same_function(model, TorchMLP(model.with_dtype(np.float64)), np.random.default_rng(2))
        peer = TorchMLP(model, dtype=torch.float32)
        print(f"the PyTorch peer matches npdiff within {err:.1e}")
        works = {"ancestral, 1000 steps": (works["ancestral, 1000 steps"][0],
                                           timed(lambda: torch_ancestral(torch, peer, chain, log_var, args.n, 0))),
                 "probability-flow ODE, RK45": (works["probability-flow ODE, RK45"][0],
                                                timed(lambda: torch_ode(torch, peer, model.schedule, x_T)))}
    else:
        print("torch not installed: npdiff only")
    keys = {"ancestral, 1000 steps": "ancestral", "probability-flow ODE, RK45": "ode"}
    rows = []
    for name, (ours, theirs) in works.items():
        if keys[name] not in args.works:
            continue
        ours()
        if theirs is not None:
            theirs()  # warm-up
        mine, peer_s, ratio = alternate(ours, theirs, args.pairs)
        nfe = ours.out.nfe
        line = f"{name}: npdiff {summary(mine)} s ({nfe} nfe)"
        row = {"work": name, "nfe": nfe, "npdiff_s": float(np.median(mine)), "npdiff_min": float(np.min(mine)),
               "npdiff_max": float(np.max(mine)), "torch_s": None, "torch_min": None, "torch_max": None, "ratio": None,
               "ratio_min": None, "ratio_max": None}
        if theirs is not None:
            nfe_t = 1000 if theirs.out is None or not isinstance(theirs.out, tuple) else theirs.out[1]
            line += f", torch {summary(peer_s)} s ({nfe_t} nfe), speed-up per pair {summary(ratio)}x"
            row.update(torch_s=float(np.median(peer_s)), torch_min=float(np.min(peer_s)), torch_max=float(np.max(peer_s)),
                       ratio=float(np.median(ratio)), ratio_min=float(np.min(ratio)), ratio_max=float(np.max(ratio)))
        print(line, flush=True)
        rows.append(row)
    write_results("sample_speed", rows, torch=torch is not None,
                  notes={"n": args.n, "pairs": args.pairs, "train_steps": args.train_steps, "dtype": "float32"})


if __name__ == "__main__":
    main()
