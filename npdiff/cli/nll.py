r"""``npdiff nll``: the negative log-likelihood of test points.

2-D sets: fresh points, scored against their true density by the paired gap
(:func:`npdiff.likelihood.score_points`). Images: bits/dim of a split
(:func:`npdiff.likelihood.image_bpd`), dequantized by ``--dequantization`` (uniform or truncated normal),
``--draws`` draws combined by log-mean-exp. ``--steps-file FILE`` scores the bound on the chain through the
times of a step file (``npdiff steps`` writes it). ``--label Y`` scores points of class Y by the
conditional model's :math:`\log p(x \mid y)`. A latent model (``npdiff train --latent``, :mod:`npdiff.cli.latent`):
LSGM's bound on the discrete :math:`-\log_2 P(x)/D` (:meth:`npdiff.latent.LatentDiffusion.bound_bits_per_dim`).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from ..data.images import DIGITS_BASELINES
from ..data.labelled import sample_class
from ..likelihood import image_bpd, score_points
from ..recipes import RECIPES
from ..recipes import bound_times as recipe_bound_times
from ..sample.step_file import check_steps_for, load_steps
from ._common import (
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
from .latent import latent_bound, load_latent, refuse

__all__ = ["SIGNIFICANT", "bound_times", "compare_bound", "image_eval_default", "recipe_chain_words", "report_image_nll",
           "report_nll", "run", "score", "score_latent", "score_pixels"]

#: standard errors beyond which the sign of a paired difference is reported as resolved
SIGNIFICANT = 2.0


def image_eval_default(key: str, fallback: Any) -> Any:
    r"""The ``images`` recipe's evaluation setting ``key`` (``vlb_T``, ``vlb_grid``, ``vlb_t_min``, ``vlb_variance``)."""
    return RECIPES.get("images", {}).get("eval", {}).get(key, fallback)


def recipe_chain_words() -> str:
    r"""The image recipe's bound chain in words: its grid and where the decoder takes over."""
    return (f"the recipe's {image_eval_default('vlb_grid', 'quadratic')} grid, the decoder from "
            f"t = {image_eval_default('vlb_t_min', 0.02):g}")


def bound_times(args: argparse.Namespace, schedule) -> np.ndarray | None:
    r"""The times of ``--steps-file`` for the bound's chain, checked against the model's schedule; None without it."""
    if args.steps_file is None:
        return None
    if args.method == "ode":
        raise UserError(f"--steps-file gives the times of the bound's chain; --method ode runs no chain (use --method vlb "
                        f"or both), got --steps-file {args.steps_file!r}")
    if args.T is not None:
        raise UserError(f"--T and --steps-file both say where the bound's steps fall: give one (the file "
                        f"{args.steps_file!r} holds the times)")
    try:
        return check_steps_for(load_steps(args.steps_file), schedule).times
    except ValueError as exc:
        raise UserError(f"--steps-file: {exc}") from None


def score(model, data, n: int, seed: int, method: str, *, rtol: float = 1e-5, atol: float = 1e-5, T: int = 1000,
          variance: str = "large", label: int | None = None, times: np.ndarray | None = None) -> tuple[dict, dict]:
    r"""Score n fresh points of a 2-D set (of class ``label`` when given): the figures and the per-point arrays.

    The points and then the bound's noise come from one Generator seeded with ``seed``.
    """
    rng = np.random.default_rng(seed)
    if label is None:
        x = data.sample(n, rng)  # (n, D) fresh test points
        head: dict[str, Any] = {"true_entropy_nats": float(data.entropy)}
    else:  # fresh points of class `label`, log p(x | y) against the conditional model
        if label >= getattr(data, "num_classes", 0):
            raise UserError(f"--label {label} is not a class of data set {data.name!r} ({data.num_classes} classes)")
        x = sample_class(data, label, n, rng)
        model = conditional(model, label)
        head = {"label": label}
    log_p_true = data.log_prob(x) if label is None else data.log_prob(x, label)
    if method != "vlb":
        say(f"exact ODE likelihood of {n} points (RK45, rtol={rtol}, atol={atol}) ...")
    if method != "ode":
        chain = f"T = {T}, all terms" if times is None else f"{times.size} steps through the step file's times"
        say(f"variational bound of {n} points ({chain}) ...")
    moments = training_eps_moments(model, data, T, seed) if method != "ode" and variance == "analytic" else None
    t0 = time.perf_counter()
    res = score_points(model, x, log_p_true, method=method, rng=rng, T=T, times=times, variance=variance,
                       eps_moments=moments, rtol=rtol, atol=atol, progress=True)
    r = {**head, **res.summary(), "seconds": round(time.perf_counter() - t0, 3)}
    arrays = {"x": x, "log_p_true": log_p_true}
    if res.ode is not None:
        arrays["log_p_model"] = res.ode.log_p
    if res.vlb is not None:
        arrays["vlb_nats"] = res.vlb.total
    return r, arrays


