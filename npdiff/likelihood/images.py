r"""Bits/dim of K-level images by both likelihoods of a diffusion model.

Images v on K levels (the convention of :mod:`npdiff.gaussian`: level v at 2v/(K-1) - 1)
are scored in bits per dimension, :math:`-\log_2 P(v) / D`, by two estimators:

- the exact probability-flow ODE likelihood of uniformly dequantized images
  (:func:`~npdiff.likelihood.dequantized_bpd`; Song et al. 2021, Eq. 39; Theis et al. 2016,
  Sec. 3.1), log-mean-exp over ``draws`` dequantizations (Burda et al. 2016, Thm. 1);
- the discrete variational bound whose decoder is the discretized Gaussian on the K levels
  (:func:`~npdiff.likelihood.vlb`; Ho et al. 2020, Eqs. 5 and 13), converted as
  :math:`\mathrm{bpd} = L / (D\ln 2)`; or, with ``vlb_dequantized=True``, the bound of the chain on the
  dequantized images with a Gaussian decoder density (:func:`~npdiff.likelihood.dequantized_vlb_bpd`),
  log-mean-exp over the same number of draws.

Both dequantize with ``dequantization``: uniform within a bin, or i-DODE's truncated normal
(:mod:`npdiff.likelihood.dequantize`).

Each bounds :math:`-\log_2 P(v)/D` from above, but of its own model: the ODE that of the flow's
density integrated over closed bins (in expectation over the dequantization), the VLB that of
the T-step chain with its open-ended first and last bins. They need not agree.

An image whose flow diverges is flagged (``ode.diverged``) and left out of the ODE's mean:
:meth:`ImageBPD.summary` then reports ``bpd_ode`` as None beside the mean of the other images,
never a figure that averages in a runaway solve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._check import as_batch, as_generator, positive_int
from ..denoiser import Denoiser, check_denoiser
from ..gaussian import data_to_levels
from ..reverse_variance import EpsMoments, ReverseVariance, check_variance
from .dequantize import DequantizedLikelihood, check_dequantization, dequantized_bpd, dequantized_vlb_bpd
from .vlb import VLBResult, bound_chain, vlb

__all__ = ["METHODS", "ImageBPD", "image_bpd"]

METHODS = ("ode", "vlb", "both")


def _mean_and_se(values: np.ndarray) -> tuple[float | None, float | None, int]:
    r"""Mean and standard error over the finite entries, and how many were not finite."""
    ok = values[np.isfinite(values)]
    mean = float(ok.mean()) if ok.size else None
    se = float(ok.std(ddof=1) / np.sqrt(ok.size)) if ok.size > 1 else None
    return mean, se, int(values.size - ok.size)


@dataclass
class ImageBPD:
    r"""Result of :func:`image_bpd`.

    Attributes
    ----------
    K : number of levels.
    D : pixels per image.
    ode : the exact ODE likelihood (:class:`~npdiff.likelihood.DequantizedLikelihood`: per-image
        ``bpd``, NaN where ``diverged``), or None when not asked for.
    vlb : the variational bound in nats (:class:`~npdiff.likelihood.VLBResult`), or None.
    variance : the VLB's reverse variance, or None.
    vlb_dequantized : the bound of the chain on dequantized images
        (:class:`~npdiff.likelihood.DequantizedLikelihood`), or None (then ``vlb`` holds the bound of the levels).
    vlb_T : steps of the bound's chain, or None.
    """

    K: int
    D: int
    ode: DequantizedLikelihood | None
    vlb: VLBResult | None
    variance: str | None
    vlb_dequantized: DequantizedLikelihood | None = None
    vlb_T: int | None = None

    @property
    def bpd_vlb(self) -> np.ndarray | None:
        r"""(B,) the bound per image in bits/dim, :math:`L / (D\ln 2)` (dequantized: its log-mean-exp figure)."""
        if self.vlb_dequantized is not None:
            return self.vlb_dequantized.bpd
        return None if self.vlb is None else self.vlb.total / (self.D * np.log(2.0))

    @property
    def vlb_terms_bpd(self) -> np.ndarray | None:
        r"""(B, T + 1) the bound's terms in bits/dim: column 0 the decoder :math:`L_0`, T the prior :math:`L_T`."""
        return None if self.vlb is None else self.vlb.terms / (self.D * np.log(2.0))

    def summary(self) -> dict[str, Any]:
        r"""The figures over the images, JSON-ready.

        ``bpd_ode`` and ``bpd_vlb`` are the means with their standard errors (``*_se``), None
        as soon as one image diverged (``ode_diverged``, ``vlb_diverged`` count them);
        ``bpd_ode_finite`` is the ODE's mean over the images that did not diverge; ``ode_nfe`` and
        ``vlb_nfe`` count each method's own denoiser evaluations; ``ode_dequantization`` and
        ``vlb_dequantization`` name the noise (``"levels"`` for the bound's discretized decoder), ``*_scale``
        the truncated normal's.
        """
        out: dict[str, Any] = {"K": self.K, "D": self.D}
        if self.ode is not None:
            mean, se, bad = _mean_and_se(self.ode.bpd)
            out.update(bpd_ode=None if bad else mean, bpd_ode_finite=mean, bpd_ode_se=se, ode_diverged=bad,
                       ode_draws=int(self.ode.log_p.shape[0]), n=int(self.ode.bpd.shape[0]))
            out.update(ode_nfe=int(self.ode.nfe), ode_dequantization=self.ode.dequantization,
                       ode_scale=self.ode.scale)
        if self.vlb is not None or self.vlb_dequantized is not None:
            bpd = self.bpd_vlb
            mean, se, bad = _mean_and_se(bpd)
            out.update(bpd_vlb=None if bad else mean, bpd_vlb_se=se, vlb_diverged=bad, vlb_T=self.vlb_T,
                       vlb_variance=self.variance, n=int(bpd.shape[0]))
            dq = self.vlb_dequantized
            if dq is None:
                out.update(vlb_nfe=int(self.vlb.nfe), vlb_dequantization="levels", vlb_draws=1)
            else:
                out.update(vlb_nfe=int(dq.nfe), vlb_dequantization=dq.dequantization, vlb_scale=dq.scale,
                           vlb_draws=int(dq.log_p.shape[0]))
        return out


