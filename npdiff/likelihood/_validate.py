r"""Checks of the likelihoods' arguments and of what a sampler map returns, so the estimators read as math."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .._check import as_batch, one_of, positive_int, real_scalar
from .._validate import check_schedule
from ..gaussian import data_to_levels
from ..sample.grids import check_grid

__all__ = [
    "DEQUANTIZATIONS",
    "as_level_batch",
    "as_log_q_values",
    "check_bound_grid",
    "check_dequantization",
    "check_draws_scale",
    "check_fast_sampler_options",
    "check_log_q",
    "check_nonsingular",
    "check_one_time",
    "check_sampler",
    "check_sampler_output",
    "check_tangent_rows",
]


#: the noises that dequantize K-level data (:mod:`npdiff.likelihood.dequantize`)
DEQUANTIZATIONS = ("uniform", "truncated_normal")

#: a grid read back from text starts at the schedule's t_max to this relative tolerance (JSON keeps 17 digits)
_T_MAX_RTOL = 1e-12


def check_dequantization(dequantization: object, scale: object = None, *, required: bool = False) -> tuple[str, float | None]:
    r"""A dequantization (one of :data:`~npdiff.likelihood.DEQUANTIZATIONS`) and its scale: None, or a real > 0
    for ``"truncated_normal"`` (``required``: not None for it).

    Examples
    --------
    >>> check_dequantization("truncated_normal", 0.05)
    ('truncated_normal', 0.05)
    """
    dequantization = one_of(dequantization, "dequantization", DEQUANTIZATIONS)
    if scale is not None:
        scale = real_scalar(scale, "scale", lo=0.0, lo_open=True)
        if dequantization == "uniform":
            raise ValueError(f"scale is the spread of the truncated normal; the uniform dequantization has none, got "
                             f"scale={scale!r}")
    elif required and dequantization == "truncated_normal":
        raise ValueError("scale is required by the truncated normal (truncated_normal_scale gives i-DODE's), got None")
    return dequantization, scale


def check_draws_scale(draws: object, dequantization: object, scale: object) -> tuple[int, str, float | None]:
    r"""The draws S >= 1 of an importance-weighted bound, its dequantization and scale (:func:`check_dequantization`)."""
    return (positive_int(draws, "draws"), *check_dequantization(dequantization, scale))


def check_bound_grid(schedule: object, times: object, steps: object) -> np.ndarray:
    r"""A bound's chain through ``times``: no ``steps`` beside them, a decreasing grid from ``schedule.t_max`` to a
    :math:`t_{\min}` where :math:`\bar\alpha < 1` in float64; returns the grid (float64, its first time t_max)."""
    if steps is not None:
        raise ValueError(f"steps and times both say where the chain's steps fall: give one, got steps={steps!r}")
    schedule = check_schedule(schedule)
    grid = check_grid(schedule, times, "times", min_steps=1)  # (K + 1,) from t_max down to t_min
    if abs(grid[0] - schedule.t_max) > _T_MAX_RTOL * schedule.t_max:
        raise ValueError(f"times must start at the schedule's t_max = {schedule.t_max!r} (the bound's prior term sits "
                         f"there), got {grid[0]!r}")
    if schedule.log_alpha_bar(grid[-1]) == 0.0:
        raise ValueError(f"times end at t_min = {grid[-1]!r}, where alpha_bar rounds to 1 in float64: the decoder's "
                         "step would add no noise; end the grid at a larger t_min")
    grid[0] = schedule.t_max
    return grid


def as_level_batch(x: object, K: object, name: str = "x") -> tuple[np.ndarray, int]:
    r"""K-level data: a (B, D) batch on the levels :math:`2v/(K-1) - 1` and K >= 2; returns (x, K)."""
    x, K = as_batch(x, name), positive_int(K, "K", minimum=2)
    data_to_levels(x, K, name=name)
    return x, K


def check_sampler(sampler: object) -> Callable[[np.ndarray], np.ndarray]:
    r"""A deterministic sampler: a callable mapping noise z (N, D) to samples (N, D)."""
    if not callable(sampler):
        raise TypeError(f"sampler must be a callable mapping noise z (N, D) to samples (N, D), got {type(sampler).__name__}")
    return sampler


def check_sampler_output(out: object, z: np.ndarray, name: str) -> np.ndarray:
    r"""What the sampler returned for z: an array of z's shape, finite; as float64."""
    if not isinstance(out, np.ndarray) or out.shape != z.shape:
        raise ValueError(f"{name} must return an array of the shape of its input {z.shape}, "
                         f"got {type(out).__name__} of shape {getattr(out, 'shape', None)}")
    if not np.all(np.isfinite(out)):
        raise FloatingPointError(f"{name} returned NaN or Inf values")
    return out.astype(np.float64, copy=False)


def check_nonsingular(sign: np.ndarray) -> None:
    r"""The signs of the Jacobians' determinants: none 0 (else the sampler's density is undefined there)."""
    if np.any(sign == 0.0):
        raise FloatingPointError(f"the sampler's Jacobian is singular at {int(np.sum(sign == 0.0))} point(s): "
                                 "it maps a neighbourhood onto a lower-dimensional set, so p_F has no density there")


def check_log_q(log_q: object, z: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    r"""The true log-density, a callable, for a KL over at least 2 points z (for a standard error)."""
    if z.shape[0] < 2:
        raise ValueError(f"z must hold at least 2 points for a standard error, got shape {z.shape}")
    if not callable(log_q):
        raise TypeError(f"log_q must be a callable returning the true log-density (N,) of (N, D) points, "
                        f"got {type(log_q).__name__}")
    return log_q


def as_log_q_values(lq: object, n: int) -> np.ndarray:
    r"""What ``log_q`` returned: (n,) log-densities, finite or -inf (a zero density), as float64."""
    lq = np.asarray(lq, dtype=np.float64)
    if lq.shape != (n,) or np.any(np.isnan(lq)) or np.any(lq == np.inf):
        raise ValueError(f"log_q must return ({n},) log-densities, finite or -inf, "
                         f"got shape {lq.shape} with {int(np.sum(~np.isfinite(lq)))} non-finite values")
    return lq


def check_fast_sampler_options(options: dict) -> dict:
    r"""Keyword arguments of ``fast_sample`` for a sampler map: all but those the map itself fixes."""
    fixed = sorted(set(options) & {"n", "rng", "x_T", "record"})
    if fixed:
        raise TypeError(f"a sampler map takes its noise z at every call; it cannot take {fixed}")
    return dict(options)


def check_one_time(t: object) -> float:
    r"""The time of a tangent-carrying call: one for the whole batch (a float, or an array of equal values)."""
    t = np.asarray(t, dtype=np.float64)
    if t.size == 0 or np.any(t != t.flat[0]):
        raise ValueError("a TangentDenoiser needs one time for the whole batch (a fixed-grid solver's step), "
                         f"got times from {t.min() if t.size else None} to {t.max() if t.size else None}")
    return float(t.flat[0])


def check_tangent_rows(rows: int, n_tangents: int) -> int:
    r"""A batch of (1 + K) N rows: N points and K tangents of each; returns N."""
    if rows % (1 + n_tangents):
        raise ValueError(f"a batch with {n_tangents} tangent rows per point must have a multiple of {1 + n_tangents} "
                         f"rows, got {rows}")
    return rows // (1 + n_tangents)
