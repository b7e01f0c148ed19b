r"""The denoiser protocol: the one interface between models and everything downstream.

Samplers, likelihood estimators and metrics talk to a denoiser only through

* ``eps(x, t) -> (B, D)``: the predicted noise :math:`\epsilon_\theta(x_t, t)`;
  ``x`` is (B, D), ``t`` a float or a (B,) array of continuous times in [0, 1];
* ``eps_and_divergence(x, t) -> ((B, D), (B,))``: the same plus the exact trace
  :math:`\mathrm{tr}\,\partial\epsilon_\theta / \partial x` (no Hutchinson estimate);
* ``schedule``: the continuous :class:`~npdiff.schedule.Schedule` it was trained or
  built with. Samplers and estimators take the schedule from here, so the two can
  never disagree.

The analytic oracles (:mod:`npdiff.analytic`) and the trained MLP both satisfy it.

**Conditional denoisers** add an integer ``num_classes`` C > 0 and answer ``eps(x, t, y)`` and
``eps_and_divergence(x, t, y)`` for class labels y (one int for the batch, or a (B,) array of
ints in 0..C-1); ``y=None`` (the default) is the unconditional model, so a conditional denoiser
is still a denoiser of the protocol above and every sampler and estimator runs on it
unchanged. Guidance (:mod:`npdiff.guidance`) builds a denoiser of the plain protocol out of a
conditional one. :func:`num_classes_of` reads C (0 for a denoiser without labels).
The score follows as :math:`\nabla\log q_t(x) = -\epsilon_\theta(x, t) / \sigma(t)`
(Song et al. 2021, Eq. 17 with the noise-prediction parameterization of Ho et al. 2020).

A denoiser's answers are checked where they enter npdiff, at every call: shape (B, D) and
finite, else a clear error instead of garbage propagating through a sampler. Its inputs are
checked once, at the door of the public function (:func:`check_denoiser`,
:func:`as_denoiser_batch`); the samplers' loops then call :func:`call_eps` and
:func:`call_eps_and_divergence`, which check the answers (shape and NaN) but neither the inputs
nor the denoiser again.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ._check import as_batch
from .schedule import Schedule

__all__ = ["Denoiser", "call_eps", "call_eps_and_divergence", "check_denoiser", "num_classes_of"]


@runtime_checkable
class Denoiser(Protocol):
    r"""Structural type of every denoiser (see the module docstring)."""

    schedule: Schedule

    def eps(self, x: np.ndarray, t: float | np.ndarray) -> np.ndarray: ...

    def eps_and_divergence(self, x: np.ndarray, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def check_denoiser(denoiser: object, name: str = "denoiser") -> Schedule:
    r"""Check that ``denoiser`` follows the protocol; return its schedule."""
    for attr in ("eps", "eps_and_divergence", "schedule"):
        if not hasattr(denoiser, attr):
            raise TypeError(
                f"{name} must follow the denoiser protocol (eps, eps_and_divergence, schedule); "
                f"{type(denoiser).__name__} has no {attr!r}"
            )
    schedule = denoiser.schedule
    if not isinstance(schedule, Schedule):
        raise TypeError(f"{name}.schedule must be a continuous npdiff Schedule, got {type(schedule).__name__}")
    return schedule


def num_classes_of(denoiser: object, name: str = "denoiser") -> int:
    r"""The number of classes C of a conditional denoiser (its ``num_classes``), 0 for one without labels."""
    check_denoiser(denoiser, name)
    c = getattr(denoiser, "num_classes", 0)
    if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0:
        raise TypeError(f"{name}.num_classes must be a non-negative int, got {c!r}")
    return int(c)


def as_denoiser_batch(denoiser: object, x: object, name: str = "x") -> np.ndarray:
    r"""Check ``denoiser`` (:func:`check_denoiser`) and a (B, D) batch ``x`` for it (D = ``denoiser.dim`` if set)."""
    check_denoiser(denoiser)
    return as_batch(x, name, dim=getattr(denoiser, "dim", None))


def _check_eps(eps: object, x: np.ndarray, where: str) -> np.ndarray:
    eps = np.asarray(eps)
    if eps.shape != x.shape:
        raise ValueError(f"denoiser.{where} returned shape {eps.shape}, expected {x.shape} (same as x)")
    if not np.all(np.isfinite(eps)):
        raise FloatingPointError(f"denoiser.{where} returned NaN or Inf values")
    return eps


def call_eps(denoiser: Denoiser, x: np.ndarray, t: float | np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    r"""Call ``denoiser.eps`` (with labels y, if given) and check its answer: (B, D), finite; else a clear error."""
    # the denoiser, x, t (and y) were checked once at the caller's door; only the answer is new at every call
    if y is None:
        return _check_eps(denoiser.eps(x, t), x, "eps(x, t)")
    return _check_eps(denoiser.eps(x, t, y), x, "eps(x, t, y)")


def call_eps_and_divergence(denoiser: Denoiser, x: np.ndarray, t: float | np.ndarray,
                            y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""Call ``denoiser.eps_and_divergence`` (with labels y, if given) and check both outputs: (B, D) and (B,), finite."""
    # the denoiser, x, t (and y) were checked once at the caller's door; only the answer is new at every call
    out = denoiser.eps_and_divergence(x, t) if y is None else denoiser.eps_and_divergence(x, t, y)
    if not isinstance(out, tuple) or len(out) != 2:
        raise ValueError("denoiser.eps_and_divergence(x, t) must return a pair (eps, divergence)")
    eps = _check_eps(out[0], x, "eps_and_divergence(x, t)[0]")
    div = np.asarray(out[1])
    if div.shape != (x.shape[0],):
        raise ValueError(f"denoiser.eps_and_divergence returned a divergence of shape {div.shape}, expected ({x.shape[0]},)")
    if not np.all(np.isfinite(div)):
        raise FloatingPointError("denoiser.eps_and_divergence returned NaN or Inf divergence")
    return eps, div
