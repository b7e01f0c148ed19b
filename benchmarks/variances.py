r"""The reverse variances measured, with exact denoisers and with trained models: docs/measurements/variances.md.

    python benchmarks/variances.py                   # the oracle tables (a few minutes on one core)
    python benchmarks/variances.py --only vlb        # one table: vlb, ddpm, ddim or oracle
    python benchmarks/variances.py --n 2000 --seed 1
    python benchmarks/variances.py --only digits --model run/model.npz      # a trained digits model
    python benchmarks/variances.py --only toy --models DIR                  # DIR/{8gaussians,checkerboard,rings}/model.npz

The first four tables come from analytic oracles, so they measure the discretization and the
choice of variance, never a network:

- ``vlb``: the gap of the mean variational bound (:func:`npdiff.likelihood.vlb`) over the true
  entropy of a 5-D Gaussian, by T, for the fixed variances ``"large"`` (beta_t) and ``"small"``
  (beta_tilde_t), and for ``"large"`` with improved-diffusion's ``fixedlarge`` substitution
  (beta_tilde_2 instead of beta_1 as the decoder's variance at t = 1). The substitution changes
  only the decoder term L_0; it is evaluated on its own draw of x_1, so its row is the "large" row
  plus a paired difference of two decoders.
- ``ddpm``: the mean log-density (under the true density) of ancestral samples of 8gaussians
  minus its expectation under the data, -H, at T = 1000, for both variances, with the same
  starting noise and noise stream for both (a paired comparison).
- ``ddim``: the same for DDIM with eta = 0 (deterministic) by number of steps.
- ``oracle``: the four variances of :mod:`npdiff.reverse_variance` (``"analytic"`` from
  :func:`~npdiff.reverse_variance.eps_moments` on fresh samples), on isotropic Gaussian data
  (where ``"trace"`` is the true reverse kernel: its gap over the true NLL is the prior's mismatch)
  and on 8gaussians, by T, with the trajectory of :func:`~npdiff.likelihood.optimal_steps`.

The last two score trained models (``npdiff train``), the statistics of ``"analytic"`` and of the
trajectory estimated once on training data (:func:`~npdiff.likelihood.bound_costs`, grid of 1000):

- ``digits``: bits/dim of the test split and of 360 training images by variance and T, evenly
  spaced and on the best trajectory of T steps;
- ``toy``: for 8gaussians, checkerboard and rings, the bound in nats by variance and T beside the
  exact ODE NLL and the true entropy H, then ancestral samples by variance at 50 and 100 steps,
  their mean true log-density plus H.

Each line prints the estimate and its standard error over the points.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import machine_facts, write_results  # noqa: E402

from npdiff.analytic import GaussianData  # noqa: E402
from npdiff.data import toy2d  # noqa: E402
from npdiff.forward import q_sample_discrete  # noqa: E402
from npdiff.gaussian import log_normal_diag  # noqa: E402
from npdiff.likelihood import bound_costs, ode_log_likelihood, optimal_steps, vlb  # noqa: E402
from npdiff.reverse import chain_for, p_mean_variance  # noqa: E402
from npdiff.reverse_variance import VARIANCES, eps_moments  # noqa: E402
from npdiff.sample import ddim_sample, ddpm_sample  # noqa: E402

STEPS_T = (10, 30, 100, 300, 1000)


def gaussian_5d(seed: int = 1) -> tuple[GaussianData, float]:
    r"""A 5-D Gaussian with a random full covariance :math:`AA^\top/5 + 0.1 I` and its entropy in nats."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(5, 5))
    cov = A @ A.T / 5 + 0.1 * np.eye(5)
    return GaussianData(np.zeros(5), cov), 0.5 * float(np.linalg.slogdet(2 * np.pi * np.e * cov)[1])


def _ms(v: np.ndarray) -> tuple[float, float]:
    r"""Mean and standard error over the finite values (the results files' pair of columns)."""
    w = v[np.isfinite(v)]
    return float(w.mean()), float(w.std(ddof=1) / np.sqrt(w.size))


def _mean_se(v: np.ndarray) -> str:
    r"""Mean +- standard error; samples off the data's support (log p = -inf: checkerboard's empty squares) are
    left out of the mean and counted beside it."""
    off = ~np.isfinite(v)
    w = v[~off]
    cell = f"{w.mean():+.3f} +- {w.std(ddof=1) / np.sqrt(w.size):.3f}"
    return cell + (f" ({off.mean():.1%} off the support)" if off.any() else "")


