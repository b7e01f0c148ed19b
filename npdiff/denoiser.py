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

**Optional: derivatives of eps with respect to x** (t and y held fixed), with
:math:`J = \partial\epsilon_\theta(x_b, t_b)/\partial x_b` the (D, D) Jacobian at each point:

* ``eps_jvp(x, t, v) -> ((B, D), (B, K, D))``: eps and the Jacobian-vector products
  :math:`J v_{b,k}` of K tangents per point, ``v`` (B, K, D) (K = D unit tangents give the whole
  Jacobian, as a sampler's exact Jacobian needs: :mod:`npdiff.likelihood.sampler_density`);
* ``eps_vjp(x, t, u) -> ((B, D), (B, D))``: eps and the vector-Jacobian product
  :math:`u_b^\top J` of one cotangent per point, ``u`` (B, D).

The oracles compute them in closed form (:math:`J = -\sigma\nabla^2\log q_t`, symmetric, so the
two agree), the MLP by its hand-written forward and backward modes, guided denoisers as the same
linear combination of their parts'. A denoiser that has the method but cannot answer it (a guided
denoiser whose parts lack it) sets ``has_eps_jvp = False`` (``has_eps_vjp = False``);
:func:`has_eps_jvp` and :func:`has_eps_vjp` ask, and :func:`call_eps_jvp` and :func:`call_eps_vjp`
call and check (a denoiser without the method: a ``TypeError``).

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

__all__ = ["Denoiser", "as_tangents", "call_eps", "call_eps_and_divergence", "call_eps_and_jacobian_diagonal", "call_eps_jvp",
           "call_eps_vjp", "check_denoiser", "has_eps_jvp", "has_eps_vjp", "num_classes_of"]


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


def as_tangents(v: object, x: np.ndarray, name: str = "v", *, one: bool = False) -> np.ndarray:
    r"""Tangents for the points x (B, D): (B, D) (one per point) or (B, K, D), finite; returned as (B, K, D) float64.

    ``one=True`` accepts only (B, D) (a cotangent per point), returned as (B, 1, D).
    """
    v = np.asarray(v)
    if v.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real array, got dtype {v.dtype}")
    B, D = x.shape
    ok = v.shape == (B, D) or (not one and v.ndim == 3 and v.shape[0] == B and v.shape[2] == D and v.shape[1] >= 1)
    if not ok:
        want = f"({B}, {D})" if one else f"({B}, {D}) or ({B}, K, {D})"
        raise ValueError(f"{name} must have shape {want} to match x, got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite, got {np.count_nonzero(~np.isfinite(v))} NaN or Inf entries")
    v = v.astype(np.float64, copy=False)
    return v[:, None, :] if v.ndim == 2 else v


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


def has_eps_jvp(denoiser: object) -> bool:
    r"""Whether ``denoiser`` answers the optional ``eps_jvp(x, t, v)`` (module docstring)."""
    return callable(getattr(denoiser, "eps_jvp", None)) and bool(getattr(denoiser, "has_eps_jvp", True))


def has_eps_vjp(denoiser: object) -> bool:
    r"""Whether ``denoiser`` answers the optional ``eps_vjp(x, t, u)`` (module docstring)."""
    return callable(getattr(denoiser, "eps_vjp", None)) and bool(getattr(denoiser, "has_eps_vjp", True))


