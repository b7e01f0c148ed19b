r"""Checks of the optimizer's arguments and state, so that :mod:`npdiff.nn.optim` reads as the update it is."""

from __future__ import annotations

import numpy as np

from .._check import real_scalar

__all__ = ["check_adamw_hyperparameters", "check_optimizer_state"]


def check_adamw_hyperparameters(params: object, betas: object, eps: object, weight_decay: object, clip_norm: object,
                                ema_decay: object) -> tuple[float, float, float, float, float, float]:
    r"""Check AdamW's weights (a 1-D float32/float64 array) and hyperparameters.

    Returns :math:`\beta_1, \beta_2 \in [0, 1)`, :math:`\epsilon > 0`, the weight decay and the clipping norm
    (>= 0) and the EMA decay in [0, 1), as floats.
    """
    if not isinstance(params, np.ndarray) or params.ndim != 1 or params.dtype not in (np.float32, np.float64):
        raise TypeError(f"params must be a 1-D float32/float64 array, got {type(params).__name__}")
    if len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return (real_scalar(betas[0], "beta1", lo=0.0, hi=1.0, hi_open=True),
            real_scalar(betas[1], "beta2", lo=0.0, hi=1.0, hi_open=True),
            real_scalar(eps, "eps", lo=0.0, lo_open=True), real_scalar(weight_decay, "weight_decay", lo=0.0),
            real_scalar(clip_norm, "clip_norm", lo=0.0), real_scalar(ema_decay, "ema_decay", lo=0.0, hi=1.0, hi_open=True))


def check_optimizer_state(arrays: object, mine: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    r"""Check a saved optimizer state against the optimizer's own arrays ``mine``: same names, shapes and dtypes."""
    out = {}
    for name, like in mine.items():
        if not isinstance(arrays, dict) or name not in arrays:
            got = sorted(arrays) if isinstance(arrays, dict) else type(arrays).__name__
            raise ValueError(f"optimizer state must hold {name!r}, got {got}")
        arr = np.asarray(arrays[name])
        if arr.shape != like.shape or arr.dtype != like.dtype:
            raise ValueError(f"optimizer state {name!r} must be {like.dtype} of shape {like.shape}, "
                             f"got {arr.dtype} of shape {arr.shape}")
        out[name] = arr
    return out
