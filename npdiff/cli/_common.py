r"""What the commands share: output on the two streams, the user's files, data sets and models.

Human-readable output goes to stderr (:func:`say`); with ``--json`` stdout holds exactly one
line, a JSON object (:func:`emit`). A user mistake is a :class:`UserError`, which ``main``
prints as one line.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .. import checkpoint, seeds
from .. import schedule as sch
from ..data import toy2d
from ..data.images import ImageSet, digits
from ..guidance import guided
from ..reverse import chain_for
from ..reverse_variance import EpsMoments, eps_moments
from ..sample.fast import FAST_SAMPLERS

#: the samplers of the chain and of the flow; the others of ``FAST_SAMPLERS`` are the few-step ones
SAMPLERS = ("ddpm", "ddim", "ode", "sde")
#: the few-step samplers: their ``--steps`` counts denoiser evaluations
FAST = tuple(n for n in FAST_SAMPLERS if n not in SAMPLERS)
#: the schedules ``--schedule`` trains with
SCHEDULES = {"vp_linear": sch.vp_linear, "cosine": sch.cosine, "log_snr_linear": sch.log_snr_linear}
#: the image data sets (scikit-learn's digits: the ``images`` extra)
IMAGE_SETS = ("digits",)


class UserError(ValueError):
    r"""A mistake of the user's, reported as one line."""


def say(msg: str) -> None:
    r"""A line for the human, on stderr."""
    print(msg, file=sys.stderr, flush=True)


def emit(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    r"""The one JSON line on stdout, when ``--json`` asked for it."""
    if args.json:
        print(json.dumps(payload, sort_keys=True))


def table(args: argparse.Namespace, line: str) -> None:
    r"""A line of a command's table: on stdout, or on stderr when stdout is reserved for the JSON line."""
    print(line, file=sys.stderr if args.json else sys.stdout)


def closest(word: str, choices) -> str:
    r"""`` (did you mean X?)`` for the choice closest to ``word``, or nothing when none is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def pm(se: float | None) -> str:
    r"""`` +- se`` to four decimals, or nothing without a standard error (one point)."""
    return "" if se is None else f" +- {se:.4f}"


def load_data(name: str):
    r"""The data set called ``name``: a toy set, or the digits (ImportError naming the extra without scikit-learn)."""
    if name in toy2d.NAMES:
        return toy2d.load(name)
    if name in IMAGE_SETS:
        return digits()
    raise UserError(f"unknown data set {name!r}{closest(name, toy2d.NAMES + IMAGE_SETS)}; choose one of "
                    f"{', '.join(toy2d.NAMES + IMAGE_SETS)} (see `npdiff datasets`)")


def is_images(data) -> bool:
    r"""Whether ``data`` is an image set (bits/dim, splits) rather than a 2-D set with a known density."""
    return isinstance(data, ImageSet)


def load_model(path: str):
    r"""The checkpoint at ``path``, a model file or a folder holding ``model.npz`` (what ``train --out`` writes)."""
    if not os.path.exists(path):
        raise UserError(f"model {path!r} does not exist (train one with `npdiff train --data NAME --out DIR`, "
                        "then pass DIR or DIR/model.npz)")
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "model.npz")):
            raise UserError(f"model folder {path!r} holds no model.npz (the file `npdiff train --out {path}` writes)")
        path = os.path.join(path, "model.npz")
    ck = checkpoint.load(path)  # ValueError with the file name when it is not a checkpoint
    return ck, ck.model


def check_out_file(path: str | None, flag: str) -> None:
    r"""Refuse an output file that could not be written, before the work that would fill it."""
    if path is None:
        return
    parent = Path(path).parent
    if os.path.isdir(path):
        raise UserError(f"{flag} {path!r} is a folder, expected a file name")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UserError(f"{flag} {path!r}: folder {str(parent)!r} does not exist or is not writable")


def check_out_dir(path: str, flag: str) -> None:
    r"""Refuse an output folder that could not be created or written, before training for it."""
    p = Path(path)
    while not p.exists() and p != p.parent:  # the nearest ancestor that exists must be a writable folder
        p = p.parent
    if not p.is_dir() or not os.access(p, os.W_OK):
        raise UserError(f"{flag} {path!r}: {str(p)!r} is not a writable folder")


def check_dims(model, data, model_path: str) -> None:
    r"""Refuse a model of another dimension than the data set's."""
    if model.dim != data.dim:
        raise UserError(f"model {model_path!r} was trained on {model.dim}-D data, but data set {data.name!r} is {data.dim}-D")


def check_data_name(ck, data, args: argparse.Namespace) -> None:
    r"""Refuse a model trained on another data set (the checkpoint records its name), unless the user insists."""
    if ck.data_name is None or ck.data_name == data.name:
        return  # older checkpoints carry no name: nothing to compare
    if not args.other_data:
        raise UserError(f"model {args.model!r} was trained on {ck.data_name!r}, not on {data.name!r}; "
                        "pass --other-data to evaluate it on another data set anyway")
    say(f"note: model {args.model!r} was trained on {ck.data_name!r}; evaluating it on {data.name!r} as asked")


def check_label(model, label: int | None) -> int | None:
    r"""--label against the model's classes, before any work."""
    if label is None:
        return None
    if not model.num_classes:
        raise UserError("--label needs a conditional model (trained with --conditional); this model has no labels")
    if label >= model.num_classes:
        raise UserError(f"--label must be in 0..{model.num_classes - 1} for this model, got {label}")
    return label


def conditional(model, label: int, w: float = 0.0):
    r"""The model of class ``label`` with classifier-free guidance weight ``w`` (0: the conditional model)."""
    return guided(model, label, w)


def training_eps_moments(model, data, T: int, seed: int, steps: int | None = None) -> EpsMoments:
    r"""What the "analytic" variance needs: E||eps||^2 / D at the chain's times, from training data
    (the train split of images; fresh samples of a 2-D set, which its model trained on)."""
    if is_images(data):
        x = data.train
    else:
        x = data.sample(10_000, np.random.default_rng(seed + seeds.MOMENT_DATA))
    chain = chain_for(model.schedule, T, steps)
    say(f"estimating E||eps||^2 / D at {chain.T} steps on {x.shape[0]} training points for the analytic variance ...")
    return eps_moments(model, x, chain, np.random.default_rng(seed + seeds.MOMENT_NOISE))
