r"""Hutchinson's estimate of the divergence, by name only: a random estimate with its standard error.

npdiff's likelihoods use the exact divergence :math:`\mathrm{tr}\,\partial\epsilon/\partial x`
(``eps_and_divergence`` of :mod:`npdiff.denoiser`) and never substitute an estimate for it. Where D
tangents per point are too dear, Hutchinson's identity (Hutchinson 1989; used for the probability
flow's likelihood by Grathwohl et al. 2019, FFJORD) gives an unbiased estimate from P random probes
:math:`v` with :math:`\mathbb E[v v^\top] = I`:

.. math::
    \mathrm{tr}\,J = \mathbb E_v\big[v^\top J v\big] \approx \frac1P\sum_{p=1}^P v_p^\top J v_p,

with the standard error std / sqrt(P) of the P terms, reported per point. Rademacher probes
(:math:`\pm 1` entries) have the least variance, :math:`2\sum_{i\ne j} \tilde J_{ij}^2` per probe
for the symmetric part :math:`\tilde J` (0 for a diagonal J); Gaussian probes add :math:`2\sum_i J_{ii}^2`.
The products :math:`J v` come from the denoiser's optional ``eps_jvp`` (or :math:`v^\top J` from
``eps_vjp``), P of them in one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._check import as_generator, one_of, positive_int
from ..denoiser import as_denoiser_batch, call_eps_jvp, call_eps_vjp, has_eps_jvp, has_eps_vjp

__all__ = ["PROBES", "HutchinsonEstimate", "hutchinson_divergence"]

#: the probe distributions: entries +-1 with equal probability, or standard normal
PROBES = ("rademacher", "gaussian")


@dataclass
class HutchinsonEstimate:
    r"""Hutchinson's estimate of :math:`\mathrm{tr}\,\partial\epsilon/\partial x` at each point.

    Attributes
    ----------
    eps : (B, D) eps at the points.
    div : (B,) the mean of the P probe terms :math:`v_p^\top J v_p`.
    se : (B,) their standard error, std / sqrt(P).
    probes : P.
    """

    eps: np.ndarray
    div: np.ndarray
    se: np.ndarray
    probes: int


def hutchinson_divergence(denoiser: object, x: object, t: float | np.ndarray, rng: np.random.Generator, probes: int,
                          *, kind: str = "rademacher", y: object = None) -> HutchinsonEstimate:
    r"""Hutchinson's random estimate of the divergence of eps, with its standard error (module docstring).

    Parameters
    ----------
    denoiser : a denoiser with ``eps_jvp`` or ``eps_vjp`` (:mod:`npdiff.denoiser`).
    x : (B, D) points.
    t : float or (B,) times.
    rng : np.random.Generator
        Draws the probes.
    probes : P >= 2 probes per point (two at least, for a standard error).
    kind : one of :data:`PROBES`.
    y : None, or labels of a conditional denoiser.

    Returns
    -------
    :class:`HutchinsonEstimate`.
    """
    x = as_denoiser_batch(denoiser, x)
    rng = as_generator(rng)
    P = positive_int(probes, "probes", minimum=2)
    kind = one_of(kind, "kind", PROBES)
    B, D = x.shape
    if kind == "rademacher":
        v = rng.choice(np.array([-1.0, 1.0]), size=(B, P, D))  # (B, P, D)
    else:
        v = rng.standard_normal((B, P, D))
    if has_eps_jvp(denoiser):
        eps, jv = call_eps_jvp(denoiser, x, t, v, y)  # (B, P, D)
        terms = np.einsum("bpd,bpd->bp", v, jv)  # (B, P) v^T J v
    elif has_eps_vjp(denoiser):  # one cotangent per call: v^T J, then dotted with v
        rows = [call_eps_vjp(denoiser, x, t, v[:, p], y) for p in range(P)]
        eps = rows[0][0]
        terms = np.stack([np.einsum("bd,bd->b", vj, v[:, p]) for p, (_, vj) in enumerate(rows)], axis=1)
    else:
        raise TypeError(f"Hutchinson's estimate needs the denoiser's eps_jvp or eps_vjp; {type(denoiser).__name__} "
                        "has neither")
    return HutchinsonEstimate(eps=eps, div=terms.mean(axis=1), se=terms.std(axis=1, ddof=1) / np.sqrt(P), probes=P)
