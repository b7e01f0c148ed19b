r"""``npdiff train``: train a denoiser on a data set and write ``DIR/model.npz``.

The recipe (:mod:`npdiff.recipes`: ``"2d"`` for the toy sets, ``"images"`` for the digits)
gives every default; a flag the user passes overrides its field. Images train on the train
split, freshly dequantized per batch unless the recipe says otherwise. ``--arch`` chooses the
network (without it, :func:`default_arch`: the U-Net on images, the MLP on points): the MLP (any data
set), the U-Net (images only; the flags that shape the MLP alone, :data:`MLP_ONLY`, are refused with
it, also when it is the default: ``--arch mlp`` asks for the MLP), or the prompt-conditioned MLP (the digits only: each
image's prompt written by the rule of :mod:`npdiff.data.prompts`, the held-out cells left out, words
and whole prompts dropped at random; ``--p-uncond`` is the share of empty prompts; the U-Net's flags and
``--conditional`` are refused with it). ``--latent`` trains latent diffusion instead (:mod:`npdiff.cli.latent`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..checkpoint import save
from ..data.images import ImageSet
from ..data.prompts import training_sampler
from ..data.toy2d import Toy2D
from ..nn import MLPConfig
from ..nn.model import DiffusionMLP
from ..nn.prompt_mlp import PromptMLP, PromptMLPConfig
from ..nn.unet import UNetConfig
from ..nn.unet.model import DiffusionUNet
from ..recipes import RECIPES, recipe
from ..train import TrainConfig, Trainer
from ._common import IMAGE_SETS, SCHEDULES, UserError, check_out_dir, emit, is_images, load_data, say
from .latent import LATENT_FILE, check_latent_train, train_latent

__all__ = ["ARCHS", "MLP_ONLY", "MODEL_FIELDS", "PROMPT_SETS", "TRAIN_FIELDS", "UNET_ONLY", "default_arch", "run",
           "train_model"]

#: the flags that override the recipe's model (MLPConfig) fields
MODEL_FIELDS = ("width", "depth", "parameterization", "activation", "coords", "coord_scale")
#: the networks ``--arch`` chooses
ARCHS = ("mlp", "unet", "prompt_mlp")
#: the data set whose images carry prompts (:mod:`npdiff.data.prompts`)
PROMPT_SETS = ("digits",)
#: the model flags that shape the MLP alone: refused with ``--arch unet``
MLP_ONLY = ("width", "depth", "activation", "coords", "coord_scale")
#: the model flags that shape the U-Net alone: refused with ``--arch mlp``
UNET_ONLY = ("base_width",)
#: the flags that override the recipe's training (TrainConfig) fields
TRAIN_FIELDS = ("steps", "batch_size", "lr", "lr_schedule", "weight_decay", "ema_decay", "p_uncond", "loss",
                "log_snr_fraction")


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def default_arch(data) -> str:
    r"""The network ``npdiff train`` trains on ``data`` without ``--arch``: the U-Net on images, the MLP on points.

    On the 8x8 digits the U-Net's recipe reaches a lower exact-ODE bits/dim on the test split and a lower
    Fréchet distance than the MLP's, in about the MLP's training time (``docs/measurements/unet.md``,
    ``docs/measurements/digits_quality.md``).
    """
    if not isinstance(data, (ImageSet, Toy2D)):
        raise TypeError(f"data must be a data set of npdiff (an ImageSet or a Toy2D, as `npdiff train --data NAME` "
                        f"loads), got {type(data).__name__}")
    return "unet" if is_images(data) else "mlp"


def check_arch(args: argparse.Namespace, data) -> str:
    r"""The network ``--arch`` chose (or :func:`default_arch` without it), refusing the flags of the other network
    and a U-Net of points. An MLP flag on images without ``--arch`` is refused, never read as a wish for the MLP."""
    arch = getattr(args, "arch", None)
    if arch is None:
        arch = default_arch(data)
        given = [_flag(f) for f in MLP_ONLY if getattr(args, f, None) is not None]
        if arch == "unet" and given:
            raise UserError(f"{', '.join(given)} shape{'s' if len(given) == 1 else ''} the MLP, but npdiff train trains "
                            f"the U-Net on image data ({data.name!r}) unless told otherwise: add --arch mlp to train "
                            f"the MLP, or leave out {', '.join(given)}")
    if arch == "prompt_mlp":
        return check_prompt_arch(args, data)
    other, name = (MLP_ONLY, "the MLP") if arch == "unet" else (UNET_ONLY, "the U-Net (--arch unet)")
    given = [_flag(f) for f in other if getattr(args, f, None) is not None]
    if given:
        raise UserError(f"{', '.join(given)} shape{'s' if len(given) == 1 else ''} {name} only, not --arch {arch}")
    if arch == "unet" and not is_images(data):
        raise UserError(f"--arch unet needs an image data set ({', '.join(IMAGE_SETS)}); {data.name!r} holds "
                        f"{data.dim}-D points, for the MLP (--arch mlp)")
    return arch


def check_prompt_arch(args: argparse.Namespace, data) -> str:
    r"""``--arch prompt_mlp``: the digits only, none of the U-Net's flags, no ``--conditional`` (prompts, not labels)."""
    given = [_flag(f) for f in UNET_ONLY if getattr(args, f, None) is not None]
    if given:
        raise UserError(f"{', '.join(given)} shape{'s' if len(given) == 1 else ''} the U-Net (--arch unet) only, "
                        "not --arch prompt_mlp")
    if getattr(args, "conditional", False):
        raise UserError("--conditional trains on class labels; --arch prompt_mlp conditions on prompts (written from "
                        "the labels and the pixels), leave out --conditional")
    if getattr(data, "name", None) not in PROMPT_SETS:
        raise UserError(f"--arch prompt_mlp needs a data set whose images carry prompts ({', '.join(PROMPT_SETS)}); "
                        f"got {data.name!r}")
    return "prompt_mlp"


