r"""The argument parser of ``npdiff``: every command's flags, and errors as one line.

Each command's ``--help`` lists the flags that apply to it, with the defaults that apply to it
(the demo trains on a 2-D set, so its help gives the ``"2d"`` recipe's defaults only). The
commands themselves live one group a module (:mod:`~npdiff.cli.demo`, :mod:`~npdiff.cli.train`,
:mod:`~npdiff.cli.sample`, :mod:`~npdiff.cli.steps`, :mod:`~npdiff.cli.nll`, :mod:`~npdiff.cli.info`,
:mod:`~npdiff.cli.upsample`; :mod:`~npdiff.cli.latent` for latent diffusion); a new command adds
its ``add_*`` function here and its module beside them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from .. import __version__
from ..data.images import DIGITS_N_TEST
from ..data.prompts import DIGIT_VOCABULARY
from ..edit.coarse import COARSE_KINDS
from ..edit.mask import IMAGE_MASKS
from ..edit.replacement import REPLACEMENT_SAMPLERS
from ..likelihood import DEQUANTIZATIONS
from ..nn import MLPConfig
from ..nn.activations import ACTIVATIONS
from ..nn.autoencoder import LATENT_DIMS, AutoencoderConfig
from ..nn.config import COORDS
from ..parameterization import PREDICTIONS
from ..recipes import recipe
from ..reverse import VARIANCES
from ..sample.fast import FAST_SAMPLERS
from ..sample.grids import GRIDS
from ..thresholding import IMAGEN_PERCENTILE, THRESHOLDS
from ..train import LR_SCHEDULES, TrainConfig
from . import demo, edit, info, nll, sample, steps, train, upsample
from ._common import FAST, SAMPLERS, SCHEDULES, closest
from .latent import LATENT_TRAIN
from .validators import MAX_BATCH, MAX_CLASSES, MAX_DEPTH, MAX_POINTS, MAX_STEPS, MAX_T, MAX_WIDTH, SEED, in_range, positive

__all__ = ["HelpFormatter", "Parser", "build_parser"]

SEED_HELP = "seed of the command's random draws: weights, data, times and noise"
MODEL_HELP = "the model: the folder `npdiff train --out` wrote, or its model.npz"
OTHER_DATA_HELP = "evaluate the model on --data although it was trained on another set"


class HelpFormatter(argparse.HelpFormatter):
    r"""Each flag's help ends with its default, unless the text already says it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        no_default = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if action.option_strings and not no_default and "default" not in text:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    r"""argparse with its errors on one line naming the command's ``--help``, and the closest flag to a typo."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}  # filled for the top-level parser

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        # argparse drops a value '--' (`--steps=--`), which then leaves the flag at its default: refuse it
        for a in sys.argv[1:] if args is None else args:
            if isinstance(a, str) and a.startswith("--") and a.endswith("=--"):
                self.error(f"argument {a[:-3]}: expected a value, got '--'")
        # the subcommand's parser, not the top-level one, reports a flag it does not know
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self.commands.get(getattr(ns, "command", None), self)
            flags = [s for a in parser._actions for s in a.option_strings]
            hints = [f"{e.split('=')[0]}{closest(e.split('=')[0], flags)}" for e in extras if e.startswith("-")]
            hints = [h for h in hints if "did you mean" in h]
            parser.error(f"unrecognized arguments: {' '.join(extras)}" + (f"; {', '.join(hints)}" if hints else ""))
        return ns


#: the recipes of ``npdiff train``'s help, "recipe/network" for a network's entry of a recipe: the 2-D sets' MLP,
#: the U-Net the digits train by default, and their MLP (``--arch mlp``)
TRAIN_RECIPES = ("2d", "images/unet", "images")


def _recipe_label(name: str, recipes: tuple[str, ...]) -> str:
    r"""``"images recipe, U-Net"`` for ``"images/unet"``; a plain recipe beside a network's entry of it is its MLP."""
    base, _, arch = name.partition("/")
    if arch:
        return f"{base} recipe, {'U-Net' if arch == 'unet' else arch}"
    return f"{base} recipe, --arch mlp" if any(r.startswith(base + "/") for r in recipes) else f"{base} recipe"


