r"""The checks of the editing methods, in one place: masks, known values and the arguments every inpainter shares.

A validation module. Each public function of :mod:`npdiff.edit` checks its arguments once, here, and then
runs its loop unchecked.
"""

from __future__ import annotations

import numpy as np

from .._check import as_batch, as_float_array, as_generator, as_times, positive_int, real_scalar
from ..denoiser import Denoiser, as_denoiser_batch, check_denoiser, has_eps_vjp
from ..reverse import chain_for
from ..reverse_variance import ReverseVariance
from ..sample._checks import start
from ..schedule import DiscreteSchedule

#: the reverse variances an inpainter takes (those that need no moments of a data set)
EDIT_VARIANCES = ("large", "small")


def as_mask(mask: object, dim: int | None = None, name: str = "mask") -> np.ndarray:
    r"""A mask of known coordinates: a (D,) or (B, D) array of bools or of 0/1 numbers, returned as bool.

    ``True`` (1) marks a known coordinate, ``False`` (0) one to fill in. A mask that marks every coordinate
    known leaves nothing to fill in, and one that marks none is plain sampling: both are refused, row by row.
    """
    if isinstance(mask, (str, bytes)) or mask is None:
        raise TypeError(f"{name} must be a (D,) or (B, D) array of bools or 0/1 numbers, got {mask!r}")
    try:
        m = np.asarray(mask)
    except Exception as exc:  # ragged lists
        raise TypeError(f"{name} must be a (D,) or (B, D) array of bools or 0/1 numbers, got {type(mask).__name__}") from exc
    if m.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold bools or 0/1 numbers, got dtype {m.dtype}")
    if m.ndim not in (1, 2) or m.size == 0:
        raise ValueError(f"{name} must be a non-empty (D,) or (B, D) array, got shape {m.shape}")
    if m.dtype.kind != "b":
        if not np.all((m == 0) | (m == 1)):
            raise ValueError(f"{name} must hold only 0 and 1 (or bools), got values {np.unique(m)[:6]}")
        m = m == 1
    if dim is not None and m.shape[-1] != dim:
        raise ValueError(f"{name} must have {dim} columns (the data dimension D), got shape {m.shape}")
    rows = m.reshape(-1, m.shape[-1])
    if np.any(rows.all(axis=1)):
        raise ValueError(f"{name} marks every coordinate known in some row: nothing is left to fill in")
    if not np.any(rows, axis=1).all():
        raise ValueError(f"{name} marks no coordinate known in some row: that is unconditional sampling, not inpainting")
    return m


def as_known(known: object, mask: np.ndarray, name: str = "known") -> np.ndarray:
    r"""The known values, a (D,) or (B, D) finite array matching the mask's columns, as float64."""
    y = as_float_array(known, name)
    if y.ndim not in (1, 2) or y.size == 0:
        raise ValueError(f"{name} must be a non-empty (D,) or (B, D) array, got shape {y.shape}")
    if y.shape[-1] != mask.shape[-1]:
        raise ValueError(f"{name} and mask must have the same number of columns D, got {y.shape} and {mask.shape}")
    return y


def check_rows(x: np.ndarray, *arrays: tuple[str, np.ndarray]) -> list[np.ndarray]:
    r"""Broadcast (D,) arrays to the batch x (N, D); (B, D) arrays must have B = N. Returned as (N, D) each."""
    out = []
    for name, a in arrays:
        if a.ndim == 2 and a.shape[0] != x.shape[0]:
            raise ValueError(f"{name} of shape {a.shape} must have one row per sample ({x.shape[0]}), or be (D,)")
        out.append(np.broadcast_to(a, x.shape))
    return out


def check_inpainting(denoiser: object, known: object, mask: object, n: object, rng: object, x_T: object | None,
                     steps: object, T: object, variance: object = "large"
                     ) -> tuple[Denoiser, np.ndarray, np.ndarray, np.ndarray, np.random.Generator, DiscreteSchedule,
                                ReverseVariance]:
    r"""The arguments every inpainter shares, checked: (denoiser, known (N, D), mask (N, D) bool, x_T (N, D), rng,
    the respaced chain, its reverse variance).

    ``n`` may be None when ``known`` or ``mask`` has B rows (then N = B) or ``x_T`` is given.
    """
    dim = getattr(denoiser, "dim", None)
    m = as_mask(mask, dim)
    y = as_known(known, m)
    rows = {a.shape[0] for a in (m, y) if a.ndim == 2}
    if len(rows) > 1:
        raise ValueError(f"known and mask must have the same number of rows, got {y.shape} and {m.shape}")
    if n is None and x_T is None and rows:
        n = rows.pop()
    denoiser, x, rng = start(denoiser, n, rng, x_T)
    if x.shape[1] != m.shape[-1]:
        raise ValueError(f"mask must have {x.shape[1]} columns (the data dimension D), got shape {m.shape}")
    y, m = check_rows(x, ("known", y), ("mask", m))
    if not isinstance(variance, str) or variance not in EDIT_VARIANCES:
        raise ValueError(f"variance must be one of {', '.join(EDIT_VARIANCES)}, got {variance!r}")
    chain = chain_for(denoiser.schedule, positive_int(T, "T"), positive_int(steps, "steps"))
    return denoiser, y, m, x, rng, chain, ReverseVariance(chain, variance)