def image_bpd(
    denoiser: Denoiser,
    x: object,
    K: int,
    rng: np.random.Generator | int,
    *,
    method: str = "both",
    draws: int = 1,
    dequantization: str = "uniform",
    scale: float | None = None,
    vlb_dequantized: bool = False,
    T: int = 50,
    times: object | None = None,
    variance: str = "large",
    eps_moments: EpsMoments | None = None,
    t_min: float = 1e-5,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    batch_size: int | None = 60,
    progress: bool = False,
) -> ImageBPD:
    r"""Bits/dim of K-level images x (B, D) by the exact ODE likelihood, the VLB, or both.

    Parameters
    ----------
    denoiser : follows the denoiser protocol.
    x : (B, D) images on the K levels 2v/(K-1) - 1.
    K : number of levels.
    rng : draws the ODE's dequantization noise first, then the VLB's :math:`x_t`.
    method : ``"ode"``, ``"vlb"`` or ``"both"``.
    draws : dequantizations per image for the ODE (and the dequantized VLB), combined by log-mean-exp.
    dequantization : str
        ``"uniform"`` or ``"truncated_normal"`` (:data:`~npdiff.likelihood.DEQUANTIZATIONS`).
    scale : float or None
        The truncated normal's scale; None: :func:`~npdiff.likelihood.truncated_normal_scale` where each
        likelihood starts (the ODE's ``t_min``, the chain's first time).
    vlb_dequantized : bool
        Score the bound of the chain on dequantized images (Gaussian decoder density) instead of the levels
        through the discretized decoder.
    T : int
        The VLB's chain length.
    times : (K + 1,) array or None
        The VLB's chain through these times instead (a step file's; :func:`~npdiff.likelihood.vlb`).
    variance : str
        The VLB's reverse variance (:data:`npdiff.reverse_variance.VARIANCES`).
    eps_moments : what ``"analytic"`` needs (:func:`npdiff.reverse_variance.eps_moments` on training images).
    t_min : float
        Passed to :func:`~npdiff.likelihood.ode_log_likelihood`.
    rtol : float
        Passed to :func:`~npdiff.likelihood.ode_log_likelihood`.
    atol : float
        Passed to :func:`~npdiff.likelihood.ode_log_likelihood`.
    batch_size : int
        Passed to :func:`~npdiff.likelihood.ode_log_likelihood`: one adaptive step size serves a
        chunk of ``batch_size`` images; 60 is the chunk the digits figures of the README were
        measured with.
    progress : bars on stderr for the ODE solves and the VLB's terms.

    Returns
    -------
    :class:`ImageBPD`; its ``summary()`` holds the means.

    Raises
    ------
    FloatingPointError
        if the flow diverged for every image.
    """
    check_denoiser(denoiser)
    x = as_batch(x, "x", dim=getattr(denoiser, "dim", None))
    K = positive_int(K, "K", minimum=2)
    data_to_levels(x, K)
    rng = as_generator(rng)
    if not isinstance(method, str) or method not in METHODS:  # an array would make `in` elementwise
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    draws = positive_int(draws, "draws")
    dequantization, scale = check_dequantization(dequantization, scale)
    T = positive_int(T, "T", minimum=2)
    variance = check_variance(variance)
    chain = None
    if method != "ode":  # the bound's chain and variance fail here, not after minutes of ODE solves
        chain = bound_chain(denoiser.schedule, T, times=times)
        ReverseVariance(chain, variance, eps_moments=eps_moments, x0_max=None if vlb_dequantized else 1.0)
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
    ode = bound = bound_dq = None
    if method in ("ode", "both"):
        ode = dequantized_bpd(denoiser, x, K, rng, draws=draws, dequantization=dequantization, scale=scale, t_min=t_min,
                              rtol=rtol, atol=atol, batch_size=batch_size, progress=progress)
    if method in ("vlb", "both") and vlb_dequantized:
        bound_dq = dequantized_vlb_bpd(denoiser, x, K, rng, draws=draws, dequantization=dequantization, scale=scale,
                                       T=T, times=times, variance=variance, eps_moments=eps_moments, progress=progress)
    elif method in ("vlb", "both"):
        bound = vlb(denoiser, x, T, rng=rng, variance=variance, K=K, eps_moments=eps_moments, times=times,
                    progress=progress)
    return ImageBPD(K=K, D=x.shape[1], ode=ode, vlb=bound, variance=variance if method != "ode" else None,
                    vlb_dequantized=bound_dq, vlb_T=None if chain is None else int(chain.T))