def recipes_say(field: str, recipes: tuple[str, ...]) -> str:
    r"""What the recipes choose for ``field``, e.g. ``"default: 512 (2d recipe), 128 (images recipe)"``.

    An entry ``"images/unet"`` is the U-Net's entry of the images recipe (:func:`npdiff.recipes.recipe`), which
    has no say in the fields that shape the MLP alone (:data:`npdiff.cli.train.MLP_ONLY`).
    """
    fallback = {f.name: f.default for f in dataclasses.fields(MLPConfig) + dataclasses.fields(TrainConfig)}
    values = {}
    for name in recipes:
        base, _, arch = name.partition("/")
        if arch and field in train.MLP_ONLY:
            continue
        model_kw, train_kw, _ = recipe(base, arch or "mlp")
        values[_recipe_label(name, recipes)] = model_kw.get(field, train_kw.get(field, fallback[field]))
    if len(set(values.values())) == 1 and len(values) == len(recipes):
        value = next(iter(values.values()))
        return f"default: {value}, every recipe" if len(recipes) > 1 else f"default: {value}"
    return "default: " + ", ".join(f"{v} ({label})" for label, v in values.items())


def add_model_flags(p: argparse.ArgumentParser, recipes: tuple[str, ...], steps_default: int | None = None) -> None:
    r"""The flags of the model and its training, with the defaults of ``recipes`` (the ones the command may use)."""
    where = " or 'images' for digits" if any(r.startswith("images") for r in recipes) else ""
    g = p.add_argument_group(f"model and training (defaults: the '2d' recipe{where}: npdiff/recipes.py)")

    def say(field: str) -> str:
        return recipes_say(field, recipes)

    g.add_argument("--steps", type=positive(int, MAX_STEPS), default=steps_default,
                   help="optimizer steps" + ("" if steps_default else f" ({say('steps')})"))
    g.add_argument("--batch-size", dest="batch_size", type=positive(int, MAX_BATCH),
                   help=f"points per optimizer step ({say('batch_size')})")
    g.add_argument("--lr", type=positive(float, 1.0), help=f"peak learning rate ({say('lr')})")
    g.add_argument("--lr-schedule", dest="lr_schedule", choices=LR_SCHEDULES,
                   help=f"the learning rate over the run ({say('lr_schedule')})")
    g.add_argument("--weight-decay", dest="weight_decay", type=in_range(float, 0.0, 1.0),
                   help=f"AdamW's decoupled weight decay ({say('weight_decay')})")
    g.add_argument("--ema-decay", dest="ema_decay", type=in_range(float, 0.0, 1.0, hi_open=True),
                   help=f"decay of the weights' moving average, the weights evaluated ({say('ema_decay')})")
    g.add_argument("--loss", choices=PREDICTIONS,
                   help=f"the space of the squared error; the recipes' None is the network's prediction ({say('loss')})")
    g.add_argument("--log-snr-fraction", dest="log_snr_fraction", type=in_range(float, 0.0, 1.0),
                   help=f"share of each batch's times drawn uniform in log-SNR, the rest uniform in t; 1 with "
                        f"--loss eps is the likelihood weighting ({say('log_snr_fraction')})")
    g.add_argument("--width", type=positive(int, MAX_WIDTH), help=f"the MLP's hidden units ({say('width')})")
    g.add_argument("--depth", type=in_range(int, 0, MAX_DEPTH), help=f"the MLP's residual blocks ({say('depth')})")
    g.add_argument("--activation", choices=sorted(ACTIVATIONS),
                   help=f"the MLP's hidden nonlinearity ({say('activation')})")
    g.add_argument("--parameterization", choices=PREDICTIONS,
                   help=f"what the network predicts ({say('parameterization')})")
    g.add_argument("--coords", choices=COORDS,
                   help=f"what the MLP sees of x: x itself, its sinusoidal embedding, or both ({say('coords')})")
    g.add_argument("--coord-scale", dest="coord_scale", type=positive(float, 1000.0),
                   help=f"scale of the MLP's sinusoidal embedding of x ({say('coord_scale')})")
    g.add_argument("--schedule", choices=sorted(SCHEDULES),
                   help="the noise schedule (default: vp_linear; see `npdiff schedules`)")


