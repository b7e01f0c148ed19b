r"""``npdiff inpaint`` and ``npdiff img2img``: edit one test digit with a trained digits model.

``inpaint`` hides a named part of test digit ``--image-index`` (:func:`npdiff.edit.mask.image_mask`: the left
half, the bottom half, the centre 4x4 square, or half of the pixels at random) and fills it in ``--n`` times by
``--method`` (replacement, RePaint or DPS, :mod:`npdiff.edit`); ``img2img`` makes the digit coarse by a rule
(:func:`npdiff.edit.coarse.coarse_digits`: blur, block, strokes) and edits it by SDEdit at ``--strength``
(:func:`npdiff.edit.sdedit.sdedit`, DDPM). Both write the (n, 64) outputs to ``--out`` and, with ``--figure``,
the original, the input and the outputs side by side. They edit the 8x8 digits only: a 2-D model is refused.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .. import edit, seeds
from ..data.images import DIGITS_N_TEST, digits
from ..edit.coarse import coarse_digits
from ..edit.mask import image_mask
from ..edit.sdedit import sdedit
from ..plot import plot_image_table
from ._common import UserError, check_out_file, emit, load_model, say
from .sample import npy_path

__all__ = ["DPS_SCALE", "INPAINT_DEFAULTS", "INPAINT_METHODS", "img2img", "inpaint"]

#: the inpainters of ``--method``
INPAINT_METHODS = ("replacement", "repaint", "dps")
#: each method's steps without ``--steps`` (RePaint's 50 with jumps of 5 and 5 resamplings take 230 evaluations)
INPAINT_DEFAULTS = {"replacement": 250, "repaint": 50, "dps": 250}
#: DPS's normalized step without ``--scale``: on 200 test digits it agrees with the original's class more often than
#: 0.1 for every mask (0.895-0.97 against 0.83-0.955), its known pixels off by an RMS of 0.05, under half a level
#: (docs/measurements/editing.md)
DPS_SCALE = 0.3
#: the side of the images these commands edit
_SHAPE = (8, 8)


def _digit(args: argparse.Namespace):
    r"""The model (refused unless it is a 64-D digits model) and test digit ``--image-index``: (ck, model, x (64,), label)."""
    n_test = DIGITS_N_TEST
    if not isinstance(args.image_index, int) or not 0 <= args.image_index < n_test:  # argparse passes `=--` as []
        raise UserError(f"--image-index must be an int in 0..{n_test - 1} (a digit of the test split), got {args.image_index!r}")
    check_out_file(args.out, "--out")
    check_out_file(str(npy_path(args.out)), "--out")
    check_out_file(args.figure, "--figure")
    _, model = load_model(args.model)
    if model.dim != _SHAPE[0] * _SHAPE[1]:
        raise UserError(f"--model {args.model!r} is a {model.dim}-D model; npdiff {args.command} edits the 8x8 digits "
                        "and needs a 64-D digits model (npdiff train --data digits)")
    d = digits()
    return model, d.test[args.image_index], int(d.test_labels[args.image_index])


def _finish(args: argparse.Namespace, x: np.ndarray, shown: np.ndarray, res, seconds: float, label: int,
            what: str, extra: dict) -> int:
    out = npy_path(args.out)
    np.save(out, res.x)
    say(f"wrote {res.x.shape[0]} edits of test digit {args.image_index} (a {label}) to {out} "
        f"({res.nfe} evaluations, {seconds:.1f} s)")
    if args.figure:
        table = np.concatenate([x[None], shown[None], res.x])[None]  # (1, 2 + n, 64)
        cols = ["original", what] + [f"{args.command} {k + 1}" for k in range(res.x.shape[0])]
        plot_image_table(table, args.figure, col_labels=cols, shape=_SHAPE)
        say(f"wrote {args.figure}")
    emit(args, {"n": int(res.x.shape[0]), "nfe": int(res.nfe), "seconds": round(seconds, 3), "out": str(out),
                "image_index": args.image_index, "label": label, "seed": args.seed, **extra})
    return 0


def inpaint(args: argparse.Namespace) -> int:
    r"""``npdiff inpaint``."""
    model, x, label = _digit(args)
    mask = image_mask(args.mask, np.random.default_rng(args.seed + seeds.EDIT_MASK), shape=_SHAPE)  # (64,) known
    if args.method != "dps" and args.scale is not None:
        raise UserError(f"--scale is the step size of --method dps; {args.method} takes none")
    if args.method != "repaint" and (args.jump_length is not None or args.resamplings is not None):
        raise UserError(f"--jump-length and --resamplings are RePaint's; --method {args.method} takes neither")
    if args.method != "replacement" and args.sampler is not None:
        raise UserError(f"--sampler chooses replacement's reverse step; --method {args.method} takes the ancestral one")
    steps = args.steps or INPAINT_DEFAULTS[args.method]
    jump, resamplings = args.jump_length or 5, args.resamplings or 5
    if args.method == "repaint" and resamplings > 1 and jump >= steps:
        raise UserError(f"--jump-length {jump} must be below --steps {steps} for a jump to fit in the chain")
    rng = np.random.default_rng(args.seed)
    kw = dict(steps=steps, progress=True)
    t0 = time.perf_counter()
    if args.method == "replacement":
        res = edit.replacement_sample(model, x, mask, args.n, rng, sampler=args.sampler or "ddpm", **kw)
    elif args.method == "repaint":
        res = edit.repaint_sample(model, x, mask, args.n, rng, jump_length=jump, resamplings=resamplings, **kw)
    else:
        res = edit.dps_sample(model, x, mask, args.n, rng, scale=DPS_SCALE if args.scale is None else args.scale, **kw)
    seconds = time.perf_counter() - t0
    return _finish(args, x, np.where(mask, x, np.nan), res, seconds, label, f"{args.mask} missing",
                   {"mask": args.mask, "method": args.method, "steps": steps})


def img2img(args: argparse.Namespace) -> int:
    r"""``npdiff img2img``."""
    model, x, label = _digit(args)
    coarse = coarse_digits(x[None], args.coarse, shape=_SHAPE)[0]  # (64,)
    t0 = time.perf_counter()
    res = sdedit(model, np.repeat(coarse[None], args.n, axis=0), np.random.default_rng(args.seed),
                 strength=args.strength, sampler="ddpm", steps=args.steps or 200, progress=True)
    seconds = time.perf_counter() - t0
    return _finish(args, x, coarse, res, seconds, label, args.coarse,
                   {"coarse": args.coarse, "strength": args.strength, "steps": args.steps or 200})
