r"""Score test points of a known density: the exact ODE likelihood, the variational bound, or both.

On a data set whose density is known (the toy sets of :mod:`npdiff.data.toy2d`), the quality of
a model is the **paired gap**: the mean over the same test points of
:math:`\log p_\text{data}(x) - \log p_\theta(x)`, an estimate of :math:`\mathrm{KL}(p_\text{data}
\,\|\, p_\theta)` whose standard error is that of the per-point differences. Pairing cancels the
sampling error of the points themselves: their own NLL under the true density differs from the
entropy by far more than the model's gap.

:func:`score_points` runs the exact likelihood of the probability-flow ODE
(:func:`~npdiff.likelihood.ode_log_likelihood`), the bound of the T-step chain
(:func:`~npdiff.likelihood.vlb`), or both on the same points, and :class:`PointScores` holds the
per-point figures with their paired means. With both, it also gives the paired difference
"VLB minus exact NLL". The two are figures of two different models (the chain's bound and the
flow's exact density) that coincide only for a perfect denoiser, and the VLB is a Monte Carlo
estimate, so that difference may come out of either sign: it is reported with its standard
error, never assumed positive.

>>> import numpy as np
>>> from npdiff.likelihood import mean_se
>>> est = mean_se(np.array([0.1, 0.3, 0.2]), "gap")
>>> round(est.mean, 6), round(est.se, 6)
(0.2, 0.057735)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._check import as_batch, as_float_array, as_generator, check_tolerances, one_of, positive_int
from ..denoiser import Denoiser, check_denoiser
from ..reverse_variance import EpsMoments
from .ode import ODELikelihood, ode_log_likelihood
from .vlb import VLBResult, bound_chain, vlb

__all__ = ["METHODS", "MeanSE", "PointScores", "mean_se", "score_points"]

#: what :func:`score_points` runs: the exact ODE likelihood, the variational bound, or both
METHODS = ("ode", "vlb", "both")


@dataclass(frozen=True)
class MeanSE:
    r"""The mean of per-point values and its standard error.

    Attributes
    ----------
    mean : the mean over the points.
    se : the standard error of the mean, ``std(ddof=1) / sqrt(n)``; None for one point (undefined,
        and JSON has no NaN).
    n : the number of points.
    """

    mean: float
    se: float | None
    n: int

    def z(self) -> float | None:
        r"""The mean in standard errors, ``mean / se``: None without a standard error, or with a zero one."""
        return None if not self.se else self.mean / self.se


def mean_se(values: object, name: str = "values") -> MeanSE:
    r"""The mean of per-point values with its standard error.

    .. math:: \bar d = \frac1n\sum_i d_i, \qquad \mathrm{se} = \frac{s_d}{\sqrt n},
        \quad s_d^2 = \frac{1}{n-1}\sum_i (d_i - \bar d)^2

    Applied to paired differences (two figures of the same points), the standard error is that of
    the difference itself, which is what a comparison of the two needs.

    Parameters
    ----------
    values : (n,) finite per-point values, n >= 1.
    name : the argument's name in error messages.

    Returns
    -------
    :class:`MeanSE`.
    """
    d = as_float_array(values, name)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of per-point values, got shape {d.shape}")
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else None
    return MeanSE(mean=float(d.mean()), se=se, n=int(d.size))


@dataclass
class PointScores:
    r"""Result of :func:`score_points`: per-point figures in nats and their paired means.

    Attributes
    ----------
    log_p_true : (B,) :math:`\log p_\text{data}(x)` of each point.
    ode : the exact likelihood (:class:`~npdiff.likelihood.ODELikelihood`), or None.
    vlb : the bound (:class:`~npdiff.likelihood.VLBResult`), or None.
    """

    log_p_true: np.ndarray
    ode: ODELikelihood | None
    vlb: VLBResult | None

    @property
    def gap(self) -> MeanSE | None:
        r"""The paired gap of the exact likelihood, :math:`\log p_\text{data}(x) - \log p_\theta(x)`."""
        return None if self.ode is None else mean_se(self.log_p_true - self.ode.log_p, "gap")

    @property
    def vlb_gap(self) -> MeanSE | None:
        r"""The paired gap of the bound, :math:`\log p_\text{data}(x) + L(x)`."""
        return None if self.vlb is None else mean_se(self.log_p_true + self.vlb.total, "vlb_gap")

    @property
    def vlb_minus_exact(self) -> MeanSE | None:
        r"""The paired difference of the two figures, :math:`L(x) - (-\log p_\theta(x))`, when both ran."""
        if self.ode is None or self.vlb is None:
            return None
        return mean_se(self.vlb.total + self.ode.log_p, "vlb_minus_exact")

    def summary(self) -> dict[str, Any]:
        r"""The figures over the points, JSON-ready.

        ``nll_true_nats`` (the true density's NLL of these points); with the ODE ``nll_nats``,
        ``gap_nats``, ``gap_se`` and ``ode_nfe``; with the bound ``vlb_nats``, ``vlb_gap_nats``,
        ``vlb_gap_se`` and ``vlb_nfe``; with both ``vlb_minus_exact_nats`` and
        ``vlb_minus_exact_se``. A standard error is None for one point.
        """
        out: dict[str, Any] = {"n": int(self.log_p_true.size), "nll_true_nats": float(-self.log_p_true.mean())}
        if self.ode is not None:
            gap = self.gap
            out.update(nll_nats=float(-self.ode.log_p.mean()), gap_nats=gap.mean, gap_se=gap.se,
                       ode_nfe=int(self.ode.nfe))
        if self.vlb is not None:
            gap = self.vlb_gap
            out.update(vlb_nats=float(self.vlb.total.mean()), vlb_gap_nats=gap.mean, vlb_gap_se=gap.se,
                       vlb_nfe=int(self.vlb.nfe))
        both = self.vlb_minus_exact
        if both is not None:
            out.update(vlb_minus_exact_nats=both.mean, vlb_minus_exact_se=both.se)
        return out


def score_points(
    denoiser: Denoiser,
    x: object,
    log_p_true: object,
    *,
    method: str = "ode",
    rng: np.random.Generator | int | None = None,
    T: int = 1000,
    times: object | None = None,
    variance: str = "large",
    eps_moments: EpsMoments | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    progress: bool = False,
) -> PointScores:
    r"""Score points of a known density by the exact ODE likelihood, the variational bound, or both.

    The exact likelihood runs first, then the bound, which draws its noise from ``rng``: a caller
    that drew the points from the same Generator gets the same figures as calling
    :func:`~npdiff.likelihood.ode_log_likelihood` and :func:`~npdiff.likelihood.vlb` in turn.

    Parameters
    ----------
    denoiser : follows the denoiser protocol (:mod:`npdiff.denoiser`).
    x : (B, D) the points.
    log_p_true : (B,) the true log-density of each point, in nats.
    method : ``"ode"``, ``"vlb"`` or ``"both"`` (:data:`METHODS`).
    rng : the bound's noise (a Generator or an int seed); required unless ``method="ode"``.
    T : steps of the bound's chain, >= 2.
    times : the bound's chain through these times instead of T uniform steps (a step file's; :func:`~npdiff.likelihood.vlb`).
    variance : the bound's reverse variance (:data:`npdiff.reverse_variance.VARIANCES`).
    eps_moments : what ``variance="analytic"`` needs
        (:func:`npdiff.reverse_variance.eps_moments`); ignored by the ODE.
    rtol : RK45's relative tolerance for the ODE.
    atol : RK45's absolute tolerance for the ODE.
    progress : bars on stderr while each method runs.

    Returns
    -------
    :class:`PointScores`.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.gaussian import log_normal_diag
    >>> from npdiff.likelihood import score_points
    >>> from npdiff.schedule import vp_linear
    >>> oracle = GaussianData(np.zeros(2), np.eye(2), vp_linear())  # the exact denoiser of N(0, I)
    >>> x = np.random.default_rng(0).standard_normal((8, 2))
    >>> scores = score_points(oracle, x, log_normal_diag(x, 0.0, 0.0), rtol=1e-8, atol=1e-8)
    >>> abs(scores.gap.mean) < 1e-4  # the exact denoiser: no gap
    True
    """
    method = one_of(method, "method", METHODS)
    x = as_batch(x, "x")
    log_p = as_float_array(log_p_true, "log_p_true")
    if log_p.shape != (x.shape[0],):
        raise ValueError(f"log_p_true must have shape ({x.shape[0]},), one value per point of x, got {log_p.shape}")
    rtol, atol = check_tolerances(rtol, atol)
    if method != "ode":  # refused before the ODE's work, not after it
        rng = as_generator(rng)
        T = positive_int(T, "T", minimum=2)
        if times is not None:  # a grid that does not fit the schedule fails here, not after the ODE
            check_denoiser(denoiser)
            bound_chain(denoiser.schedule, T, times=times)
    ode = ode_log_likelihood(denoiser, x, rtol=rtol, atol=atol, progress=progress) if method != "vlb" else None
    bound = None
    if method != "ode":
        bound = vlb(denoiser, x, T, rng=rng, variance=variance, eps_moments=eps_moments, times=times, progress=progress)
    return PointScores(log_p_true=log_p, ode=ode, vlb=bound)