def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="train on 8gaussians, exact NLL against the true entropy, samples, figures")
    p.add_argument("--out", metavar="DIR", default="npdiff-demo",
                   help="folder for model.npz and the figures (created if missing)")
    p.add_argument("--seed", type=SEED, default=0, help=SEED_HELP)
    p.add_argument("--n", type=positive(int, MAX_POINTS), default=2000, help="fresh test points for the exact NLL")
    p.add_argument("--grid", type=positive(int, 1000), default=48, help="points per side of the density heat map")
    add_model_flags(p, ("2d",), demo.DEMO_STEPS)
    p.set_defaults(func=demo.run)


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a denoiser (the MLP, or the U-Net on images, or latent diffusion on the "
                                     "digits) on a data set; writes DIR/model.npz")
    p.add_argument("--data", required=True, help="the data set's name (see `npdiff datasets`)")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for model.npz (created if missing)")
    p.add_argument("--seed", type=SEED, default=0, help=SEED_HELP)
    add_model_flags(p, TRAIN_RECIPES)
    g = p.add_argument_group("network")
    g.add_argument("--arch", choices=train.ARCHS, default=None,
                   help="the denoiser: the MLP (any data set), the convolutional U-Net with attention (images; "
                        f"{', '.join(f'--{f}'.replace('_', '-') for f in train.MLP_ONLY)} are the MLP's, so with them "
                        "on images give --arch mlp), or the prompt-conditioned MLP (digits; prompts such as 'bold seven "
                        "slanted right' written from each image, sampled with `npdiff sample --prompt`). Default: unet "
                        "on image data sets, mlp on the point sets")
    g.add_argument("--prompts", dest="arch", action="store_const", const="prompt_mlp",
                   help="the same as --arch prompt_mlp")
    g.add_argument("--base-width", dest="base_width", type=positive(int, MAX_WIDTH),
                   help="the U-Net's (--arch unet, the default on images): channels of the finest level, a multiple "
                        "of 8 (the coarser levels have twice as many; default 32)")
    g = p.add_argument_group("latent diffusion (digits)")
    g.add_argument("--latent", action="store_true",
                   help="train the KL autoencoder (DIR/autoencoder.npz), then the MLP on its scaled latent "
                        "(DIR/model.npz, with DIR/latent.json naming the autoencoder); sample and nll decode through "
                        f"it. The MLP's defaults: the images recipe with width {LATENT_TRAIN['width']}, batch "
                        f"{LATENT_TRAIN['batch_size']}, no weight decay, {LATENT_TRAIN['steps']} steps")
    g.add_argument("--latent-dim", dest="latent_dim", type=in_range(int, *LATENT_DIMS),
                   help=f"with --latent: the latent's size d, {LATENT_DIMS[0]}..{LATENT_DIMS[1]} "
                        f"(default {AutoencoderConfig.latent_dim})")
    g.add_argument("--beta", type=in_range(float, 0.0, 1e6, lo_open=True),
                   help=f"with --latent: the weight of the autoencoder's KL term (default {AutoencoderConfig.beta}, "
                        "the measured choice: docs/measurements/latent.md)")
    g.add_argument("--ae-steps", dest="ae_steps", type=positive(int, MAX_STEPS),
                   help="with --latent: the autoencoder's optimizer steps (default 2000)")
    g = p.add_argument_group("labels")
    g.add_argument("--conditional", action="store_true",
                   help="a class-conditional model of a labelled data set (its labels dropped with probability --p-uncond)")
    g.add_argument("--p-uncond", dest="p_uncond", type=in_range(float, 0.0, 1.0),
                   help="with --conditional: probability of training a point without its label (default 0.3 on the 2D "
                        "sets, 0.1 on the digits); with --arch prompt_mlp: of the empty prompt (default 0.1)")
    p.set_defaults(func=train.run)


def few_step_default(default: str, others: str) -> str:
    r"""The few-step samplers' default of a flag: one value, or the default sampler's beside the others'."""
    mine = getattr(sample, default)
    theirs = getattr(sample, others, others)
    if mine == theirs:
        return f"{mine} for the few-step samplers"
    return f"{mine} for {sample.DEFAULT_SAMPLER}, {theirs} for the other few-step samplers"


