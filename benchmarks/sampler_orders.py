r"""Orders of convergence of the few-step samplers, and the step of the sampler density's central differences.

    python benchmarks/sampler_orders.py
    python benchmarks/sampler_orders.py --t-min 0.1 --only gaussian   # the Gaussian table stopped at t = 0.1

Three tables, each on an analytic oracle (seconds of CPU in all):

``sampler_orders_gaussian``
    :class:`npdiff.analytic.GaussianData` (mean (1, -0.5), covariance [[0.29, 0.06], [0.06, 0.09]],
    ``vp_linear``), 32 starting points, the ``log_snr`` grid, ``t_min`` = 1e-3 (``--t-min``), no denoising:
    the largest |x - exact| over the points, where the exact map of a Gaussian's probability-flow ODE is
    linear (each eigen-direction scaled by sqrt((ab0 lam + 1 - ab0) / (abT lam + 1 - abT))), at 10 to 160
    evaluations, and the observed orders log2(e_k / e_{k+1}).
``sampler_orders_8gaussians``
    The exact denoiser of 8gaussians, 200 starting points, the ``log_snr`` grid, ``t_min`` = 1e-3, against
    RK45 at rtol = atol = 1e-11 on the same points: the root-mean-square error at 20 to 320 evaluations.
``sampler_fd_step``
    The exact density of the RK45 flow's samples (8gaussians oracle, rtol = atol = 1e-10, 300 draws) by
    :func:`npdiff.likelihood.sampler_log_density` with central-difference step h, against
    :func:`npdiff.likelihood.ode_log_likelihood` of the same samples (the same map run the other way).
"""

from __future__ import annotations

import argparse
import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _common import write_results  # noqa: E402

from npdiff import likelihood, sample  # noqa: E402
from npdiff.analytic import GaussianData  # noqa: E402
from npdiff.data import toy2d  # noqa: E402
from npdiff.sample import grids  # noqa: E402
from npdiff.schedule import vp_linear  # noqa: E402

STATED = {"ddim": 1, "euler": 1, "heun": 2, "edm": 2, "dpm2": 2, "dpm3": 3, "dpmpp2m": 2, "dpmpp3m": 3, "unipc": 3}


def order_rows(denoiser, x_T, exact, budgets, t_min, err) -> list[dict]:
    r"""One row per sampler: its error at each budget and the observed orders between neighbouring budgets."""
    s = denoiser.schedule

    def row(label, stated, run, bs=budgets):
        e = np.array([err(run(b), exact) for b in bs])
        orders = np.log2(e[:-1] / e[1:])
        out = {"sampler": label, "stated": stated}
        out.update({f"e{b}": float(v) for b, v in zip(budgets, e)})
        out["orders"] = ", ".join(f"{p:.2f}" for p in orders)
        out["last_order"] = float(orders[-1])
        return out

    rows = []
    for name in sample.FAST_SAMPLERS:
        rows.append(row(name, STATED[name], lambda b, name=name: sample.fast_sample(
            denoiser, None, np.random.default_rng(0), sampler=name, nfe=b, t_min=t_min, grid="log_snr", denoise=False,
            x_T=x_T).x))
    rows.append(row("dpmpp3m-ref", 3, lambda b: sample.dpmpp_multistep(
        denoiser, x_T, grids.log_snr_grid(s, b, t_min), order=3, reference_3m=True).x))
    return rows


def gaussian_orders(t_min: float) -> list[dict]:
    mean = np.array([1.0, -0.5])
    cov = np.array([[0.29, 0.06], [0.06, 0.09]])
    data = GaussianData(mean, cov, vp_linear())
    s = data.schedule
    x_T = np.random.default_rng(0).standard_normal((32, 2))  # (32, 2)
    lam, rot = np.linalg.eigh(data.cov)
    abT, ab0 = float(s.alpha_bar(s.t_max)), float(s.alpha_bar(t_min))
    # the probability-flow ODE of a Gaussian is linear: each eigen-direction scales by the ratio of std devs
    exact = np.sqrt(ab0) * mean + (((x_T - np.sqrt(abT) * mean) @ rot)
                                   * np.sqrt((ab0 * lam + 1 - ab0) / (abT * lam + 1 - abT))) @ rot.T
    return order_rows(data, x_T, exact, [10, 20, 40, 80, 160], t_min, lambda x, ref: float(np.abs(x - ref).max()))


def mixture_orders(t_min: float) -> list[dict]:
    o = toy2d.load("8gaussians").oracle()
    x_T = np.random.default_rng(1).standard_normal((200, 2))  # (200, 2)
    ref = sample.ode_sample(o, None, np.random.default_rng(0), x_T=x_T, rtol=1e-11, atol=1e-11, t_min=t_min,
                            denoise=False).x
    return order_rows(o, x_T, ref, [20, 40, 80, 160, 320], t_min,
                      lambda x, r: float(np.sqrt(np.mean((x - r) ** 2))))


def fd_steps(t_min: float) -> list[dict]:
    o = toy2d.load("8gaussians").oracle()
    z = np.random.default_rng(1).standard_normal((300, 2))  # (300, 2)

    def flow(zz):
        return sample.ode_sample(o, None, 0, x_T=zz, rtol=1e-10, atol=1e-10, t_min=t_min, denoise=False).x

    rows = []
    for h in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
        d = likelihood.sampler_log_density(flow, z, h=h)
        ll = likelihood.ode_log_likelihood(o, d.x, t_min=t_min, rtol=1e-10, atol=1e-10)
        rows.append({"h": h, "max_log_p_err": float(np.abs(d.log_p - ll.log_p).max()),
                     "max_z_err": float(np.abs(ll.x_end - z).max()),
                     "max_vs_true": float(np.abs(d.log_p - o.log_prob(d.x, t_min)).max())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--t-min", type=float, default=1e-3,
                    help="where the samplers stop (default 1e-3; another value is written as NAME_tmin<value>.json)")
    ap.add_argument("--only", nargs="+", choices=("gaussian", "8gaussians", "fd_step"),
                    default=["gaussian", "8gaussians", "fd_step"])
    args = ap.parse_args()
    notes = {"t_min": args.t_min, "grid": "log_snr"}
    suffix = "" if args.t_min == 1e-3 else f"_tmin{args.t_min:g}"
    for key, name, fn in (("gaussian", "sampler_orders_gaussian", gaussian_orders),
                          ("8gaussians", "sampler_orders_8gaussians", mixture_orders),
                          ("fd_step", "sampler_fd_step", fd_steps)):
        if key not in args.only:
            continue
        name += suffix
        rows = fn(args.t_min)
        for r in rows:
            print(name, r, flush=True)
        write_results(name, rows, notes=notes)


if __name__ == "__main__":
    main()
