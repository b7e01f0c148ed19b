r"""The checks of the data modules' doors: square images, the super-resolution context, masked training pairs, prompts.

A validation module: :mod:`npdiff.data.lowres`, :mod:`npdiff.data.masked` and :mod:`npdiff.data.prompts` check
their arguments here, once, so that each rule reads as the rule.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .._check import as_batch, as_float_array, as_times, positive_int, real_scalar
from ..schedule import Schedule

__all__ = [
    "as_mask_and_known",
    "as_prompt_list",
    "check_masked_data",
    "check_schedule",
    "check_square_side",
    "check_sr_context",
    "check_sr_data",
]


def check_square_side(D: int, name: str, *, even: bool = True) -> int:
    r"""The side S of square images of D = S * S pixels (S even when ``even``); else a ``ValueError`` naming ``name``."""
    side = round(np.sqrt(D))
    if side * side != D or (even and side % 2):
        what = "square images with an even side (D = 4, 16, 36, 64, ...)" if even else "square images (D = S * S)"
        raise ValueError(f"{name} must hold {what}, got D = {D}")
    return side


def check_schedule(schedule: object) -> Schedule:
    r"""A continuous npdiff schedule."""
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be a continuous npdiff Schedule, got {type(schedule).__name__}")
    return schedule


def check_sr_context(low: object, s: object, eps: object, schedule: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The arguments of :func:`npdiff.data.lowres.sr_context`: low (B, d) square, s (B,) in [0, t_max], eps like low."""
    low = as_batch(low, "low")
    check_square_side(low.shape[1], "low", even=False)
    check_schedule(schedule)
    s = as_times(s, low.shape[0], "s", hi=float(schedule.t_max))
    eps = as_batch(eps, "eps", dim=low.shape[1])
    if eps.shape != low.shape:
        raise ValueError(f"eps must have the shape of low {low.shape}, got {eps.shape}")
    return low, s, eps


def check_sr_data(images: object, schedule: object, aug_max: object, dequantize: object) -> tuple[np.ndarray, float]:
    r"""The arguments of :class:`npdiff.data.lowres.SRData`: images (N, S*S) of even side, aug_max in [0, t_max]."""
    images = as_batch(images, "images")
    check_square_side(images.shape[1], "images")
    check_schedule(schedule)
    aug_max = real_scalar(aug_max, "aug_max", lo=0.0, hi=float(schedule.t_max))
    if not isinstance(dequantize, bool):
        raise TypeError(f"dequantize must be a bool, got {dequantize!r}")
    return images, aug_max


def as_mask_and_known(known: object, mask: object) -> tuple[np.ndarray, np.ndarray]:
    r"""Known values (N, D) and a mask of their shape as float 0/1 (bools accepted)."""
    y = as_batch(known, "known")
    try:
        arr = np.asarray(mask)
    except ValueError as exc:  # ragged lists
        raise TypeError(f"mask must be an array of 0/1 or bools, got {type(mask).__name__}") from exc
    m = arr.astype(np.float64) if arr.dtype == bool else as_float_array(arr, "mask")
    if m.shape != y.shape:
        raise ValueError(f"mask must have the shape of known {y.shape}, got {m.shape}")
    if not np.all((m == 0.0) | (m == 1.0)):
        raise ValueError(f"mask must hold only 0 and 1 (or bools), got values {np.unique(m)[:6]}")
    return y, m


def check_masked_data(data: object, dim: object) -> tuple[Callable, int]:
    r"""The arguments of :class:`npdiff.data.masked.MaskedPairs`: a sampler and D >= 2."""
    sample = getattr(data, "sample", data)
    if not callable(sample):
        raise TypeError(f"data must be a sampler sample(n, rng) or have a .sample(n, rng), got {type(data).__name__}")
    return sample, positive_int(dim, "dim", minimum=2)


def as_prompt_list(prompts: object, n: int | None = None, name: str = "prompts") -> list[str]:
    r"""One prompt string or a list of them, as a list; with ``n``, one prompt (for all) or exactly n."""
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(f"{name} must be a string or a list of strings, got {type(prompts).__name__}")
    if n is not None and len(prompts) not in (1, n):
        raise ValueError(f"{name} must be one prompt or one per sample ({n}), got {len(prompts)}")
    return list(prompts)
