r"""Checks of the diffusion's own objects: schedules, chains, and the batches and times they take.

The generic checks (arrays, batches, times, counts) live in :mod:`npdiff._check`, which knows no
diffusion object; these know the schedules, so they live beside them, importing
:mod:`npdiff.schedule` at the top (the schedules import only the generic checks). A public
function of the forward process or the chain checks everything in one line:
:func:`batch_at_times`, :func:`batch_between_times`, :func:`batch_at_steps`, :func:`chain_step`.
The checks of guidance (the label, the conditional denoiser, the classifier and its answers) follow, then
those of thresholding and SDEdit.
"""

from __future__ import annotations

import numpy as np

from ._check import (
    as_batch,
    as_batches,
    as_generator,
    as_indices,
    as_integers,
    as_labels,
    as_times,
    flow_time,
    one_of,
    positive_int,
    real_scalar,
)
from .denoiser import check_denoiser, num_classes_of
from .schedule import DiscreteSchedule, Schedule

__all__ = ["SDEDIT_SAMPLERS", "THRESHOLDS", "as_guidance_label", "as_guidance_prompt", "batch_at_steps", "batch_at_times",
           "batch_between_times", "chain_step", "check_chain", "check_classifier", "check_classifier_answer",
           "check_conditional", "check_hessian", "check_label_count", "check_laplacian", "check_prompt_count",
           "check_schedule", "check_sdedit", "check_strength", "check_threshold", "prompt_vocab_size"]


def check_schedule(schedule: object, name: str = "schedule", *, default: Schedule | None = None) -> Schedule:
    r"""Check a continuous :class:`~npdiff.schedule.Schedule`; with ``default``, None stands for it."""
    if schedule is None and default is not None:
        return default
    if not isinstance(schedule, Schedule):
        expected = "a continuous npdiff Schedule" + (" or None" if default is not None else "")
        raise TypeError(f"{name} must be {expected}, got {type(schedule).__name__}")
    return schedule


def check_chain(chain: object, name: str = "chain") -> DiscreteSchedule:
    r"""Check a discrete chain, a :class:`~npdiff.schedule.DiscreteSchedule`."""
    if not isinstance(chain, DiscreteSchedule):
        raise TypeError(f"{name} must be a DiscreteSchedule (e.g. schedule.discretize(T) or "
                        f"reverse.chain_for(schedule, T)), got {type(chain).__name__}")
    return chain


def chain_step(chain: object, i: object, name: str = "i", *, lo: int = 1) -> int:
    r"""Check a chain and one of its indices, an int in lo..T (a reverse step exists for 1..T); return the index."""
    return positive_int(i, name, minimum=lo, maximum=check_chain(chain).T)


def batch_at_times(schedule: object, t: object, **batches: object) -> tuple[np.ndarray, ...]:
    r"""Check a continuous schedule, batches of one shape (B, D) and their times t in [0, 1].

    ``t`` is a float or a (B,) array. Returns the batches in the order given, then t as (B,).
    """
    check_schedule(schedule)
    arrays = as_batches(**batches)
    return (*arrays, as_times(t, arrays[0].shape[0]))


def batch_between_times(schedule: object, s: object, t: object, *, strict: bool, **batches: object) -> tuple[np.ndarray, ...]:
    r"""As :func:`batch_at_times` with two times per point, s <= t (s < t when ``strict``).

    Returns the batches in the order given, then s and t as (B,) arrays.
    """
    *arrays, t = batch_at_times(schedule, t, **batches)
    s = as_times(s, t.shape[0], "s")
    if np.any(s >= t) if strict else np.any(s > t):
        raise ValueError(f"s must be {'<' if strict else '<='} t elementwise, got s up to {s.max()} with t down to {t.min()}")
    return (*arrays, s, t)


def batch_at_steps(chain: object, t: object, *, lo: int = 0, **batches: object) -> tuple[np.ndarray, ...]:
    r"""Check a chain, batches of one shape (B, D) and their step indices t in lo..T.

    ``t`` is an int or a (B,) array of ints. Returns the batches in the order given, then t as (B,) int64.
    """
    chain = check_chain(chain)
    arrays = as_batches(**batches)
    return (*arrays, as_indices(t, arrays[0].shape[0], lo=lo, hi=chain.T))


# -- guidance ----------------------------------------------------------------------------------------


def as_guidance_label(y: object, C: int, model: str = "the denoiser") -> np.ndarray:
    r"""The label to guide towards: one int, or one per point, in 0..C-1 (not None, not a prompt); int64, () or (B,)."""
    if y is None:
        raise ValueError("y must be the label to guide towards (an int, or one per point), got None")
    if isinstance(y, str) or (isinstance(y, (list, tuple)) and any(isinstance(p, str) for p in y)):
        raise ValueError(f"y must be a class label in 0..{C - 1}: {model} is conditioned on labels, not prompts, got {y!r}")
    return as_labels(y, None, C)