def table_vlb(n: int, seed: int) -> list[dict]:
    oracle, H = gaussian_5d()
    x = oracle.sample(n, np.random.default_rng(seed))
    print(f"vlb: gap of the mean bound over the entropy H = {H:.4f} nats, 5-D Gaussian, {n} points")
    print(f"{'T':>6}  {'large':>16}  {'small':>16}  {'large, fixedlarge at t=1':>26}")
    rows = []
    for T in STEPS_T:
        rng = np.random.default_rng(seed + T)
        large = vlb(oracle, x, T, rng=rng, variance="large").total - H
        small = vlb(oracle, x, T, rng=np.random.default_rng(seed + T), variance="small").total - H
        chain = chain_for(oracle.schedule, T)
        x1 = q_sample_discrete(x, 1, rng.standard_normal(x.shape), chain)
        mean, _, _ = p_mean_variance(oracle, x1, 1, chain)  # the decoder's mean at t = 1
        substitute = chain.posterior_variance[2] if T >= 2 else chain.betas[1]
        delta = log_normal_diag(x, mean, np.log(chain.betas[1])) - log_normal_diag(x, mean, np.log(substitute))
        print(f"{T:>6}  {_mean_se(large):>16}  {_mean_se(small):>16}  {_mean_se(large + delta):>26}")
        (lm, ls), (sm, ss), (fm, fs) = _ms(large), _ms(small), _ms(large + delta)
        rows.append({"T": T, "large": lm, "large_se": ls, "small": sm, "small_se": ss, "fixedlarge": fm,
                     "fixedlarge_se": fs})
    return rows


def table_ddpm(n: int, seed: int) -> list[dict]:
    data = toy2d.load("8gaussians")
    oracle, H = data.oracle(), data.entropy
    x_T = np.random.default_rng(seed).standard_normal((n, 2))
    print(f"ddpm: mean log p(sample) + H on 8gaussians (H = {H:.4f}), T = 1000, {n} samples, same noise for both")
    gap = {}
    for variance in ("large", "small"):
        x = ddpm_sample(oracle, None, np.random.default_rng(seed + 1), x_T=x_T, variance=variance).x
        gap[variance] = data.log_prob(x) + H
        print(f"  {variance:>5}: {_mean_se(gap[variance])}")
    print(f"  small - large, paired: {_mean_se(gap['small'] - gap['large'])}")
    return [{"variance": v, "gap": _ms(g)[0], "gap_se": _ms(g)[1]}
            for v, g in (*gap.items(), ("small - large, paired", gap["small"] - gap["large"]))]


def table_ddim(n: int, seed: int) -> list[dict]:
    data = toy2d.load("8gaussians")
    oracle, H = data.oracle(), data.entropy
    x_T = np.random.default_rng(seed).standard_normal((n, 2))
    print(f"ddim: mean log p(sample) + H on 8gaussians (H = {H:.4f}), eta = 0, T = 1000, {n} samples, same x_T")
    rows = []
    for steps in (50, 100, 250, 1000):
        x = ddim_sample(oracle, None, np.random.default_rng(seed + 1), x_T=x_T, steps=steps).x
        print(f"  {steps:>5} steps: {_mean_se(data.log_prob(x) + H)}")
        m, se = _ms(data.log_prob(x) + H)
        rows.append({"steps": steps, "gap": m, "gap_se": se})
    return rows


def _kl_to_standard_normal(mean: np.ndarray, var: np.ndarray) -> float:
    return float(0.5 * np.sum(var + mean**2 - 1.0 - np.log(var)))