def report_image_nll(r: dict, where: str) -> None:
    r"""The lines of an image run's summary (:meth:`npdiff.likelihood.ImageBPD.summary`)."""
    if "ode_diverged" in r:
        if r["bpd_ode"] is None:
            rest = (f" (the other {r['n'] - r['ode_diverged']}: {r['bpd_ode_finite']:.4f})"
                    if r["bpd_ode_finite"] is not None else "")
            say(f"exact ODE likelihood: diverged on {r['ode_diverged']} of {r['n']} {where} images{rest}")
        else:
            say(f"exact ODE likelihood ({_noise(r, 'ode')}, exact trace): {r['bpd_ode']:.4f}"
                f"{pm(r['bpd_ode_se'])} bits/dim on {r['n']} {where} images")
    if "vlb_diverged" in r:
        data = (f"decoder with {r['K']} levels" if r.get("vlb_dequantization", "levels") == "levels"
                else f"{_noise(r, 'vlb')}, Gaussian decoder density")
        chain = f"T = {r['vlb_T']}" + (f" through the times of {r['steps_file']}" if r.get("steps_file") else "")
        chain = f"{chain}, {r['vlb_chain']}" if r.get("vlb_chain") else chain
        head = f"VLB ({chain}, {r['vlb_variance']} variance, {data})"
        if r["bpd_vlb"] is None:
            say(f"{head}: not finite on {r['vlb_diverged']} of {r['n']} {where} images")
        else:
            say(f"{head}: {r['bpd_vlb']:.4f}{pm(r['bpd_vlb_se'])} bits/dim on {r['n']} {where} images")


def _noise(r: dict, which: str) -> str:
    r"""How the figure ``which`` (``"ode"`` or ``"vlb"``) dequantized, in words: the noise, its scale, the draws."""
    name = r.get(f"{which}_dequantization", "uniform")
    text = f"{name.replace('_', '-')} dequantization"
    if r.get(f"{which}_scale") is not None:
        text += f" with scale {r[f'{which}_scale']:.3g}"
    draws = r.get(f"{which}_draws", 1)
    return text + (f", log-mean-exp of {draws} draws" if draws > 1 else "")


def compare_bound(diff: float, se: float | None) -> str:
    r"""What the paired difference VLB - exact NLL shows, in words that follow its figures."""
    if se is None:
        return "one point: no standard error, so its sign says nothing"
    if se == 0.0:  # the same difference on every point: no noise to weigh it against
        return "the same on every point" if diff == 0.0 else f"{'above' if diff > 0 else 'below'} on every point"
    if se > 0 and diff > SIGNIFICANT * se:
        return f"the bound lies above the exact NLL by {diff / se:.1f} standard errors"
    if se > 0 and diff < -SIGNIFICANT * se:
        return (f"the bound lies below the exact NLL by {-diff / se:.1f} standard errors (it bounds the NLL of the "
                "T-step chain, another model than the ODE's flow)")
    return f"within {SIGNIFICANT:g} standard errors of 0: these points do not resolve the bound's slack from its noise"


