r"""Input checking shared by every public function: one helper per kind of argument.

Public functions call these helpers first, in a line or two, and hand clean float64
arrays to the math; kernels and the formula functions that loops call on checked arrays
never validate. Every error names the argument, what was expected and what was given, so
a user never sees a traceback from deep inside NumPy.

The kinds: real arrays (:func:`as_float_array`, :func:`as_float_arrays`), batches of points
(:func:`as_batch`, :func:`as_batches`), times, chain indices and integer levels
(:func:`as_times`, :func:`as_indices`, :func:`as_integers`), class labels (:func:`as_labels`), counts, scalars and options
(:func:`positive_int`, :func:`real_scalar`, :func:`check_tolerances`, :func:`one_of`), noise
rates (:func:`as_betas`), random generators or seeds (:func:`as_generator`) and the times of the
probability flow (:func:`flow_time`). This module knows no diffusion object: the checks of
schedules and chains, and of the batches and times the forward process takes with them, live in
:mod:`npdiff._validate` (which imports the schedules); the denoiser protocol's own checks live
beside it, in :mod:`npdiff.denoiser`.
"""

from __future__ import annotations

import numbers
from typing import Any

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


def as_float_arrays(*, like: str | None = None, min_ndim: int = 0, **arrays: object) -> tuple[np.ndarray, ...]:
    r"""Convert several named arrays (:func:`as_float_array`) that must broadcast together.

    With ``like``, every array must broadcast to the shape of the array of that name (which
    needs at least ``min_ndim`` axes), so that none silently enlarges the result. Returns
    the arrays in the order given.
    """
    out = {name: as_float_array(value, name) for name, value in arrays.items()}
    shapes = {name: a.shape for name, a in out.items()}
    try:
        shape = np.broadcast_shapes(*shapes.values())
    except ValueError:
        raise ValueError("shapes do not broadcast: " + ", ".join(f"{k} {v}" for k, v in shapes.items())) from None
    if like is not None and (shape != shapes[like] or len(shape) < min_ndim):
        others = " and ".join(f"{k} {v}" for k, v in shapes.items() if k != like)
        axes = f" with at least {min_ndim} axes" if len(shapes[like]) < min_ndim else ""
        raise ValueError(f"{others} must broadcast to {like}'s shape {shapes[like]}{axes}")
    return tuple(out.values())


class InputOverflowError(ValueError, FloatingPointError):
    r"""A denoiser overflowed, or would, on its input x: a bad argument (ValueError) and, for a solver that
    runs into it mid-flight, a diverged flow (FloatingPointError)."""


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


def as_batches(*, dim: int | None = None, **batches: object) -> tuple[np.ndarray, ...]:
    r"""Check batches that must share one shape (B, D) (:func:`as_batch`); return them in the order given."""
    out = {name: as_batch(x, name, dim=dim) for name, x in batches.items()}
    first, *rest = out
    for name in rest:
        same_shape(out[first], out[name], first, name)
    return tuple(out.values())


