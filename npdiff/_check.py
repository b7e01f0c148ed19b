r"""Input checking shared by every public function.

Public functions call these helpers first and hand clean float64 arrays to the
math; kernels never validate. Every error names the argument, what was expected
and what was given, so a user never sees a traceback from deep inside NumPy.
"""

from __future__ import annotations

import numbers

import numpy as np


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_float_array(value: object, name: str, *, allow_nonfinite: bool = False, allow_inf: bool = False) -> np.ndarray:
    r"""Convert ``value`` to a float64 array, rejecting complex, bool, object and text.

    Integers are accepted (they convert exactly); anything that is not a real
    number raises ``TypeError``. NaN or Inf raise ``ValueError`` unless allowed
    (``allow_inf`` lets +-Inf through, an exact value for a log-density of 0, but not NaN).
    """
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a real number or array of real numbers, got {_describe(value)}")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and exotic objects
        raise TypeError(f"{name} must be a real number or array of real numbers, got {_describe(value)}") from exc
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold real numbers (int or float), got dtype {arr.dtype} ({_describe(value)})"
        )
    arr = arr.astype(np.float64, copy=False)
    if allow_inf and not allow_nonfinite and arr.size and np.any(np.isnan(arr)):
        raise ValueError(f"{name} must not be NaN, got {np.count_nonzero(np.isnan(arr))} NaN values")
    if not (allow_nonfinite or allow_inf) and arr.size and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {np.count_nonzero(~np.isfinite(arr))} NaN/Inf values")
    return arr


def as_batch(x: object, name: str = "x", *, dim: int | None = None) -> np.ndarray:
    r"""Check a batch of points and return it as a (B, D) float64 array."""
    arr = as_float_array(x, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (B, D), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns (data dimension D), got shape {arr.shape}")
    return arr


def as_times(t: object, n: int, name: str = "t", *, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    r"""Check continuous times and return them as a (n,) float64 array.

    ``t`` is a float (broadcast to every point) or an array of shape (n,).
    """
    arr = as_float_array(t, name)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    elif arr.shape != (n,):
        raise ValueError(f"{name} must be a float or an array of shape ({n},) matching the batch, got shape {arr.shape}")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got values in [{arr.min()}, {arr.max()}]")
    return arr


def as_indices(t: object, n: int, name: str = "t", *, lo: int = 0, hi: int) -> np.ndarray:
    r"""Check integer step indices of a discrete chain; return a (n,) int64 array."""
    arr = np.asarray(t)
    if arr.dtype == bool or arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must be integer step indices, got {_describe(t)}")
    arr = arr.astype(np.int64, copy=False)
    if arr.ndim == 0:
        arr = np.full(n, int(arr), dtype=np.int64)
    elif arr.shape != (n,):
        raise ValueError(f"{name} must be an int or an array of shape ({n},) matching the batch, got shape {arr.shape}")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{name} must be integers in {lo}..{hi}, got values in {arr.min()}..{arr.max()}")
    return arr


def positive_int(value: object, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    r"""Check an integer count such as T or a number of steps."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {_describe(value)}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be an integer {bound}, got {value}")
    return value


def real_scalar(value: object, name: str, *, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False) -> float:
    r"""Check a finite real scalar, optionally inside an (open or closed) interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    bad_lo = lo is not None and (value <= lo if lo_open else value < lo)
    bad_hi = hi is not None and (value >= hi if hi_open else value > hi)
    if bad_lo or bad_hi:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        raise ValueError(f"{name} must lie in {left}{lo}, {hi}{right}, got {value}")
    return value


def same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    r"""Refuse to broadcast two batches that should match exactly."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {a.shape} and {b.shape}")


def as_generator(rng: object, name: str = "rng") -> np.random.Generator:
    r"""Refuse anything but an explicit ``np.random.Generator`` (no global seeds)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator (np.random.default_rng(seed)), got {_describe(rng)}")
    return rng
