r"""``npdiff datasets`` and ``npdiff schedules``: what there is to train on and with.

Tables go to stdout (to stderr with ``--json``, whose one line then holds the figures).
"""

from __future__ import annotations

import argparse

import numpy as np

from .. import schedule as sch
from ..data import toy2d
from ..plot import plot_schedules
from ._common import SCHEDULES, check_out_file, emit, load_data, say, table

__all__ = ["datasets", "schedules"]


def datasets(args: argparse.Namespace) -> int:
    r"""``npdiff datasets``: the toy sets with their true entropies, and the image sets."""
    rows = []
    for name in toy2d.NAMES:
        d = toy2d.load(name)
        rows.append({"name": name, "dim": d.dim, "entropy_nats": round(float(d.entropy), 5)})
        table(args, f"{name:14s} D={d.dim}  true entropy {d.entropy:.4f} nats")
    images = []
    try:
        d = load_data("digits")
        images.append({"name": d.name, "dim": d.dim, "K": d.K, "shape": list(d.shape), "train": int(d.train.shape[0]),
                       "test": int(d.test.shape[0])})
        table(args, f"{d.name:14s} D={d.dim}  {d.shape[0]}x{d.shape[1]} images on {d.K} levels, "
                    f"{d.train.shape[0]} train / {d.test.shape[0]} test (bits/dim)")
    except ImportError as exc:
        table(args, f"{'digits':14s} unavailable: {exc}")
    emit(args, {"datasets": rows, "images": images})
    return 0


def schedules(args: argparse.Namespace) -> int:
    r"""``npdiff schedules``: alpha_bar of the discrete chains at eleven times, and a figure."""
    check_out_file(args.plot, "--plot")
    names = sorted(SCHEDULES)  # the choices of --schedule, in its order
    chosen = [SCHEDULES[n]() for n in names]
    chains = [s.discretize(args.T) for s in chosen]
    ddpm = sch.ddpm_linear(args.T)
    rows = np.unique(np.round(np.linspace(0, args.T, 11)).astype(int))
    table(args, f"alpha_bar[t] of the discrete chains, T = {args.T} (index 0 is clean data): the schedules "
                "`--schedule NAME` trains with, and for comparison")
    table(args, "Ho et al.'s discrete ddpm_linear table (no --schedule: a denoiser takes continuous time; "
                "vp_linear is its continuous version)")
    table(args, "t".rjust(6) + "".join(n.rjust(16) for n in names) + "ddpm_linear".rjust(18))
    for t in rows:
        table(args, f"{t:6d}" + "".join(f"{c.alpha_bar[t]:16.6e}" for c in chains) + f"{ddpm.alpha_bar[t]:18.6e}")
    if args.plot:
        plot_schedules(chosen, args.plot)
        say(f"wrote {args.plot}")
    emit(args, {"T": args.T, "alpha_bar_T": {n: float(c.alpha_bar[-1]) for n, c in zip(names, chains)},
                "reference_alpha_bar_T": {"ddpm_linear": float(ddpm.alpha_bar[-1])}})
    return 0