def report_nll(r: dict) -> None:
    r"""The lines of a 2-D run's summary (:func:`score`)."""
    # the paired gap is NLL_model - NLL_true on the same points, not NLL_model - entropy: the points' own
    # NLL under the true density differs from the entropy by sampling error, which the pairing cancels
    if "label" in r:
        say(f"class {r['label']}: the conditional model's log p(x | y) against the true log p(x | y); on these "
            f"{r['n']} points the true NLL is {r['nll_true_nats']:.4f} nats")
    else:
        say(f"on these {r['n']} points the true density's NLL is {r['nll_true_nats']:.4f} nats "
            f"(the true entropy, its expected NLL, is {r['true_entropy_nats']:.4f})")
    if "nll_nats" in r:
        say(f"exact NLL {r['nll_nats']:.4f} nats ({r['ode_nfe']} evaluations); paired gap "
            f"{r['gap_nats']:.4f}{pm(r['gap_se'])} nats = mean of log p_true - log p_model over the same points, "
            "an estimate of KL(data || model)")
    if "vlb_nats" in r:
        say(f"VLB {r['vlb_nats']:.4f} nats ({r['vlb_nfe']} evaluations); paired gap "
            f"{r['vlb_gap_nats']:.4f}{pm(r['vlb_gap_se'])} nats = mean of log p_true + VLB over the same points")
    if "vlb_minus_exact_nats" in r:
        d, se = r["vlb_minus_exact_nats"], r["vlb_minus_exact_se"]
        say(f"VLB - exact NLL, paired over the same points: {d:.4f}{pm(se)} nats; {compare_bound(d, se)}")


def _score_images(model, data, x, label, args: argparse.Namespace) -> tuple[dict, dict]:
    times = bound_times(args, model.schedule)
    own = times is None and args.T is None and args.method != "ode"
    if own:  # neither --T nor --steps-file: the recipe's chain, the decoder taking over at its t_min
        times = recipe_bound_times(model.schedule)
    T = args.T or image_eval_default("vlb_T", 50)
    variance = args.variance or image_eval_default("vlb_variance", "large")
    dequantization = args.dequantization or "uniform"
    if args.scale is not None and dequantization != "truncated_normal":
        raise UserError(f"--scale is the truncated normal's; give --dequantization truncated_normal with it, got "
                        f"--scale {args.scale:g} with {dequantization} dequantization")
    if args.vlb_data == "dequantized" and args.method == "ode":
        raise UserError("--vlb-data dequantized chooses what the bound scores; --method ode runs no bound")
    where = f"{args.split}-split"
    say(f"bits/dim of {x.shape[0]} {where} {data.name} images ({args.method}) ...")
    t0 = time.perf_counter()
    moments = training_eps_moments(model, data, T, args.seed) if variance == "analytic" and args.method != "ode" else None
    res = image_bpd(model, x, data.K, np.random.default_rng(args.seed), method=args.method, T=T, times=times,
                    variance=variance, eps_moments=moments, draws=args.draws, dequantization=dequantization,
                    scale=args.scale, vlb_dequantized=args.vlb_data == "dequantized", rtol=args.rtol, atol=args.atol,
                    progress=True)
    r = {**res.summary(), "data": data.name, "split": args.split, "seconds": round(time.perf_counter() - t0, 2),
         **({"label": label} if label is not None else {}),
         **({"steps_file": args.steps_file} if args.steps_file is not None else {}),
         **({"vlb_chain": recipe_chain_words()} if own else {})}
    report_image_nll(r, where)
    if args.split == "test":
        say("for reference, simple models on the test split: "
            + "; ".join(f"{k} {v:.3f}" for k, v in DIGITS_BASELINES.items()))
    arrays = {"x": x}
    if res.ode is not None:
        arrays["bpd_ode"] = res.ode.bpd  # NaN where the flow diverged
    if res.vlb is not None:
        arrays.update(bpd_vlb=res.bpd_vlb, vlb_terms_bpd=res.vlb_terms_bpd.mean(axis=0))  # (B,), (T+1,)
    elif res.vlb_dequantized is not None:
        arrays["bpd_vlb"] = res.bpd_vlb  # (B,) log-mean-exp over the draws
    return r, arrays