def check_jumps(steps: object, jump_length: object, resamplings: object) -> tuple[int, int, int]:
    r"""RePaint's schedule: ``steps`` >= 1, ``jump_length`` >= 1 and below ``steps`` when ``resamplings`` > 1."""
    steps = positive_int(steps, "steps")
    jump_length = positive_int(jump_length, "jump_length")
    resamplings = positive_int(resamplings, "resamplings")
    if resamplings > 1 and jump_length >= steps:
        raise ValueError(f"jump_length must be below steps ({steps}) for a jump to fit in the chain, got {jump_length}")
    return steps, jump_length, resamplings


def as_scale(scale: object, name: str) -> float:
    r"""A guidance scale or weight: a finite real >= 0."""
    return real_scalar(scale, name, lo=0.0)


def check_vjp(denoiser: object) -> None:
    r"""The denoiser must answer the optional ``eps_vjp`` (:func:`npdiff.denoiser.has_eps_vjp`)."""
    if not has_eps_vjp(denoiser):
        raise TypeError(f"denoiser ({type(denoiser).__name__}) has no eps_vjp, the input-gradient this guidance needs")


def check_noisy(schedule: object, t: np.ndarray) -> None:
    r"""Times where :math:`\sigma(t) > 0`: at t = 0 the prediction of x_0 is x itself and has no gradient to follow."""
    if np.any(schedule.sigma(t) == 0.0):
        raise ValueError(f"t must be above 0 (where sigma(t) > 0), got values in [{np.min(t)}, {np.max(t)}]")


def check_conditional(dataset: object, a: object, lo: object, hi: object, points: object, known: object
                      ) -> tuple[float, float, float, int, int]:
    r"""The arguments of :func:`npdiff.edit.conditional.exact_conditional`: (a, lo, hi, points, known)."""
    if not callable(getattr(dataset, "log_prob", None)):
        raise TypeError(f"dataset must have a log_prob(x) method on (N, 2) points, got {type(dataset).__name__}")
    a, lo, hi = real_scalar(a, "a"), real_scalar(lo, "lo"), real_scalar(hi, "hi")
    if not lo < hi:
        raise ValueError(f"lo must be below hi, got lo={lo} and hi={hi}")
    points = positive_int(points, "points", minimum=3)
    if isinstance(known, bool) or not isinstance(known, (int, np.integer)) or known not in (0, 1):
        raise ValueError(f"known must be 0 or 1 (the known coordinate of a 2D point), got {known!r}")
    return a, lo, hi, points, int(known)


