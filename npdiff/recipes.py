r"""Default training recipes: one place that says how npdiff trains a model by default.

``npdiff train``, ``npdiff demo`` and the quality benchmark all read these, so a change of
default is made once. Each recipe is a pair of keyword dictionaries, one for
:class:`~npdiff.nn.config.MLPConfig` and one for :class:`~npdiff.train.TrainConfig`, plus the
schedule; a flag on the command line overrides any field.

``"2d"`` trains the toy sets (raw coordinates plus their sinusoidal embedding at scale 8, time
embedding at scale 100, v-prediction with the loss in eps space, half of each batch's times drawn
with uniform log-SNR, that mixture's 64 bins drawn by the loss's second moment, batch 512 for
50,000 steps); ``"images"`` trains the 8x8 digits, with the MLP or, under its key ``"unet"``, with
the U-Net (:class:`~npdiff.nn.unet.config.UNetConfig`'s fields and the training fields that differ
from the MLP's), which ``npdiff train`` uses on images unless told ``--arch mlp``. What each choice bought, and why, is in
``docs/measurements/recipes.md`` and ``docs/measurements/unet.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import check_schedule
from .sample.grids import time_grid
from .schedule import Schedule, cosine, vp_linear

__all__ = ["ARCHS", "RECIPES", "bound_times", "recipe"]

#: the networks a recipe may hold besides the MLP
ARCHS = ("unet", "prompt_mlp")

RECIPES: dict[str, dict[str, Any]] = {
    "2d": {
        "model": {"width": 128, "depth": 3, "emb_dim": 128, "activation": "gelu", "parameterization": "v",
                  "time_scale": 100.0, "coords": "raw+sinusoidal", "coord_scale": 8.0},
        "train": {"steps": 50_000, "batch_size": 512, "lr": 1e-3, "lr_schedule": "cosine", "clip_norm": 1.0,
                  "ema_decay": 0.999, "t_min": 1e-5, "log_snr_fraction": 0.5, "loss": "eps",
                  "loss_second_moment_bins": 64,
                  # a conditional model's label dropout (unconditional models ignore it): at 0.1 the unconditional
                  # mode, which guidance needs, trails the unconditional recipe (docs/measurements/guidance.md)
                  "p_uncond": 0.3},
    },
    "images": {
        "model": {"width": 256, "depth": 3, "emb_dim": 128, "activation": "gelu", "parameterization": "v",
                  "coords": "raw"},
        "train": {"steps": 48_000, "batch_size": 128, "lr": 1e-3, "lr_schedule": "cosine", "clip_norm": 1.0,
                  "weight_decay": 0.1, "ema_decay": 0.999, "t_min": 1e-5},
        "data": {"dequantize": True},
        # the bound's chain: 50 steps, 49 uniform in sqrt(t) and the decoder's from t = 0.02, where the noise
        # (sigma = 0.077) is about half a bin (1/16); the per-pixel Tweedie variance (docs/measurements/digits_bound.md)
        "eval": {"vlb_T": 50, "vlb_grid": "quadratic", "vlb_t_min": 0.02, "vlb_variance": "diagonal"},
        # --arch unet: UNetConfig's defaults (widths 32, 64, 64; attention at 4x4 and 2x2), v-prediction;
        # more, smaller steps than the MLP's, in about the MLP's training time on one core; likelihood weighting
        # (the eps-loss with t uniform in log-SNR, the continuous bound's own weight): lower bound and exact ODE on
        # two seeds (docs/measurements/likelihood_levers.md)
        "unet": {
            "model": {"parameterization": "v"},
            "train": {"steps": 3_000, "batch_size": 32, "lr": 5e-4, "loss": "eps", "log_snr_fraction": 1.0},
        },
        # --arch prompt_mlp: the prompt-conditioned MLP of benchmarks/prompt_adherence.py, trained on the levels
        # (no dequantization) with attribute dropout and the empty prompt (npdiff.data.prompts.training_sampler)
        "prompt_mlp": {
            "model": {"width": 256, "depth": 3, "emb_dim": 32, "text_width": 32, "query_tokens": 8},
            "train": {"steps": 12_000, "batch_size": 128, "lr": 2e-3, "weight_decay": 0.0, "ema_decay": 0.995},
            "schedule": "cosine",
            "data": {"dequantize": False, "p_attribute": 0.3, "p_empty": 0.1},
        },
    },
}


def bound_times(schedule: Schedule) -> np.ndarray:
    r"""The times of the image recipe's bound chain: ``vlb_T`` steps, the last the decoder's from ``vlb_t_min``.

    The chain the variational bound of an image model runs by default (``npdiff nll``): ``vlb_T - 1`` steps of
    grid ``vlb_grid`` from ``schedule.t_max`` down to ``vlb_t_min``, where the decoder :math:`p(x_0 \mid x_{t_1})`
    takes over for the last step; every one of them is scored (:func:`npdiff.likelihood.vlb` with ``times``), one
    denoiser evaluation each, as many as the uniform chain of ``vlb_T`` steps. Why there, and why this grid:
    ``docs/measurements/digits_bound.md``.

    Returns
    -------
    (vlb_T,) array
        Decreasing times (:func:`npdiff.sample.grids.time_grid`).
    """
    ev = RECIPES["images"]["eval"]
    return time_grid(check_schedule(schedule), ev["vlb_T"] - 1, ev["vlb_grid"], ev["vlb_t_min"])


def recipe(name: str = "2d", arch: str = "mlp") -> tuple[dict[str, Any], dict[str, Any], Schedule]:
    r"""Copies of the model and training keyword arguments of recipe ``name`` for network ``arch``, and its schedule.

    ``arch="mlp"`` (default) gives the recipe's ``model`` and ``train``; another network gives the
    recipe's entry of that name (``RECIPES["images"]["unet"]``): its own ``model`` fields, and the
    recipe's ``train`` fields updated by its ``train``, and its ``schedule`` (default vp_linear).
    """
    if not isinstance(name, str) or name not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {name!r}")
    r = RECIPES[name]
    if arch == "mlp":
        return dict(r["model"]), dict(r["train"]), vp_linear()
    if not isinstance(arch, str) or not isinstance(r.get(arch), dict):
        have = ["mlp", *sorted(k for k in ARCHS if isinstance(r.get(k), dict))]
        raise ValueError(f"recipe {name!r} has no network arch = {arch!r}; it has {have}")
    schedule = {"vp_linear": vp_linear, "cosine": cosine}[r[arch].get("schedule", "vp_linear")]()
    return dict(r[arch]["model"]), {**r["train"], **r[arch]["train"]}, schedule