def table_oracle(n: int, seed: int) -> tuple[list[dict], list[dict]]:
    c, mu = 0.3, np.array([0.5, -1.0, 0.0])
    g = GaussianData(mu, c)
    x = g.sample(n, np.random.default_rng(seed))
    nll = -g.log_prob(x, 0.0)
    print(f"oracle: isotropic Gaussian data (D = 3, variance {c}), mean of vlb - (-log q(x0)) minus the prior's "
          f"mismatch KL(q_T || N(0, I)), {n} points")
    print(f"{'T':>5}  {'prior mismatch':>14}  " + "  ".join(f"{v:>16}" for v in VARIANCES))
    rows_g, rows_m = [], []
    for T in (5, 10, 20, 50, 100):
        chain = chain_for(g.schedule, T)
        ab = chain.alpha_bar[T]
        mismatch = _kl_to_standard_normal(np.sqrt(ab) * mu, np.full(3, ab * c + 1 - ab))
        moments = eps_moments(g, g.sample(n, np.random.default_rng(seed + 1)), chain, np.random.default_rng(seed + 2))
        gaps = [vlb(g, x, T, rng=np.random.default_rng(seed + T), variance=v, eps_moments=moments).total - nll - mismatch
                for v in VARIANCES]
        cells = [_mean_se(v) for v in gaps]
        print(f"{T:>5}  {mismatch:>14.5f}  " + "  ".join(f"{c_:>16}" for c_ in cells))
        row = {"T": T, "prior_mismatch": mismatch}
        for v, gap in zip(VARIANCES, gaps):
            row[v], row[f"{v}_se"] = _ms(gap)
        rows_g.append(row)
    data = toy2d.load("8gaussians")
    oracle = data.oracle()
    x = data.sample(n, np.random.default_rng(seed + 3))
    nll = -data.log_prob(x)
    print(f"oracle: 8gaussians, mean of vlb - (-log p_true(x0)) (>= 0 for a bound), {n} points; "
          "'best': analytic on the trajectory of optimal_steps over a grid of 1000")
    print(f"{'T':>5}  " + "  ".join(f"{v:>16}" for v in (*VARIANCES, "analytic, best", "trace, best")))
    costs = bound_costs(oracle, data.sample(n, np.random.default_rng(seed + 4)), chain_for(oracle.schedule, 1000),
                        np.random.default_rng(seed + 5))
    for T in (5, 10, 20, 50, 100):
        cells, row = [], {"T": T}
        for variance, steps in [(v, T) for v in VARIANCES] + [(v, optimal_steps(costs, T)) for v in ("analytic", "trace")]:
            res = vlb(oracle, x, 1000, rng=np.random.default_rng(seed + T), variance=variance, steps=steps,
                      eps_moments=costs.moments)
            cells.append(_mean_se(res.total - nll))
            key = variance if isinstance(steps, int) else f"{variance}_best"
            row[key], row[f"{key}_se"] = _ms(res.total - nll)
        rows_m.append(row)
        print(f"{T:>5}  " + "  ".join(f"{c_:>16}" for c_ in cells), flush=True)
    return rows_g, rows_m