def as_times(t: object, n: int | None = None, name: str = "t", *, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    r"""Check continuous times in [lo, hi] and return them as a float64 array.

    For a batch of ``n`` points ``t`` is a float (broadcast to every point) or an array of
    shape (n,), returned as (n,); with ``n = None`` any shape is kept (the schedules' methods).
    """
    if n is None and type(t) in (float, np.float64) and lo <= t <= hi:  # a solver's scalar time: nothing to convert
        return np.float64(t)
    arr = as_float_array(t, name)
    if n is None:
        pass
    elif arr.ndim == 0:
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
    return as_integers(arr, name, lo=lo, hi=hi)


def as_integers(value: object, name: str, *, lo: int, hi: int) -> np.ndarray:
    r"""Check integers in lo..hi, of any shape (ints, or floats with integral values); return them as int64."""
    arr = as_float_array(value, name)
    if arr.size and (arr.min() < lo or arr.max() > hi or np.any(arr != np.round(arr))):
        raise ValueError(f"{name} must be integers in {lo}..{hi}, got values in [{arr.min():g}, {arr.max():g}]")
    return arr.astype(np.int64)


def as_labels(y: object, n: int | None, num_classes: int, name: str = "y") -> np.ndarray | None:
    r"""Class labels of a conditional model: None (unconditional), one int for the batch, or one per point.

    ``num_classes`` is the number C of classes (0: the model is unconditional, so only None is
    accepted). Returns None, or the labels as int64 in 0..C-1: shape (n,) for a batch of n
    points (an int is broadcast), or with ``n = None`` shape () for an int and (m,) for an array.
    """
    if y is None:
        return None
    if num_classes == 0:
        raise ValueError(f"{name} must be None: this model has no labels (it is unconditional), got {_describe(y)}")
    arr = np.asarray(y) if not isinstance(y, (str, bytes)) else np.asarray(y, dtype=object)
    if arr.dtype == bool or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be integer class labels in 0..{num_classes - 1} or None, got {_describe(y)}")
    if arr.ndim > 1 or (n is not None and arr.ndim == 1 and arr.shape != (n,)):
        want = f"an int or an array of shape ({n},) matching the batch" if n is not None else "an int or a 1-D array"
        raise ValueError(f"{name} must be {want}, got shape {arr.shape}")
    labels = as_integers(arr, name, lo=0, hi=num_classes - 1)
    return np.full(n, int(labels)) if (n is not None and labels.ndim == 0) else labels


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


def one_of(value: object, name: str, choices: tuple[str, ...]) -> str:
    r"""Check a string option against its choices."""
    if not isinstance(value, str) or value not in choices:  # an array would make `in` elementwise
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_tolerances(rtol: object, atol: object) -> tuple[float, float]:
    r"""Tolerances of an adaptive ODE solver: rtol in [1e-13, 1), atol in [1e-14, 1].

    Below ~1e-14 a tolerance is finer than float64 resolves (RK45 then shrinks its step until the
    error estimate overflows, or SciPy silently raises rtol to 2.2e-14); rtol >= 1 or atol > 1 lets
    it take one giant step: a plausible-looking wrong answer.
    """
    return real_scalar(rtol, "rtol", lo=1e-13, hi=1.0, hi_open=True), real_scalar(atol, "atol", lo=1e-14, hi=1.0)


def as_betas(value: object, name: str = "betas", *, scalar: bool = False) -> np.ndarray:
    r"""Check noise rates :math:`\beta` in (0, 1) that float64 tells from 0 (:math:`1 - \beta < 1`).

    A 1-D array of length T >= 1 (the betas of t = 1..T), or with ``scalar`` a single real number
    (returned as a 0-d float64).
    """
    if scalar:
        b = np.float64(real_scalar(value, name, lo=0.0, hi=1.0, lo_open=True, hi_open=True))
    else:
        b = as_float_array(value, name)
        if b.ndim != 1 or b.size < 1:
            raise ValueError(f"{name} must be a 1-D array of length T >= 1 (for t = 1..T), got shape {b.shape}")
        if b.min() <= 0.0 or b.max() >= 1.0:
            raise ValueError(f"{name} must lie in (0, 1), got values in [{b.min()}, {b.max()}]")
    if np.any(1.0 - b == 1.0):  # alpha_t would round to 1: the step adds no noise and beta_tilde is 0
        raise ValueError(f"{name} must exceed float64 resolution (1 - beta < 1, i.e. beta >= 1.2e-16), got min {b.min()}")
    return b


def as_chain_times(times: object, T: int, name: str = "times") -> np.ndarray:
    r"""Check the times of a chain's indices 0..T: shape (T + 1,), strictly increasing from 0 to at most 1."""
    tt = as_float_array(times, name)
    if tt.shape != (T + 1,) or tt[0] != 0.0 or np.any(np.diff(tt) <= 0) or tt[-1] > 1.0:
        raise ValueError(f"{name} must be an increasing array of shape ({T + 1},) from 0 to at most 1, got {tt!r}")
    return tt


def as_kept_steps(steps: object, T: int, name: str = "steps") -> np.ndarray:
    r"""Check the kept indices of a respaced chain: strictly increasing integers in 1..T (0 may lead);
    return them with 0 in front, (K + 1,) int."""
    kept = np.asarray(steps)
    if kept.ndim != 1 or kept.size == 0 or kept.dtype.kind not in "iu":
        raise ValueError(f"{name} must be an int or a 1-D list of integer indices, got {steps!r}")
    if kept[0] != 0:
        kept = np.concatenate([[0], kept])
    if np.any(np.diff(kept) <= 0) or kept[-1] > T:
        raise ValueError(f"{name} must be strictly increasing indices in 1..{T}, got {steps!r}")
    return kept


def as_full_gaussian(x: object, mean: object, cov: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Check points x (B, D) and a full Gaussian's mean (D,) and symmetric positive-definite
    cov (D, D); return x, mean and the Cholesky factor L of cov (L L^T = cov)."""
    x, mean, cov = as_batch(x, "x"), as_float_array(mean, "mean"), as_float_array(cov, "cov")
    D = x.shape[1]
    if mean.shape != (D,):
        raise ValueError(f"mean must have shape ({D},) to match x of shape {x.shape}, got {mean.shape}")
    if cov.shape != (D, D):
        raise ValueError(f"cov must have shape ({D}, {D}) to match x of shape {x.shape}, got {cov.shape}")
    if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-12):
        raise ValueError("cov must be symmetric")
    try:
        return x, mean, np.linalg.cholesky(cov)  # (B, D), (D,), (D, D)
    except np.linalg.LinAlgError:
        raise ValueError(f"cov must be positive definite; eigenvalues are {np.linalg.eigvalsh(cov)}") from None


def as_gaussian_moments(mean: object, cov: object, name: str, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Check a Gaussian's mean_NAME (F,) and symmetric positive semi-definite cov_NAME (F, F); F = dim if given."""
    mean = as_float_array(mean, f"mean_{name}")
    if mean.ndim != 1 or mean.size == 0 or (dim is not None and mean.size != dim):
        want = f"({dim},)" if dim is not None else "(F,)"
        raise ValueError(f"mean_{name} must be a vector of shape {want}, got shape {mean.shape}")
    cov = as_float_array(cov, f"cov_{name}")
    F = mean.size
    if cov.shape != (F, F):
        raise ValueError(f"cov_{name} must have shape ({F}, {F}) to match mean_{name}, got shape {cov.shape}")
    if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-12 * max(1.0, float(np.abs(cov).max()))):
        raise ValueError(f"cov_{name} must be symmetric, got a largest asymmetry of {np.abs(cov - cov.T).max():.3g}")
    lowest = float(np.linalg.eigvalsh(cov)[0])
    if lowest < -1e-8 * max(1.0, float(np.trace(cov))):
        raise ValueError(f"cov_{name} must be positive semi-definite, got a smallest eigenvalue of {lowest:.3g}")
    return mean, cov


def as_like(value: object, like: np.ndarray, name: str) -> np.ndarray:
    r"""Check an array that must have exactly ``like``'s shape and dtype (no conversion: it is written in place)."""
    if not isinstance(value, np.ndarray) or value.shape != like.shape or value.dtype != like.dtype:
        raise ValueError(f"{name} must be a {like.dtype} array of shape {like.shape}, got "
                         f"{getattr(value, 'dtype', type(value).__name__)} {getattr(value, 'shape', '')}")
    return value


def as_prediction_batch(pred: object, xt: object, alpha_bar: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""A prediction and its x_t, both (B, D), and alpha_bar in (0, 1) broadcasting against them without enlarging them."""
    pred = as_float_array(pred, "pred")
    xt = as_float_array(xt, "xt")
    same_shape(pred, xt, "pred", "xt")
    ab = as_float_array(alpha_bar, "alpha_bar")
    if ab.size and (ab.min() <= 0.0 or ab.max() >= 1.0):
        raise ValueError(
            f"alpha_bar must lie in (0, 1) for the conversions to be defined, got values in [{ab.min()}, {ab.max()}]"
        )
    try:
        np.broadcast_shapes(ab.shape, xt.shape)
    except ValueError:
        raise ValueError(
            f"alpha_bar of shape {ab.shape} does not broadcast against xt of shape {xt.shape}; use shape (B, 1)"
        ) from None
    if np.broadcast_shapes(ab.shape, xt.shape) != xt.shape:
        raise ValueError(f"alpha_bar of shape {ab.shape} would enlarge xt of shape {xt.shape}; use shape (B, 1)")
    return pred, xt, ab


def same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    r"""Refuse to broadcast two batches that should match exactly."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {a.shape} and {b.shape}")


def as_generator(rng: object, name: str = "rng") -> np.random.Generator:
    r"""An explicit source of randomness: a ``np.random.Generator``, or an int seed for ``np.random.default_rng(seed)``.

    A Generator is returned as it is (and advanced by the caller's draws); a seed >= 0 makes a
    fresh one, so the same seed gives the same draws. Anything else (None, a bool, NumPy's legacy
    ``RandomState``) raises ``TypeError``: there is no global seed.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if int(rng) < 0:
            raise ValueError(f"{name} as a seed must be an int >= 0, got {int(rng)}")
        return np.random.default_rng(int(rng))
    raise TypeError(f"{name} must be a numpy.random.Generator or an int seed (np.random.default_rng(seed)), "
                    f"got {_describe(rng)}")


def flow_time(schedule: Any, t: object, name: str, *, hi_open: bool = False) -> float:
    r"""A time of the probability flow: in (0, ``schedule.t_max``], where :math:`\sigma(t) > 0` (the flow divides by it)."""
    t = real_scalar(t, name, lo=0.0, hi=schedule.t_max, lo_open=True, hi_open=hi_open)
    if float(schedule.sigma(t)) == 0.0:  # e.g. t = 5e-324
        raise ValueError(f"{name} = {t!r} is so small that sigma({name}) rounds to 0; use {name} >= 1e-12")
    return t


def as_flat_params(flat: object, n_params: int, name: str = "params") -> np.ndarray:
    r"""A network's weights: a finite float32 or float64 vector of length ``n_params``, returned as is."""
    if not isinstance(flat, np.ndarray) or flat.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32 or float64 numpy array, got {type(flat).__name__}")
    if flat.shape != (n_params,):
        raise ValueError(f"{name} must have shape ({n_params},) for this config, got {flat.shape}")
    if not np.all(np.isfinite(flat)):
        raise ValueError(f"{name} must be finite, got {np.count_nonzero(~np.isfinite(flat))} NaN or Inf entries")
    return flat


def as_samples_1d(x: object, name: str) -> np.ndarray:
    r"""A non-empty 1-D array of finite samples, as float64."""
    arr = as_float_array(x, name)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of samples, got shape {arr.shape}")
    return arr


def as_cdf_table(grid: object, cdf: object) -> tuple[np.ndarray, np.ndarray]:
    r"""A CDF tabulated on a grid: ``grid`` (G,) strictly increasing, G >= 2; ``cdf`` (G,) non-decreasing from 0 to 1."""
    g, F = as_float_array(grid, "grid"), as_float_array(cdf, "cdf")
    if g.ndim != 1 or g.size < 2 or np.any(np.diff(g) <= 0.0):
        raise ValueError(f"grid must be a strictly increasing 1-D array of at least 2 points, got shape {g.shape}")
    if F.shape != g.shape:
        raise ValueError(f"cdf must have the shape of grid {g.shape}, got {F.shape}")
    if F[0] != 0.0 or F[-1] != 1.0 or np.any(np.diff(F) < 0.0):
        raise ValueError(f"cdf must rise from cdf[0] = 0 to cdf[-1] = 1 without decreasing, got ends {F[0]} and {F[-1]}")
    return g, F