def add_sample(sub) -> None:
    p = sub.add_parser("sample", help="draw samples from a trained model (a latent model's decoded to images); writes "
                                      "FILE.npy")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--sampler", choices=SAMPLERS + FAST,
                   help="ddpm, ddim, ode (RK45, or Heun with --steps), sde, or a few-step ODE sampler "
                        f"({', '.join(FAST)}). Default: {sample.DEFAULT_SAMPLER} on the {sample.DEFAULT_GRID} grid "
                        f"at {sample.DEFAULT_NFE} evaluations, plus one to denoise: {sample.DEFAULT_WHY}")
    p.add_argument("--steps", type=positive(int, MAX_T),
                   help="what the sampler counts: ddpm and ddim, steps of the chain (default 1000 and 250); sde, "
                        "Euler-Maruyama steps (default 1000); ode, Heun steps (without it: adaptive RK45); few-step "
                        f"samplers, denoiser evaluations (default {few_step_default('DEFAULT_NFE', 'FAST_NFE')}, "
                        "plus one to denoise)")
    p.add_argument("--grid", choices=GRIDS, help="where the steps fall: uniform in t, in log-SNR, Karras et al.'s rho = 7 "
                                                 f"or quadratic (default: {few_step_default('DEFAULT_GRID', 'log_snr')}"
                                                 "; edm: karras; ddim and ode: uniform)")
    p.add_argument("--steps-file", dest="steps_file", metavar="FILE.json",
                   help="walk the step times of this file (`npdiff steps` writes it) with its sampler, or with "
                        "--sampler if that one can take its steps; refused for a model of another schedule")
    p.add_argument("--n", type=positive(int, MAX_POINTS), default=1000, help="number of samples")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the starting noise and the samplers' noise")
    p.add_argument("--out", metavar="FILE.npy", required=True, help="file for the (n, D) samples (.npy is appended if missing)")
    p.add_argument("--plot", "--figure", dest="plot", metavar="FILE.png",
                   help="also draw the samples (2-D: a scatter; images: a grid)")
    p.add_argument("--data", help="the model's data set: drawn beside the samples in --plot")
    p.add_argument("--other-data", dest="other_data", action="store_true", help=OTHER_DATA_HELP)
    p.add_argument("--variance", choices=VARIANCES,
                   help="ddpm: the reverse variance (default large; analytic needs --data, trace one divergence per step, "
                        "diagonal the Jacobian's diagonal per step: D tangents)")
    p.add_argument("--threshold", choices=THRESHOLDS,
                   help="ddpm and ddim: threshold the predicted x0 at every step (Imagen): static clips it to [-1, 1], "
                        "dynamic divides it by its --percentile of |x0| when that exceeds 1 (default none)")
    p.add_argument("--percentile", type=in_range(float, 0.0, 1.0, lo_open=True, hi_open=True),
                   help=f"with --threshold dynamic: the percentile p in (0, 1) (default {IMAGEN_PERCENTILE})")
    p.add_argument("--label", type=in_range(int, 0, MAX_CLASSES), help="a conditional model: the class to sample")
    p.add_argument("--guidance", type=in_range(float, 0.0, 100.0),
                   help="with --label or --prompt: classifier-free guidance weight w >= 0 (default 0, the conditional "
                        "model)")
    add_prompt_flag(p)
    p.set_defaults(func=sample.run)


def add_prompt_flag(p: argparse.ArgumentParser) -> None:
    r"""``npdiff sample --prompt``: the prompt of a prompt model (``npdiff train --arch prompt_mlp``)."""
    p.add_argument("--prompt", metavar="TEXT",
                   help="a prompt model: the prompt to sample, e.g. 'bold seven slanted right' (words: "
                        f"{' '.join(DIGIT_VOCABULARY.words[2:])}; '' is the unconditional model)")


def add_steps(sub) -> None:
    p = sub.add_parser("steps", help="optimize a few-step sampler's step times for a 2-D model by the exact KL to its "
                                     "flow (an image model: GITS's dynamic programme, a surrogate); writes FILE.json "
                                     "for `npdiff sample --steps-file`")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--out", metavar="FILE.json", required=True,
                   help="the step file to write (.json is appended if missing)")
    p.add_argument("--sampler", choices=FAST_SAMPLERS, default=sample.DEFAULT_SAMPLER, help="the few-step sampler to fit")
    p.add_argument("--steps", type=positive(int, MAX_T), default=steps.DEFAULT_NFE,
                   help="its budget of denoiser evaluations (the final denoising step is one more)")
    p.add_argument("--start", choices=GRIDS, default="quadratic", help="the grid the search starts from")
    p.add_argument("--n-fit", dest="n_fit", type=in_range(int, 2, MAX_POINTS), default=400,
                   help="fixed starting points of the objective (the exact KL on them; images: the teacher's)")
    p.add_argument("--n-check", dest="n_check", type=in_range(int, 2, MAX_POINTS), default=2000,
                   help="fresh starting points of the KL reported")
    p.add_argument("--evaluations", type=positive(int, 1_000_000), default=steps.DEFAULT_EVALUATIONS,
                   help="trials of the times at most (SciPy's Powell method; each one exact likelihood of the "
                        "fitting points, about a second on the default 2-D model)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the fitting and checking points")
    p.set_defaults(func=steps.run)