def check_data_fit(denoiser: object, x: object, t: object, known: object, mask: object
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""The arguments of :func:`npdiff.edit.guided.data_fit_gradient`: x (B, D), t (B,) in (0, t_max], known and
    mask broadcast to (B, D), and a denoiser with ``eps_vjp``."""
    x = as_denoiser_batch(denoiser, x)
    t = as_times(t, x.shape[0], lo=0.0, hi=denoiser.schedule.t_max)
    check_noisy(denoiser.schedule, t)
    m = as_mask(mask, x.shape[1])
    y, m = check_rows(x, ("known", as_known(known, m)), ("mask", m))
    check_vjp(denoiser)
    return x, t, y, m


# -- the cascade and the mask-conditioned model ---------------------------------------------------------
def check_context_model(model: object, context: object) -> np.ndarray:
    r"""A context-conditioned denoiser (with an int ``context_dim`` C) and its contexts (B, C)."""
    check_denoiser(model, "model")
    C = getattr(model, "context_dim", None)
    if not isinstance(C, int):
        raise TypeError(f"model must be a context-conditioned denoiser (with .context_dim), got {type(model).__name__}")
    return as_batch(context, "context", dim=C)


def check_context_rows(x: object, dim: int | None, rows: int) -> np.ndarray:
    r"""Points x (B, D) with one row per context (B = ``rows``)."""
    x = as_batch(x, "x", dim=dim)
    if x.shape[0] != rows:
        raise ValueError(f"x must have one row per context ({rows} rows), got shape {x.shape}")
    return x


def check_sr(sr: object) -> int:
    r"""A super-resolution model: ``context_dim`` = 4 d + 1 and ``dim`` = 4 d; returns d, the low-resolution pixels."""
    check_denoiser(sr, "sr")
    C = getattr(sr, "context_dim", None)
    if not isinstance(C, int) or C < 5 or (C - 1) % 4:
        raise TypeError(f"sr must be a super-resolution model (a context-conditioned denoiser whose context_dim is "
                        f"4 d + 1 for d low-resolution pixels), got {type(sr).__name__} with context_dim {C!r}")
    d = (C - 1) // 4
    if getattr(sr, "dim", 4 * d) != 4 * d:
        raise ValueError(f"sr must model images of 4 d = {4 * d} pixels for its context of {C}, got dim {sr.dim}")
    return d


def check_upsample(sr: object, low_res: object, aug_level: object, steps: object) -> tuple[np.ndarray, float, int]:
    r"""The arguments of :func:`npdiff.edit.cascade.upsample`: low_res (N, d) (one (d,) image accepted)."""
    d = check_sr(sr)
    low = as_float_array(low_res, "low_res")
    low = as_batch(low[None] if low.ndim == 1 else low, "low_res")
    if low.shape[1] != d:
        raise ValueError(f"low_res must have {d} pixels per image (the size sr was trained to up-sample), "
                         f"got shape {np.shape(low_res)}")
    aug_level = real_scalar(aug_level, "aug_level", lo=0.0, hi=float(sr.schedule.t_max))
    return low, aug_level, positive_int(steps, "steps", maximum=1000)


def check_cascade(base: object, sr: object, n: object, aug_level: object, steps: object, sr_steps: object
                  ) -> tuple[int, float, int, int]:
    r"""The arguments of :func:`npdiff.edit.cascade.cascade_sample`: (n, aug_level, steps, sr_steps)."""
    d = check_sr(sr)
    check_denoiser(base, "base")
    if getattr(base, "dim", d) != d:
        raise ValueError(f"base must model the {d}-pixel images sr up-samples, got a base of dim {base.dim}")
    n = positive_int(n, "n")
    aug_level = real_scalar(aug_level, "aug_level", lo=0.0, hi=float(sr.schedule.t_max))
    steps = positive_int(steps, "steps", maximum=1000)
    sr_steps = steps if sr_steps is None else positive_int(sr_steps, "sr_steps", maximum=1000)
    return n, aug_level, steps, sr_steps


def check_mask_model(model: object) -> Denoiser:
    r"""A mask-conditioned denoiser: ``context_dim`` = 2 ``dim`` (the known values and the mask); returned as is."""
    check_denoiser(model, "model")
    D, C = getattr(model, "dim", None), getattr(model, "context_dim", None)
    if not isinstance(D, int) or C != 2 * D:
        raise TypeError(f"model must be a mask-conditioned denoiser (context_dim = 2 * dim: the known values and the "
                        f"mask), got {type(model).__name__} with dim {D!r} and context_dim {C!r}")
    return model  # type: ignore[return-value]


def check_shape(shape: object, name: str = "shape") -> tuple[int, int]:
    r"""An image shape (H, W) of two even ints >= 2 (the named masks halve both sides)."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise TypeError(f"{name} must be a pair (H, W) of ints, got {shape!r}")
    h, w = (positive_int(s, name, minimum=2) for s in shape)
    if h % 2 or w % 2:
        raise ValueError(f"{name} must have even sides (the named masks halve them), got {shape!r}")
    return h, w


def check_image_mask(name: object, rng: object, shape: object, n: object
                     ) -> tuple[str, np.random.Generator | None, tuple[int, int], int]:
    r"""The arguments of :func:`npdiff.edit.mask.image_mask`: (name, rng, (H, W), rows)."""
    from .mask import IMAGE_MASKS

    if not isinstance(name, str) or name not in IMAGE_MASKS:
        raise ValueError(f"mask must be one of {', '.join(IMAGE_MASKS)}, got {name!r}")
    if name == "random":  # the only mask that draws: an rng (or a seed) is required there
        rng = as_generator(rng, "rng (the draw of mask 'random')")
    rows = 1 if n is None else positive_int(n, "n")
    return name, rng, check_shape(shape), rows


def check_kernel(sigma: object, radius: object) -> tuple[float, int]:
    r"""The arguments of :func:`npdiff.edit.coarse.gaussian_kernel`: sigma a finite real > 0, radius an int >= 1."""
    return real_scalar(sigma, "sigma", lo=0.0, lo_open=True), positive_int(radius, "radius")


def check_coarse(x: object, kind: object, shape: object, kinds: tuple[str, ...]
                 ) -> tuple[np.ndarray, str, tuple[int, int]]:
    r"""The arguments of :func:`npdiff.edit.coarse.coarse_digits`: x (N, H*W) in [-1, 1], a kind of ``kinds``, (H, W)."""
    if not isinstance(kind, str) or kind not in kinds:
        raise ValueError(f"kind must be one of {', '.join(kinds)}, got {kind!r}")
    h, w = check_shape(shape)
    x = as_batch(x, "x", dim=h * w)
    if np.any(np.abs(x) > 1.0):
        raise ValueError(f"x must hold images in [-1, 1], got values in [{x.min():.4g}, {x.max():.4g}]")
    return x, kind, (h, w)