def build_model(arch: str, data, model_kw: dict, schedule, rng: np.random.Generator):
    r"""A fresh network of ``arch`` for ``data`` with the fields ``model_kw``, its weights drawn from ``rng``."""
    if arch == "mlp":
        return DiffusionMLP(MLPConfig(dim=data.dim, **model_kw), schedule, rng=rng)
    if arch == "prompt_mlp":
        return PromptMLP(PromptMLPConfig(dim=data.dim, **model_kw), schedule, rng=rng)
    if arch != "unet":
        raise UserError(f"--arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    kw = dict(model_kw)
    base = kw.pop("base_width", None)
    if base is not None:  # the levels of the default U-Net: base, 2 base, 2 base channels
        kw["widths"] = (base, 2 * base, 2 * base)
    height, width = data.shape
    if height != width:
        raise UserError(f"--arch unet needs square images; {data.name!r} has {height}x{width}")
    try:
        config = UNetConfig(image_size=height, channels=1, **kw)
    except ValueError as exc:  # e.g. a base width the GroupNorm groups do not divide
        raise UserError(f"--arch unet: {exc}") from None
    return DiffusionUNet(config, schedule, rng=rng)


def prompt_source(data, train_kw: dict):
    r"""The prompt model's data: the train split's levels with their prompts (the recipe's dropout; ``--p-uncond`` the
    share of empty prompts), the held-out cells left out; and its description."""
    kw = RECIPES["images"]["prompt_mlp"]["data"]
    p_empty = train_kw.pop("p_uncond", kw["p_empty"])  # the trainer drops labels, not prompts: the sampler does
    source = training_sampler(data.train, data.train_labels, kw["p_attribute"], p_empty)
    return source, (f"{data.name} (train split, {source.images} of {data.train.shape[0]} images: the held-out cells "
                    f"left out; prompts by the rule, words dropped with probability {kw['p_attribute']:g}, empty "
                    f"prompt {p_empty:g})")


def train_model(data, args: argparse.Namespace, *, out: Path | None, seed: int):
    r"""Train on ``data`` with the recipe and the flags of ``args``; save to ``out/model.npz`` when given.

    Returns the EMA denoiser, the training history and the figures of the run (a dict).
    """
    images = is_images(data)
    arch = check_arch(args, data)
    model_kw, train_kw, schedule = recipe("images" if images else "2d", arch=arch)
    fields = MODEL_FIELDS if arch != "unet" else tuple(f for f in MODEL_FIELDS if f not in MLP_ONLY) + UNET_ONLY
    model_kw.update({f: getattr(args, f) for f in fields if getattr(args, f, None) is not None})
    train_kw.update({f: getattr(args, f) for f in TRAIN_FIELDS if getattr(args, f, None) is not None})
    conditional = getattr(args, "conditional", False)
    if conditional:
        if not getattr(data, "num_classes", 0):
            raise UserError(f"--conditional needs a labelled data set; {data.name!r} has no labels")
        model_kw["num_classes"] = data.num_classes
    if getattr(args, "schedule", None):
        schedule = SCHEDULES[args.schedule]()
    rng = np.random.default_rng(seed)
    model = build_model(arch, data, model_kw, schedule, rng)
    source, what = data, data.name
    if images:  # the train split only; fresh uniform dequantization per batch unless the recipe says otherwise
        dequantize = RECIPES["images"].get("data", {}).get("dequantize", True)
        source = data.sample_dequantized if dequantize else data.sample
        if conditional:
            source = data.sample_dequantized_labelled if dequantize else data.sample_labelled
        what = f"{data.name} (train split, {data.train.shape[0]} images{', dequantized' if dequantize else ''})"
    if arch == "prompt_mlp":
        source, what = prompt_source(data, train_kw)
    trainer = Trainer(model, source, TrainConfig(**train_kw), rng)
    say(f"training {model!r} on {what} for {trainer.config.steps} steps (batch {trainer.config.batch_size})")
    t0 = time.perf_counter()
    history = trainer.run(progress=True)
    seconds = time.perf_counter() - t0
    loss = history["loss"]
    last = max(1, len(loss) // 100)
    final = float(np.mean(loss[-last:]))  # mean of the last 1% of steps: one step's loss is noisy
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        save(out / "model.npz", trainer.denoiser(ema=False, dtype=np.float32), optimizer=trainer.optimizer,
             step=trainer.step, rng=trainer.rng, history=history, train_config=trainer.config.to_dict(),
             data_name=data.name)
        (out / LATENT_FILE).unlink(missing_ok=True)  # a pixel model now: an old latent model's marker would lie
    stats = {"steps": int(trainer.step), "seconds": round(seconds, 3), "steps_per_s": round(trainer.step / seconds, 1),
             "final_loss": final, "loss_space": trainer.loss_kind}
    say(f"trained {trainer.step} steps in {seconds:.1f} s ({stats['steps_per_s']} steps/s); final loss {final:.4f} "
        f"(squared error per dimension in {trainer.loss_kind} space, mean of the last {last} steps)")
    return trainer.denoiser(ema=True), history, stats


def run(args: argparse.Namespace) -> int:
    r"""``npdiff train``."""
    check_out_dir(args.out, "--out")
    data = load_data(args.data)
    out = Path(args.out)
    check_latent_train(args, data)
    if getattr(args, "latent", False):
        emit(args, train_latent(data, args, out=out, seed=args.seed))
        return 0
    _, _, stats = train_model(data, args, out=out, seed=args.seed)
    say(f"wrote {out / 'model.npz'}")
    emit(args, {**stats, "model": str(out / "model.npz")})
    return 0
