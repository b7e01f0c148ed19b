r"""``npdiff demo``: the main job on 8gaussians in four phases, and its figures.

Train the MLP (the ``"2d"`` recipe, :data:`DEMO_STEPS` optimizer steps), score fresh test points
by the exact likelihood against the true density (the paired gap), sample with ``npdiff sample``'s
default few-step solver of the probability-flow ODE (:data:`~npdiff.cli.sample.DEFAULT_SAMPLER`), and
map the learned density on a grid; write the model and four figures.
Each phase draws from its own stream of the one ``--seed`` (:mod:`npdiff.seeds`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .. import seeds
from ..likelihood import ode_log_likelihood
from ..plot import plot_density, plot_loss, plot_samples, plot_trajectory
from ._common import check_out_dir, emit, load_data, say
from .nll import report_nll, score
from .sample import DEFAULT_GRID, DEFAULT_NFE, DEFAULT_SAMPLER, run_sampler
from .train import train_model

__all__ = ["DATA", "DEMO_SAMPLES", "DEMO_STEPS", "GRID_HALF_WIDTH", "WRITTEN", "run"]

#: the demo's data set: eight Gaussians on a circle, whose density and entropy are known exactly
DATA = "8gaussians"
#: Training steps of ``npdiff demo``: a fifth of the "2d" recipe's 50k, so the demo ends within two minutes on one core.
DEMO_STEPS = 10_000
#: samples drawn by the default sampler, and data points drawn beside them
DEMO_SAMPLES = 2000
#: the density map covers [-h, h]^2
GRID_HALF_WIDTH = 4.5

WRITTEN = {
    "model.npz": "the trained model (EMA weights for evaluation, training state to resume)",
    "samples.png": f"{DEMO_SAMPLES} samples beside {DEMO_SAMPLES} data points",
    "trajectory.png": "the samples' path through the sampler's steps, from noise at t = 1 to data",
    "density.png": "the learned density beside the true one",
    "loss.png": "the training loss per step",
}


def run(args: argparse.Namespace) -> int:
    r"""``npdiff demo``."""
    check_out_dir(args.out, "--out")
    t_start = time.perf_counter()
    data = load_data(DATA)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    def lap(phase: str, t0: float) -> None:
        seconds[phase] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    say("[1/4] training")
    model, history, train_stats = train_model(data, args, out=out, seed=args.seed)
    lap("train", t0)
    t0 = time.perf_counter()
    say("[2/4] exact likelihood of fresh test points")
    r, _ = score(model, data, args.n, args.seed + seeds.DEMO_NLL, "ode")
    report_nll(r)
    lap("nll", t0)
    t0 = time.perf_counter()
    say(f"[3/4] sampling {DEMO_SAMPLES} points with {DEFAULT_SAMPLER} on the {DEFAULT_GRID} grid "
        f"({DEFAULT_NFE} evaluations of the denoiser, plus one to denoise)")
    res = run_sampler(model, DEFAULT_SAMPLER, DEMO_SAMPLES, args.seed + seeds.DEMO_SAMPLES, None, record=True)
    lap("sample", t0)
    t0 = time.perf_counter()
    say(f"[4/4] the learned density on a {args.grid}x{args.grid} grid (exact ODE likelihood, rtol = atol = 1e-3)")
    g = np.linspace(-GRID_HALF_WIDTH, GRID_HALF_WIDTH, args.grid)
    gx, gy = np.meshgrid(g, g, indexing="xy")
    grid = np.stack([gx.ravel(), gy.ravel()], 1)  # (G*G, 2)
    log_p = ode_log_likelihood(model, grid, rtol=1e-3, atol=1e-3, progress=True).log_p.reshape(gx.shape)
    lap("density", t0)
    real = data.sample(DEMO_SAMPLES, np.random.default_rng(args.seed + seeds.DEMO_PLOT_DATA))
    plot_samples(res.x, real, out / "samples.png", title=f"{DATA}: data and samples")
    plot_trajectory(res.trajectory, res.times, out / "trajectory.png")
    plot_loss(history["loss"], out / "loss.png", space=train_stats["loss_space"])
    plot_density(gx, gy, log_p, data.log_prob(grid).reshape(gx.shape), out / "density.png")
    total = time.perf_counter() - t_start
    for name, what in WRITTEN.items():
        say(f"  {out / name}: {what}")
    say(f"demo finished in {total:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + ")")
    emit(args, {**r, **train_stats, "out": str(out), "total_seconds": round(total, 1), "phase_seconds": seconds})
    return 0