def add_nll(sub) -> None:
    p = sub.add_parser("nll", help="negative log-likelihood of fresh test points (2-D: against the true entropy; "
                                   "images: bits/dim of the test split; a latent model: LSGM's bound)")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--data", required=True, help="the data set to score (see `npdiff datasets`); the model's own, "
                                                 "unless --other-data")
    p.add_argument("--n", type=positive(int, MAX_POINTS),
                   help="2-D: fresh points (default 2000); images: the first n of the split (default all)")
    p.add_argument("--split", choices=("test", "train"), default="test", help="images: which split")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the fresh test points (2-D), the dequantization "
                                                        "and the VLB's noise")
    p.add_argument("--method", choices=("ode", "vlb", "both"), default="ode",
                   help="the exact probability-flow ODE likelihood, the variational bound, or both")
    p.add_argument("--T", type=positive(int, MAX_T),
                   help="steps of the VLB's chain, uniform in t, one denoiser evaluation each (default 1000; images: the "
                        "recipe's chain, 50 steps: 49 uniform in sqrt(t), then the decoder from t = 0.02)")
    p.add_argument("--variance", choices=VARIANCES,
                   help="the VLB's reverse variance (default large; images: diagonal; analytic estimates E||eps||^2 on "
                        "training data, "
                        "trace is per point from the exact divergence, diagonal per point and dimension from the "
                        "Jacobian's diagonal)")
    p.add_argument("--draws", type=positive(int, 1000), default=1,
                   help="images: dequantization draws per image, combined by log-mean-exp (importance weighting); a "
                        "latent model: draws of z ~ q(z | x) per image, the mean of their bounds")
    p.add_argument("--dequantization", choices=DEQUANTIZATIONS,
                   help="images: the noise within each bin, uniform or i-DODE's truncated normal (default uniform)")
    p.add_argument("--scale", type=positive(float, 1.0),
                   help="images: the truncated normal's standard deviation in data units (default sigma/alpha "
                        "where the likelihood starts: the ODE's t_min, the chain's first time)")
    p.add_argument("--vlb-data", dest="vlb_data", choices=("levels", "dequantized"), default="levels",
                   help="images: the bound scores the levels through the discretized decoder, or the dequantized "
                        "images with a Gaussian decoder density (then --dequantization and --draws apply to it)")
    p.add_argument("--steps-file", dest="steps_file", metavar="FILE.json",
                   help="score the bound on the chain through this step file's times (`npdiff steps` writes it) "
                        "instead of --T uniform steps; refused for a model of another schedule")
    p.add_argument("--rtol", type=in_range(float, 1e-13, 0.1), default=1e-5, help="RK45's relative tolerance")
    p.add_argument("--atol", type=in_range(float, 1e-14, 0.1), default=1e-5, help="RK45's absolute tolerance")
    p.add_argument("--out", "--save", dest="out", metavar="FILE.npz",
                   help="also write the points and their per-point log-likelihoods (.npz is appended if missing)")
    p.add_argument("--other-data", dest="other_data", action="store_true", help=OTHER_DATA_HELP)
    p.add_argument("--label", type=in_range(int, 0, MAX_CLASSES),
                   help="a conditional model: score points of this class by log p(x | y)")
    p.set_defaults(func=nll.run)


def add_info(sub) -> None:
    p = sub.add_parser("datasets", help="list the data sets with their true entropies")
    p.set_defaults(func=info.datasets)
    p = sub.add_parser("schedules", help="print the noise schedules' alpha_bar table (and plot them)")
    p.add_argument("--T", type=positive(int, MAX_T), default=1000, help="number of discrete steps")
    p.add_argument("--plot", metavar="FILE.png", help="also draw alpha_bar, log-SNR and beta curves")
    p.set_defaults(func=info.schedules)


def _add_edit_flags(p: argparse.ArgumentParser) -> None:
    r"""The flags ``inpaint`` and ``img2img`` share: the model, which test digit, how many edits, the files."""
    p.add_argument("--model", required=True, help=MODEL_HELP + " (a digits model: 64-D)")
    p.add_argument("--image-index", dest="image_index", type=in_range(int, 0, DIGITS_N_TEST - 1), required=True,
                   help=f"which digit of the test split, 0..{DIGITS_N_TEST - 1}")
    p.add_argument("--n", type=positive(int, MAX_POINTS), default=4, help="edits of that digit")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the edits' noise (and of --mask random)")
    p.add_argument("--out", metavar="FILE.npy", required=True, help="file for the (n, 64) edits (.npy is appended if missing)")
    p.add_argument("--figure", metavar="FILE.png", help="also draw the original, the input and the edits")