def check_prompt_count(ids: np.ndarray, x: np.ndarray) -> None:
    r"""Prompts given one per point (B, L) must match the batch x they are used with."""
    if ids.ndim == 2 and ids.shape[0] != x.shape[0]:
        raise ValueError(f"y holds {ids.shape[0]} prompts but x has {x.shape[0]} points; give one prompt or one per point")


def as_guidance_prompt(y: object, denoiser: object, vocabulary: object) -> np.ndarray:
    r"""The prompt to guide a prompt model towards, as token ids int64: (L,) for every point or (B, L), one per point.

    ``y`` is a prompt string or a list of them (tokenized by ``vocabulary``, an unknown word refused naming the
    nearest), or token ids (L,) / (B, L) padded with 0 (:func:`npdiff.data.prompts.tokenize`). The vocabulary must have
    the model's ``vocab_size``; ids must be padding (0) or words (2..V-1) and L at most the model's ``max_words``.
    """
    from .data.prompts import START, Vocabulary, tokenize  # here: npdiff.data imports the oracles, which import this

    V = prompt_vocab_size(denoiser)
    if y is None:
        raise ValueError("y must be the prompt to guide towards (a string, a list of strings, or token ids), got None; "
                         "the empty prompt is \"\"")
    if not isinstance(vocabulary, Vocabulary):
        raise TypeError(f"vocabulary must be a Vocabulary, got {type(vocabulary).__name__}")
    max_words = getattr(denoiser, "max_words", vocabulary.max_words)
    if isinstance(y, str) or (isinstance(y, (list, tuple)) and y and all(isinstance(p, str) for p in y)):
        if vocabulary.size != V:
            raise ValueError(f"vocabulary has {vocabulary.size} token ids but the denoiser reads {V}: the prompts would be "
                             "written in words the model does not know")
        ids = tokenize(y, vocabulary)  # (N, L)
        ids = ids[0] if isinstance(y, str) else ids
    else:
        arr = np.asarray(y)
        if arr.dtype == bool or arr.dtype.kind not in "iu":
            raise TypeError(f"y must be a prompt string, a list of them, or integer token ids for a prompt model, "
                            f"got {type(y).__name__}" + (f" of dtype {arr.dtype}" if arr.dtype != object else ""))
        if arr.ndim not in (1, 2) or arr.shape[-1] == 0:
            raise ValueError(f"y must be token ids of shape (L,) or (B, L) for a prompt model (a class label is not a "
                             f"prompt), got shape {arr.shape}")
        ids = as_integers(arr, "y", lo=0, hi=V - 1)
        if np.any(ids == START):
            raise ValueError(f"y must not hold the start token (id {START}): the encoder puts it in front itself")
    if ids.shape[-1] > max_words:
        raise ValueError(f"y must have at most {max_words} tokens per prompt, got {ids.shape[-1]}")
    return ids.astype(np.int64)


def check_label_count(y: np.ndarray, x: np.ndarray) -> None:
    r"""Labels given one per point must match the batch x they are used with."""
    if y.ndim == 1 and y.shape[0] != x.shape[0]:
        raise ValueError(f"y holds {y.shape[0]} labels but x has {x.shape[0]} points; give one label or one per point")


def check_conditional(denoiser: object) -> int:
    r"""A conditional denoiser: labels (``num_classes`` C > 0; returns C) or prompts (``vocab_size`` > 0; returns 0)."""
    C = num_classes_of(denoiser)
    if C == 0 and prompt_vocab_size(denoiser) == 0:
        raise ValueError(f"denoiser must be conditional (num_classes > 0, or a prompt model with a vocab_size) to be guided; "
                         f"{type(denoiser).__name__} has neither labels nor prompts")
    return C


def prompt_vocab_size(denoiser: object) -> int:
    r"""The number V of token ids a prompt model reads (its ``vocab_size``), 0 for a denoiser without prompts."""
    V = getattr(denoiser, "vocab_size", 0)
    if isinstance(V, bool) or not isinstance(V, (int, np.integer)) or V < 0:
        raise TypeError(f"denoiser.vocab_size must be a non-negative int, got {V!r}")
    return int(V)


