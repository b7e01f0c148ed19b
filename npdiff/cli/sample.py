r"""``npdiff sample``: draw samples from a trained model and write ``FILE.npy`` (and a figure).

``--steps`` counts what each sampler counts: chain steps for ``ddpm`` and ``ddim``, SDE steps
for ``sde``, Heun steps for ``ode`` (without it, adaptive RK45), denoiser evaluations for the
few-step samplers (:data:`npdiff.sample.FAST_SAMPLERS`). ``--steps-file`` runs a few-step sampler
on the times of a step file (:mod:`npdiff.sample.step_file`, written by ``npdiff steps``), refused
for a model of another schedule. ``--threshold`` (ddpm and ddim only) thresholds the predicted x0 at every
step (:mod:`npdiff.thresholding`). ``--prompt`` samples a prompt model (``npdiff train --arch prompt_mlp``), guided
by ``--guidance`` with the empty prompt as its unconditional model (:func:`npdiff.guidance.guided`). A latent model
(``npdiff train --latent``, :mod:`npdiff.cli.latent`) is sampled on its latent and decoded to the levels.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import sample, seeds
from ..guidance import guided
from ..plot import plot_image_grid, plot_samples
from ..sample.fast import FAST_SAMPLERS
from ..sample.step_file import StepFile, check_steps_for, load_steps
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
    pm,
    say,
    training_eps_moments,
)
from .latent import load_latent, refuse

__all__ = ["DEFAULT_GRID", "DEFAULT_NFE", "DEFAULT_SAMPLER", "DEFAULT_WHY", "FAST_NFE", "PROMPT_SAMPLER", "PROMPT_STEPS",
           "THRESHOLDED", "npy_path",
           "prompted", "resolve_steps_file", "run", "run_latent", "run_sampler"]

#: denoiser evaluations of a few-step sampler without ``--steps``
FAST_NFE = 20
#: the sampler of ``npdiff sample`` without ``--sampler`` (and of the demo): UniPC, measured within 0.01 nats of the
#: exact flow in KL at 20 evaluations on every 2-D set with an exact oracle and on the trained 8gaussians model
#: (the sets' oracles, 2,000 points each), where RK45 spends about 110-230
DEFAULT_SAMPLER = "unipc"
#: the samplers that take ``--threshold`` (a step through the predicted x0)
THRESHOLDED = ("ddpm", "ddim")
#: the sampler of a prompt model without ``--sampler``: DDIM on PROMPT_STEPS steps with static thresholding, as its
#: adherence is measured (benchmarks/prompt_adherence.py); without the clip its samples leave [-1, 1] by far
PROMPT_SAMPLER = "ddim"
PROMPT_STEPS = 50
#: its evaluations without ``--steps`` (the final denoising step is one more)
DEFAULT_NFE = 20
#: its grid without ``--grid``
DEFAULT_GRID = "log_snr"
#: why it is the default, for ``--help``
DEFAULT_WHY = ("its samples are within 0.01 nats in KL of the exact flow's (RK45's) on the seven 2-D sets with exact "
               "oracles (at most 0.007, rings) and of a trained 8gaussians model's flow (0.003), for about a tenth "
               "of RK45's evaluations")


def run_sampler(model, name: str, n: int, seed: int, steps: int | None, record: bool = False, *,
                grid: str | None = None, variance: str | None = None, data=None, times: np.ndarray | None = None,
                threshold: str | None = None, percentile: float | None = None):
    r"""Draw n samples with sampler ``name`` from noise seeded with ``seed``; a :class:`~npdiff.sample.SampleResult`.

    ``times`` (a few-step sampler only): the step times to walk, from a step file, instead of a grid.
    ``threshold`` and ``percentile`` (ddpm and ddim only): thresholding of the predicted x0
    (:mod:`npdiff.thresholding`).
    """
    rng = np.random.default_rng(seed)
    kw: dict[str, Any] = {"record": record, "progress": True}
    if threshold not in (None, "none") or percentile is not None:
        if name not in THRESHOLDED:
            raise UserError(f"--threshold and --percentile threshold the predicted x0 of the ddpm and ddim samplers; "
                            f"{name} has no such step")
        kw["threshold"] = threshold or "none"
        if percentile is not None:
            kw["percentile"] = percentile
    if times is not None:
        return sample.fast_sample(model, n, rng, sampler=name, nfe=steps, times=times, t_min=float(times[-1]), **kw)
    if name in FAST:
        if name == DEFAULT_SAMPLER and grid is None:
            grid = DEFAULT_GRID
        nfe = steps or (DEFAULT_NFE if name == DEFAULT_SAMPLER else FAST_NFE)
        return sample.fast_sample(model, n, rng, sampler=name, nfe=nfe, grid=grid, **kw)
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
    title = f"{args.sampler} samples" + (f" for '{args.prompt}'" if getattr(args, "prompt", None) else "")
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


def resolve_steps_file(path: str, model, args: argparse.Namespace) -> StepFile:
    r"""The step file at ``path`` made ready for ``model`` and the flags: its sampler unless ``--sampler`` names
    another that can walk its steps, its budget (``--steps``, if given, must be that budget), no ``--grid``."""
    if args.grid is not None:
        raise UserError(f"--grid and --steps-file both say where the steps fall: give one (the file {path!r} holds "
                        "the times)")
    if args.sampler is not None and args.sampler not in FAST_SAMPLERS:
        raise UserError(f"--steps-file gives the times of a few-step sampler ({', '.join(FAST_SAMPLERS)}); --sampler "
                        f"{args.sampler} takes its own times")
    f = check_steps_for(load_steps(path), model.schedule, args.sampler or None)
    if f.sampler is None:  # a file of times only: the default sampler walks them
        f = check_steps_for(f, model.schedule, DEFAULT_SAMPLER)
    if args.steps is not None and args.steps != f.nfe:
        raise UserError(f"--steps {args.steps} does not fit the step file {path!r}: its {f.steps} steps take "
                        f"{f.nfe} evaluations of {f.sampler} (leave out --steps)")
    return f


def prompted(model, prompt: str, w: float, label: int | None = None):
    r"""``--prompt``: the prompt model guided towards ``prompt`` with weight ``w`` (0: the prompt's own model)."""
    if label is not None:
        raise UserError("--label and --prompt both say what to sample: a prompt names its digit, give one of them")
    if getattr(model, "num_classes", 0) or not getattr(model, "vocab_size", 0):
        raise UserError("--prompt needs a prompt model (trained with `npdiff train --arch prompt_mlp`); this model "
                        + ("is conditioned on class labels (give --label)" if getattr(model, "num_classes", 0)
                           else "has no conditioning"))
    if not prompt.split() and w > 0:  # (1 + w) eps(empty) - w eps(empty) is eps(empty): guidance towards nothing
        raise UserError(f"--prompt is empty: --guidance {w:g} steers towards a prompt, so give one (or drop --guidance "
                        "to sample the unconditional model)")
    try:
        model = guided(model, prompt, w)
    except ValueError as exc:  # an unknown word (with the nearest one), a prompt too long
        raise UserError(f"--prompt {prompt!r}: {exc}") from None
    say(f"prompt {prompt!r}, guidance weight {w:g}")
    return model


def run(args: argparse.Namespace) -> int:
    r"""``npdiff sample``."""
    check_out_file(args.out, "--out")  # a folder given as --out is refused, not filled with FOLDER.npy
    out = npy_path(args.out)
    check_out_file(str(out), "--out")
    check_out_file(args.plot, "--plot")
    if args.variance is not None and args.sampler != "ddpm":
        named = f"--sampler {args.sampler}" if args.sampler else f"the default sampler, {DEFAULT_SAMPLER},"
        raise UserError(f"--variance is the reverse variance of the ddpm sampler; {named} has none")
    if args.percentile is not None and args.threshold != "dynamic":
        raise UserError("--percentile is the percentile of --threshold dynamic; give --threshold dynamic")
    prompt_default = getattr(args, "prompt", None) is not None and args.sampler is None  # then ddim (PROMPT_SAMPLER)
    if args.threshold not in (None, "none") and args.sampler not in THRESHOLDED and not prompt_default:
        named = f"--sampler {args.sampler}" if args.sampler else f"the default sampler, {DEFAULT_SAMPLER},"
        raise UserError(f"--threshold {args.threshold} thresholds the predicted x0 of the ddpm and ddim samplers; "
                        f"{named} has no such step (give --sampler ddpm or ddim)")
    if args.variance == "analytic" and not args.data:
        raise UserError("--variance analytic estimates E||eps||^2 from training data: give the model's --data")
    ck, model = load_model(args.model)
    latent = load_latent(args.model, model)
    if latent is not None:
        return run_latent(args, latent[0], out)
    prompt = getattr(args, "prompt", None)
    if prompt is None and args.label is not None and getattr(model, "vocab_size", 0):
        raise UserError("--label: this is a prompt model (trained with --arch prompt_mlp); give --prompt, e.g. "
                        "--prompt 'seven'")
    label = check_label(model, args.label) if prompt is None else None
    if args.guidance is not None and label is None and prompt is None:
        raise UserError("--guidance needs --label or --prompt (the class or the prompt to guide towards)")
    if prompt is not None:
        model = prompted(model, prompt, args.guidance or 0.0, args.label)
        if args.sampler is None and args.steps_file is None:  # the sampler its adherence was measured with
            args.sampler, args.steps = PROMPT_SAMPLER, args.steps or PROMPT_STEPS
            args.threshold = args.threshold or "static"
            say(f"sampler {PROMPT_SAMPLER}, {args.steps} steps, --threshold {args.threshold} (a prompt model's default: "
                "docs/measurements/prompts.md)")
    if label is not None:  # classifier-free guidance; weight 0 is the conditional model
        say(f"class {label}, guidance weight {args.guidance or 0.0:g}")
        model = conditional(model, label, args.guidance or 0.0)
    data = load_data(args.data) if args.data else None
    if data is not None:
        check_dims(model, data, args.model)
        check_data_name(ck, data, args)
    times = None
    if args.steps_file is not None:
        f = resolve_steps_file(args.steps_file, model, args)
        args.sampler, args.steps, times = f.sampler, f.nfe, f.times
        kl = "" if f.kl is None else f", KL {f.kl:.4f}{pm(f.kl_se)} where they were made"
        say(f"{f.sampler} on the {f.steps} steps of {args.steps_file} ({f.nfe} evaluations{kl})")
    elif args.sampler is None:
        args.sampler = DEFAULT_SAMPLER
    t0 = time.perf_counter()
    res = run_sampler(model, args.sampler, args.n, args.seed, args.steps, grid=args.grid, variance=args.variance,
                      data=data, times=times, threshold=args.threshold, percentile=args.percentile)
    seconds = time.perf_counter() - t0
    np.save(out, res.x)
    say(f"wrote {res.x.shape[0]} samples to {out} ({res.nfe} evaluations, {seconds:.1f} s)")
    if args.plot:
        _plot(res, model, data, args)
    emit(args, {"n": int(res.x.shape[0]), "nfe": int(res.nfe), "seconds": round(seconds, 3), "out": str(out),
                "sampler": args.sampler, "grid": args.grid, "threshold": args.threshold or "none",
                "steps_file": args.steps_file,
                **({"label": label, "guidance": args.guidance or 0.0} if label is not None else {}),
                **({"prompt": prompt, "guidance": args.guidance or 0.0} if prompt is not None else {})})
    return 0



def run_latent(args: argparse.Namespace, ld, out: Path) -> int:
    r"""``npdiff sample`` on a latent model: the sampler on the latent, then each pixel's most probable level."""
    refuse([flag for flag, given in (("--label", args.label is not None), ("--prompt", args.prompt is not None),
                                     ("--guidance", args.guidance is not None)) if given],
           "a latent model is unconditional (`npdiff train --latent` trains no labels or prompts)")
    refuse([flag for flag, given in (("--threshold", args.threshold not in (None, "none")),
                                     ("--percentile", args.percentile is not None)) if given],
           "thresholding clips a predicted x0 to the pixels' [-1, 1]; a latent model's x0 is a latent")
    refuse(["--variance analytic"] if args.variance == "analytic" else [],
           "estimates E||eps||^2 on the pixels; a latent model's denoiser works on the latent")
    data = load_data(args.data) if args.data else None
    if data is not None and data.dim != ld.autoencoder.config.dim:
        raise UserError(f"model {args.model!r} decodes to {ld.autoencoder.config.dim} pixels, but data set "
                        f"{data.name!r} is {data.dim}-D")
    times = None
    if args.steps_file is not None:
        f = resolve_steps_file(args.steps_file, ld.denoiser, args)
        args.sampler, args.steps, times = f.sampler, f.nfe, f.times
    elif args.sampler is None:
        args.sampler = DEFAULT_SAMPLER
    say(f"latent model: {ld!r}; {args.sampler} on the {ld.latent_dim}-D latent, then each pixel's most probable level")
    t0 = time.perf_counter()
    res = run_sampler(ld.denoiser, args.sampler, args.n, args.seed, args.steps, grid=args.grid, variance=args.variance,
                      times=times)
    res = sample.SampleResult(x=ld.decode(res.x), nfe=res.nfe)  # (n, D) on the levels
    seconds = time.perf_counter() - t0
    np.save(out, res.x)
    say(f"wrote {res.x.shape[0]} images to {out} ({res.nfe} evaluations on the latent and one decoding, {seconds:.1f} s)")
    if args.plot:
        _plot(res, ld.autoencoder.config, data, args)
    emit(args, {"n": int(res.x.shape[0]), "nfe": int(res.nfe), "seconds": round(seconds, 3), "out": str(out),
                "sampler": args.sampler, "grid": args.grid, "latent": True, "steps_file": args.steps_file})
    return 0