def _bound_row(model, x, T, costs, K, seed, unit, values: dict | None = None) -> list[str]:
    r"""The mean bound of x by every variance on T evenly spaced steps, then analytic and trace on the best T steps."""
    runs = [(v, T) for v in VARIANCES]
    if T < costs.chain.T:
        best = optimal_steps(costs, T)
        runs += [("analytic", best), ("trace", best)]
    cells = []
    for variance, steps in runs:
        t0 = time.perf_counter()
        res = vlb(model, x, costs.chain.T, rng=np.random.default_rng(seed), variance=variance, K=K,
                  eps_moments=costs.moments, steps=steps)
        v = res.total / unit
        cells.append(f"{v.mean():.4f} ± {v.std(ddof=1) / np.sqrt(v.size):.4f}")
        if values is not None:
            key = variance if isinstance(steps, int) else f"{variance}_best"
            values[key], values[f"{key}_se"] = _ms(v)
        print(f"    T={T} {variance}{'' if isinstance(steps, int) else ' best'}: {cells[-1]} "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return cells


_HEAD = "| T | small | large | analytic | trace | analytic, best T steps | trace, best T steps |"


def table_digits(path: str, n: int, seed: int, steps_T: tuple[int, ...]) -> None:
    from npdiff.checkpoint import load
    from npdiff.data.images import digits

    d, model = digits(), load(path).denoiser(ema=True)
    t0 = time.perf_counter()
    costs = bound_costs(model, d.train, chain_for(model.schedule, 1000), np.random.default_rng(seed + 7), K=d.K,
                        progress=True)
    print(f"digits: {path}; statistics on the {d.train.shape[0]} training images over 1000 steps in "
          f"{time.perf_counter() - t0:.0f} s; bits/dim, mean ± standard error", flush=True)
    rows = []
    for split, x in (("test", d.test[:n]), ("train", d.train[:n])):
        print(f"\n{split} ({x.shape[0]} images)\n\n{_HEAD}\n|---|---|---|---|---|---|---|", flush=True)
        for T in steps_T:
            row = {"split": split, "T": T}
            cells = _bound_row(model, x, T, costs, d.K, seed + 2, d.dim * np.log(2.0), row)
            rows.append({k: row.get(k) for k in ("split", "T", *(f"{v}{s}" for v in VARIANCES for s in ("", "_se")),
                                                 "analytic_best", "analytic_best_se", "trace_best", "trace_best_se")})
            print(f"| {T} | " + " | ".join(cells + ["(all steps)"] * (6 - len(cells))) + " |", flush=True)
    for T in steps_T:
        if T < 1000:
            print(f"best {T} steps: {optimal_steps(costs, T).tolist()}")
    write_results("variances_digits", rows, notes={"n": n, "seed": seed})


def table_toy(folder: str, n: int, seed: int, steps_T: tuple[int, ...]) -> None:
    from npdiff.checkpoint import load

    for name in ("8gaussians", "checkerboard", "rings"):
        data, model = toy2d.load(name), load(os.path.join(folder, name, "model.npz")).denoiser(ema=True)
        x = data.sample(n, np.random.default_rng(10_000))
        t0 = time.perf_counter()
        ode = ode_log_likelihood(model, x, rtol=1e-5, atol=1e-5)
        costs = bound_costs(model, data.sample(n, np.random.default_rng(seed + 7)), chain_for(model.schedule, 1000),
                            np.random.default_rng(seed + 8))
        print(f"\n{name}: true entropy H = {data.entropy:.4f}, exact ODE NLL {-ode.log_p.mean():.4f} ± "
              f"{ode.log_p.std(ddof=1) / np.sqrt(n):.4f} ({ode.nfe} nfe; {time.perf_counter() - t0:.0f} s with the "
              f"statistics); bound in nats of {n} test points\n\n{_HEAD}\n|---|---|---|---|---|---|---|", flush=True)
        for T in steps_T:
            cells = _bound_row(model, x, T, costs, None, seed + 2, 1.0)
            print(f"| {T} | " + " | ".join(cells + ["(all steps)"] * (6 - len(cells))) + " |", flush=True)
        print(f"\n{name}: ancestral samples, mean log p_true(x) + H (0 for the data), {n} samples, same noise\n")
        print("| steps | " + " | ".join(VARIANCES) + " |\n|---|" + "---|" * len(VARIANCES))
        x_T = np.random.default_rng(seed + 9).standard_normal((n, 2))
        for steps in (50, 100):
            cells = [_mean_se(data.log_prob(ddpm_sample(model, None, np.random.default_rng(seed + 10), x_T=x_T,
                                                        steps=steps, variance=v, eps_moments=costs.moments).x)
                              + data.entropy) for v in VARIANCES]
            print(f"| {steps} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("vlb", "ddpm", "ddim", "oracle", "digits", "toy"), help="print one table")
    p.add_argument("--n", type=int, help="points or samples per figure (oracles 20,000; digits 360; toy 5,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="digits: the model.npz of `npdiff train --data digits --arch mlp` (the MLP's, as on the page)")
    p.add_argument("--models", help="toy: a folder holding 8gaussians/model.npz, checkerboard/model.npz, rings/model.npz")
    p.add_argument("--T", type=int, nargs="+", default=[10, 20, 50, 100, 1000], help="digits, toy: chain lengths")
    args = p.parse_args()
    print(machine_facts(), flush=True)
    tables = {"vlb": table_vlb, "ddpm": table_ddpm, "ddim": table_ddim, "oracle": table_oracle}
    notes = {"n": args.n or 20_000, "seed": args.seed}
    for name, table in tables.items():
        if args.only in (None, name):
            rows = table(args.n or 20_000, args.seed)
            if name == "oracle":
                write_results("variances_oracle_gaussian", rows[0], notes=notes)
                write_results("variances_oracle_8gaussians", rows[1], notes=notes)
            else:
                write_results(f"variances_{name}", rows, notes=notes)
    if args.only == "digits":
        table_digits(args.model, args.n or 360, args.seed, tuple(args.T))
    if args.only == "toy":
        table_toy(args.models, args.n or 5000, args.seed, tuple(args.T))


if __name__ == "__main__":
    main()