def check_classifier(denoiser: object, classifier: object) -> int:
    r"""A denoiser and a classifier of noisy inputs for it: ``class_log_prob_grad``, C >= 1 classes, the same schedule.

    Returns C.
    """
    schedule = check_denoiser(denoiser)
    if not hasattr(classifier, "class_log_prob_grad"):
        raise TypeError(f"classifier must answer class_log_prob_grad(x, t, y); {type(classifier).__name__} does not")
    C = getattr(classifier, "num_classes", 0)
    if isinstance(C, bool) or not isinstance(C, (int, np.integer)) or C < 1:
        raise ValueError(f"classifier.num_classes must be a positive int, got {C!r}")
    if getattr(classifier, "schedule", schedule) != schedule:
        raise ValueError(f"classifier was trained for schedule {classifier.schedule!r}, the denoiser has {schedule!r}")
    return int(C)


def check_laplacian(classifier: object) -> None:
    r"""A classifier that gives the Laplacian of its log-probability, for the exact divergence of guidance."""
    if not hasattr(classifier, "class_log_prob_grad_and_laplacian"):
        raise TypeError(f"the exact divergence of classifier guidance needs the classifier's Laplacian; "
                        f"{type(classifier).__name__} has no class_log_prob_grad_and_laplacian")


def check_hessian(classifier: object) -> None:
    r"""A classifier that gives the Hessian of its log-probability times tangents, for the Jacobian of guidance."""
    if not callable(getattr(classifier, "class_log_prob_hvp", None)):
        raise TypeError(f"the Jacobian of classifier guidance needs the classifier's Hessian; "
                        f"{type(classifier).__name__} has no class_log_prob_hvp")


def check_classifier_answer(value: object, shape: tuple[int, ...], what: str) -> np.ndarray:
    r"""What the classifier returned: an array of ``shape``, finite."""
    value = np.asarray(value)
    if value.shape != shape or not np.all(np.isfinite(value)):
        raise FloatingPointError(f"the classifier's {what} returned shape {value.shape}, expected {shape} and finite")
    return value


# -- thresholding and SDEdit ---------------------------------------------------------------------

#: the thresholdings of the predicted x0 (:mod:`npdiff.thresholding`): none, static clipping, dynamic (percentile)
THRESHOLDS = ("none", "static", "dynamic")
#: the reverse samplers SDEdit can run from t0 (:mod:`npdiff.edit.sdedit`)
SDEDIT_SAMPLERS = ("ddpm", "ddim", "ode")


def check_threshold(threshold: object, percentile: object) -> tuple[str, float]:
    r"""A thresholding choice: one of :data:`THRESHOLDS`, and a percentile in the open interval (0, 1).

    The percentile is checked whatever ``threshold`` is, so a bad value is never silently ignored.

    Examples
    --------
    >>> check_threshold("dynamic", 0.9)
    ('dynamic', 0.9)
    >>> check_threshold("dynamic", 99.5)
    Traceback (most recent call last):
    ...
    ValueError: percentile must lie in (0.0, 1.0), got 99.5
    """
    return (one_of(threshold, "threshold", THRESHOLDS),
            real_scalar(percentile, "percentile", lo=0.0, hi=1.0, lo_open=True, hi_open=True))


def check_strength(strength: object, T: object) -> tuple[float, int]:
    r"""SDEdit's ``strength`` in (0, 1] and the length ``T`` >= 1 of the chain it cuts."""
    return real_scalar(strength, "strength", lo=0.0, hi=1.0, lo_open=True), positive_int(T, "T")


def check_sdedit(denoiser: object, x: object, rng: object, sampler: object, steps: object, eta: object,
                 threshold: object, percentile: object, t_min: object):
    r"""The arguments of :func:`npdiff.edit.sdedit.sdedit` beside its strength: each checked, and an option the chosen
    sampler would ignore refused (``eta`` is DDIM's, ``threshold`` the chain samplers')."""
    check_denoiser(denoiser)
    x, rng = as_batch(x, "x", dim=getattr(denoiser, "dim", None)), as_generator(rng)
    sampler = one_of(sampler, "sampler", SDEDIT_SAMPLERS)
    steps = None if steps is None else positive_int(steps, "steps")
    (threshold, percentile), eta = check_threshold(threshold, percentile), real_scalar(eta, "eta", lo=0.0, hi=1.0)
    t_min = flow_time(denoiser.schedule, t_min, "t_min", hi_open=True)
    if eta != 0.0 and sampler != "ddim":
        raise ValueError(f"eta is DDIM's (sampler='ddim'); sampler={sampler!r} has no eta, got eta={eta!r}")
    if threshold != "none" and sampler == "ode":
        raise ValueError(f"threshold applies to the ddpm and ddim samplers; the ode has no x0 step, got threshold={threshold!r}")
    return x, rng, sampler, steps, eta, threshold, percentile, t_min