def add_inpaint(sub) -> None:
    p = sub.add_parser("inpaint", help="hide part of a test digit and fill it in with a digits model; writes FILE.npy")
    _add_edit_flags(p)
    p.add_argument("--mask", choices=IMAGE_MASKS, default="left",
                   help="the part missing: left half, bottom half, centre 4x4 square, or half the pixels at random")
    p.add_argument("--method", choices=edit.INPAINT_METHODS, default="repaint",
                   help="replacement (forward-noised known part), RePaint (with resampling jumps) or DPS (gradient "
                        "through the predicted x0)")
    p.add_argument("--steps", type=positive(int, MAX_T),
                   help="chain steps (default: " + ", ".join(f"{k} {v}" for k, v in edit.INPAINT_DEFAULTS.items()) + ")")
    p.add_argument("--sampler", choices=REPLACEMENT_SAMPLERS,
                   help="replacement: the unknown part's reverse step, ancestral or DDIM's deterministic one (default ddpm)")
    p.add_argument("--scale", type=in_range(float, 0.0, 100.0), help=f"dps: the normalized step zeta (default {edit.DPS_SCALE})")
    p.add_argument("--jump-length", dest="jump_length", type=positive(int, MAX_T),
                   help="repaint: chain steps a jump goes back up (default 5)")
    p.add_argument("--resamplings", type=positive(int, 1000), help="repaint: passes down at each jump (default 5)")
    p.set_defaults(func=edit.inpaint)


def add_img2img(sub) -> None:
    p = sub.add_parser("img2img", help="make a test digit coarse and edit it back by SDEdit; writes FILE.npy")
    _add_edit_flags(p)
    p.add_argument("--coarse", choices=COARSE_KINDS, default="blur",
                   help="the rule: Gaussian blur (1 pixel), 2x2 block average, or binary strokes")
    p.add_argument("--strength", type=in_range(float, 0.0, 1.0, lo_open=True), default=0.5,
                   help="SDEdit's strength s in (0, 1]: noise to t0 = s, then denoise (1 forgets the input)")
    p.add_argument("--steps", type=positive(int, MAX_T), help="DDPM steps of a full-strength edit; the edit takes "
                                                              "round(strength * steps) (default 200)")
    p.set_defaults(func=edit.img2img)


#: the commands in the order ``npdiff --help`` lists them
def add_upsample(sub) -> None:
    p = sub.add_parser("upsample", help="super-resolve the 4x4 block sums of a test digit with a trained SR model "
                                        "(benchmarks/cascade.py trains one); writes FILE.npy")
    p.add_argument("--model", required=True, help="the super-resolution model (a context_mlp checkpoint)")
    p.add_argument("--image-index", dest="image_index", type=in_range(int, 0, 10**6), required=True,
                   help="the test digit (0..359 of the documented split) whose 4x4 is up-sampled")
    p.add_argument("--out", metavar="FILE.npy", required=True, help="where to write the (n, 64) samples")
    p.add_argument("--figure", metavar="FILE.png", help="also draw the samples beside the digit and its 4x4")
    p.add_argument("--n", type=positive(int, MAX_POINTS), default=8, help="samples of the same 4x4")
    p.add_argument("--steps", type=positive(int, 1000), default=250, help="ancestral DDPM steps (of T = 1000)")
    p.add_argument("--aug-level", dest="aug_level", type=in_range(float, 0.0, 1.0), default=0.05,
                   help="the low-resolution image's augmentation level s (npdiff.edit.cascade)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the draws (augmentation, chain)")
    p.set_defaults(func=upsample.run)


COMMANDS = (add_demo, add_train, add_sample, add_steps, add_nll, add_info, add_inpaint, add_img2img, add_upsample)


def build_parser() -> Parser:
    r"""The parser of ``npdiff``; ``parser.commands`` maps each command's name to its own parser."""
    parser = Parser(prog="npdiff", description="Diffusion models from scratch in NumPy. Start with `npdiff demo`; "
                                               "each command's flags: npdiff COMMAND --help.")
    parser.add_argument("--version", action="version", version=f"npdiff {__version__}")
    sub = parser.add_subparsers(dest="command", title="commands")
    for add in COMMANDS:
        add(sub)
    for action in sub.choices.values():
        action.add_argument("--json", action="store_true",
                            help="print one JSON object on stdout, and nothing else there (the rest goes to stderr)")
    parser.commands = dict(sub.choices)
    return parser