def _check_derivative(out: object, x: np.ndarray, shape: tuple, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(out, tuple) or len(out) != 2:
        raise ValueError(f"denoiser.{where} must return a pair (eps, derivative)")
    eps = _check_eps(out[0], x, where + "[0]")
    d = np.asarray(out[1])
    if d.shape != shape:
        raise ValueError(f"denoiser.{where} returned a derivative of shape {d.shape}, expected {shape}")
    if not np.all(np.isfinite(d)):
        raise FloatingPointError(f"denoiser.{where} returned NaN or Inf derivatives")
    return eps, d


def call_eps_jvp(denoiser: Denoiser, x: np.ndarray, t: float | np.ndarray, v: np.ndarray,
                 y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""``denoiser.eps_jvp``: eps (B, D) and :math:`(\partial\epsilon/\partial x)\,v`, checked.

    Parameters
    ----------
    denoiser : a denoiser with :func:`has_eps_jvp`.
    x : (B, D) points, checked by the caller.
    t : float or (B,) times.
    v : (B, D) one tangent per point, or (B, K, D) K tangents per point.
    y : None, or labels of a conditional denoiser.

    Returns
    -------
    eps : (B, D). jvp : the shape of ``v``, the products :math:`J_b v_{b(,k)}`.
    """
    if not has_eps_jvp(denoiser):
        raise TypeError(f"{type(denoiser).__name__} has no eps_jvp (the optional Jacobian-vector product of eps)")
    v = np.asarray(v)
    vk = v[:, None, :] if v.ndim == 2 else v  # (B, K, D)
    if vk.ndim != 3 or vk.shape[0] != x.shape[0] or vk.shape[2] != x.shape[1]:
        raise ValueError(f"v must have shape {x.shape} or ({x.shape[0]}, K, {x.shape[1]}), got {v.shape}")
    out = denoiser.eps_jvp(x, t, vk) if y is None else denoiser.eps_jvp(x, t, vk, y)
    eps, jvp = _check_derivative(out, x, vk.shape, "eps_jvp(x, t, v)")
    return eps, (jvp[:, 0, :] if v.ndim == 2 else jvp)


#: rows (points x tangents) of one eps_jvp call of :func:`call_eps_and_jacobian_diagonal`: D unit tangents per point
#: multiply a network's activations by D, so a large batch goes through in pieces of this many rows
JACOBIAN_ROWS = 4096


def call_eps_and_jacobian_diagonal(denoiser: Denoiser, x: np.ndarray, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""eps (B, D) and the diagonal of its Jacobian, :math:`\partial\epsilon_{\theta,d}/\partial x_d` (B, D), checked.

    .. math:: \big(\partial\epsilon_\theta/\partial x\big)_{dd} = e_d^\top J e_d

    The D unit tangents :math:`e_d` through ``eps_jvp``, component d of the d-th product kept (its sum
    over d is the divergence of ``eps_and_divergence``); points go through in pieces of at most
    :data:`JACOBIAN_ROWS` points x tangents. ``x`` (B, D) and ``t`` (a float or (B,)) checked by the caller.
    """
    B, D = x.shape
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), (B,))
    eye = np.eye(D)
    eps, diag = np.empty((B, D)), np.empty((B, D))
    step = max(1, JACOBIAN_ROWS // D)
    for lo in range(0, B, step):
        xb = x[lo : lo + step]  # (b, D)
        e, jv = call_eps_jvp(denoiser, xb, t[lo : lo + step], np.broadcast_to(eye, (xb.shape[0], D, D)))  # (b, D, D)
        eps[lo : lo + step], diag[lo : lo + step] = e, np.einsum("bdd->bd", jv)
    return eps, diag


def call_eps_vjp(denoiser: Denoiser, x: np.ndarray, t: float | np.ndarray, u: np.ndarray,
                 y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    r"""``denoiser.eps_vjp``: eps (B, D) and :math:`u^\top\,\partial\epsilon/\partial x` (B, D), checked.

    ``u`` is (B, D), one cotangent per point; the rest as in :func:`call_eps_jvp`.
    """
    if not has_eps_vjp(denoiser):
        raise TypeError(f"{type(denoiser).__name__} has no eps_vjp (the optional vector-Jacobian product of eps)")
    u = np.asarray(u)
    if u.shape != x.shape:
        raise ValueError(f"u must have the shape of x {x.shape}, got {u.shape}")
    out = denoiser.eps_vjp(x, t, u) if y is None else denoiser.eps_vjp(x, t, u, y)
    return _check_derivative(out, x, x.shape, "eps_vjp(x, t, u)")