def run(args: argparse.Namespace) -> int:
    r"""``npdiff nll``."""
    check_out_file(args.out, "--out")
    data = load_data(args.data)
    ck, model = load_model(args.model)
    latent = load_latent(args.model, model)
    if latent is not None:
        check_data_name(ck, data, args)
        r, arrays = score_latent(latent[0], data, args)
    else:
        r, arrays = score_pixels(ck, model, data, args)
    if args.out:
        out = args.out if args.out.endswith(".npz") else args.out + ".npz"  # np.savez appends it otherwise
        np.savez(out, **arrays)
        say(f"wrote the per-point values to {out}")
    emit(args, r)
    return 0


def score_latent(ld, data, args: argparse.Namespace) -> tuple[dict, dict]:
    r"""A latent model (:mod:`npdiff.cli.latent`): LSGM's bound on the split's first ``--n`` images, pixel flags refused."""
    refuse([flag for flag, given in (("--method " + args.method, args.method != "ode"), ("--T", args.T is not None),
                                     ("--variance", args.variance is not None), ("--steps-file", args.steps_file is not None),
                                     ("--dequantization", args.dequantization is not None),
                                     ("--scale", args.scale is not None), ("--vlb-data", args.vlb_data != "levels"),
                                     ("--label", args.label is not None)) if given],
           "a latent model's figure is LSGM's bound (a discrete decoder, the exact ODE density of the latent); the "
           "pixels' dequantization, the chain's bound and labels do not apply to it")
    if not is_images(data) or data.dim != ld.autoencoder.config.dim:
        raise UserError(f"model {args.model!r} decodes to {ld.autoencoder.config.dim}-pixel images, but data set "
                        f"{data.name!r} is {data.dim}-D")
    x = data.split(args.split)
    x = x[: args.n] if args.n else x
    say(f"LSGM bound of {x.shape[0]} {args.split}-split {data.name} images through the latent model "
        f"({args.draws} draw{'s' if args.draws > 1 else ''} of z each; exact ODE, RK45 rtol={args.rtol}, atol={args.atol}) ...")
    r, arrays = latent_bound(ld, x, args)
    r.update(data=data.name, split=args.split)
    say(f"LSGM bound: {r['bpd_bound']:.4f}{pm(r['bpd_bound_se'])} bits/dim on {r['n']} {args.split}-split images "
        f"(reconstruction {r['reconstruction_bpd']:.4f} + latent {r['latent_bpd']:.4f}; {r['nfe']} evaluations), a "
        "bound on the discrete -log2 P(x)/D")
    if args.split == "test":
        say("for reference, simple models on the test split: "
            + "; ".join(f"{k} {v:.3f}" for k, v in DIGITS_BASELINES.items()))
    return r, arrays


def score_pixels(ck, model, data, args: argparse.Namespace) -> tuple[dict, dict]:
    r"""A pixel model (2-D points or images): the figures of ``--method`` and the per-point arrays."""
    check_dims(model, data, args.model)
    check_data_name(ck, data, args)
    label = check_label(model, args.label)
    if is_images(data):
        x = data.split(args.split)
        if label is not None:  # the split's images of that class, scored by log p(x | y)
            x = x[(data.train_labels if args.split == "train" else data.test_labels) == label]
            model = conditional(model, label)
        r, arrays = _score_images(model, data, x[: args.n] if args.n else x, label, args)
    else:
        image_only = [flag for flag, given in (("--dequantization", args.dequantization is not None),
                                               ("--scale", args.scale is not None),
                                               ("--vlb-data", args.vlb_data != "levels")) if given]
        if image_only:
            raise UserError(f"{', '.join(image_only)} dequantize{'s' if len(image_only) == 1 else ''} K-level images; "
                            f"data set {data.name!r} is continuous")
        r, arrays = score(model, data, args.n or 2000, args.seed, args.method, rtol=args.rtol, atol=args.atol,
                          T=args.T or 1000, variance=args.variance or "large", label=label,
                          times=bound_times(args, model.schedule))
        report_nll(r)
    return r, arrays
