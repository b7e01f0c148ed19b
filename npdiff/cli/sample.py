r"""``npdiff sample``: draw samples from a trained model and write ``FILE.npy`` (and a figure).

``--steps`` counts what each sampler counts: chain steps for ``ddpm`` and ``ddim``, SDE steps
for ``sde``, Heun steps for ``ode`` (without it, adaptive RK45), denoiser evaluations for the
few-step samplers (:data:`npdiff.sample.FAST_SAMPLERS`).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import sample, seeds
from ..plot import plot_image_grid, plot_samples
from ._common import (
    FAST,
    UserError,
    check_data_name,
    check_dims,
    check_label,
    check_out_file,
    conditional,
    emit,
    is_images,
    load_data,
    load_model,
    say,
    training_eps_moments,
)

__all__ = ["FAST_NFE", "npy_path", "run", "run_sampler"]

#: denoiser evaluations of a few-step sampler without ``--steps``
FAST_NFE = 20


def run_sampler(model, name: str, n: int, seed: int, steps: int | None, record: bool = False, *,
                grid: str | None = None, variance: str | None = None, data=None):
    r"""Draw n samples with sampler ``name`` from noise seeded with ``seed``; a :class:`~npdiff.sample.SampleResult`."""
    rng = np.random.default_rng(seed)
    kw: dict[str, Any] = {"record": record, "progress": True}
    if name in FAST:
        return sample.fast_sample(model, n, rng, sampler=name, nfe=steps or FAST_NFE, grid=grid, **kw)
    if grid is not None:
        if name in ("ddpm", "sde") or (name == "ode" and not steps):
            raise UserError(f"--grid applies to ddim, ode with --steps (Heun) and {', '.join(FAST)}; "
                            f"{name}{'' if steps else ' without --steps'} takes its own times")
        kw["grid"] = grid
    chain_steps = {"steps": steps} if steps else {}  # without --steps, each sampler's own default
    if name == "ddpm":
        if variance == "analytic":
            kw["eps_moments"] = training_eps_moments(model, data, 1000, seed, steps)
        return sample.ddpm_sample(model, n, rng, **chain_steps, variance=variance or "large", **kw)
    if name == "ddim":
        return sample.ddim_sample(model, n, rng, **chain_steps, **kw)
    if name == "sde":
        return sample.sde_sample(model, n, rng, **chain_steps, **kw)
    if steps:
        return sample.ode_sample(model, n, rng, method="heun", steps=steps, **kw)
    return sample.ode_sample(model, n, rng, **kw)


def npy_path(path: str) -> Path:
    r"""The file ``np.save`` writes for ``path``: it appends ``.npy`` unless the name ends with it."""
    return Path(path if path.endswith(".npy") else path + ".npy")


def _plot(res, model, data, args: argparse.Namespace) -> None:
    side = math.isqrt(model.dim)
    title = f"{args.sampler} samples"
    reference = np.random.default_rng(args.seed + seeds.PLOT_DATA)
    if data is not None and is_images(data):
        real = data.test[reference.permutation(data.test.shape[0])[:res.x.shape[0]]]
        plot_image_grid(res.x[:100], real[:100], args.plot, shape=data.shape, title=title)
    elif model.dim > 2 and side * side == model.dim:  # square images without their data set
        plot_image_grid(res.x[:100], None, args.plot, shape=(side, side), title=title)
    else:
        real = data.sample(res.x.shape[0], reference) if data is not None else None
        plot_samples(res.x, real, args.plot, title=title + (f" of {data.name}" if data else ""))
    say(f"wrote {args.plot}")


def run(args: argparse.Namespace) -> int:
    r"""``npdiff sample``."""
    check_out_file(args.out, "--out")  # a folder given as --out is refused, not filled with FOLDER.npy
    out = npy_path(args.out)
    check_out_file(str(out), "--out")
    check_out_file(args.plot, "--plot")
    if args.variance is not None and args.sampler != "ddpm":
        raise UserError(f"--variance is the reverse variance of the ddpm sampler; --sampler {args.sampler} has none")
    if args.variance == "analytic" and not args.data:
        raise UserError("--variance analytic estimates E||eps||^2 from training data: give the model's --data")
    ck, model = load_model(args.model)
    label = check_label(model, args.label)
    if args.guidance is not None and label is None:
        raise UserError("--guidance needs --label (the class to guide towards)")
    if label is not None:  # classifier-free guidance; weight 0 is the conditional model
        say(f"class {label}, guidance weight {args.guidance or 0.0:g}")
        model = conditional(model, label, args.guidance or 0.0)
    data = load_data(args.data) if args.data else None
    if data is not None:
        check_dims(model, data, args.model)
        check_data_name(ck, data, args)
    t0 = time.perf_counter()
    res = run_sampler(model, args.sampler, args.n, args.seed, args.steps, grid=args.grid, variance=args.variance,
                      data=data)
    seconds = time.perf_counter() - t0
    np.save(out, res.x)
    say(f"wrote {res.x.shape[0]} samples to {out} ({res.nfe} evaluations, {seconds:.1f} s)")
    if args.plot:
        _plot(res, model, data, args)
    emit(args, {"n": int(res.x.shape[0]), "nfe": int(res.nfe), "seconds": round(seconds, 3), "out": str(out),
                "sampler": args.sampler, "grid": args.grid,
                **({"label": label, "guidance": args.guidance or 0.0} if label is not None else {})})
    return 0

