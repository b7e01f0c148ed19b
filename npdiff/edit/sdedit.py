r"""Image to image: SDEdit (Meng et al. 2022), noise an input part of the way and denoise it.

A guide :math:`x^{(g)}` (a rough image, an off-manifold point) is carried by the forward process to an
intermediate time :math:`t_0` and the reverse process is run from there (Meng et al. 2022, Sec. 3,
written there for the VE SDE; for the VP process the noising is Ho et al. 2020, Eq. 4):

.. math::
    x_{t_0} = \sqrt{\bar\alpha(t_0)}\; x^{(g)} + \sqrt{1 - \bar\alpha(t_0)}\;\epsilon,\quad
    \epsilon \sim \mathcal N(0, I),\qquad
    x_0 = \text{reverse sampler}(x_{t_0};\ t_0 \to 0).

Small :math:`t_0` keeps the output close to the guide (faithful); large :math:`t_0` forgets it and
returns a sample of the model (realistic): at :math:`t_0 = t_{\max}` the guide survives only as the mean
:math:`\sqrt{\bar\alpha(t_{\max})}\,x^{(g)}` of the start (vp_linear: 0.0066 :math:`x^{(g)}`), so the
output is, up to that trace, plain sampling. Meng et al. 2022 discuss this trade-off of faithfulness and
realism (Sec. 3) and report t0 in [0.3, 0.6] working well on images; ``docs/measurements/editing.md`` measures
it in 2-D with the true density.

**Strength to time.** ``strength`` s in (0, 1] keeps the first :math:`T_0 = \max(1, \mathrm{round}(sT))`
steps of the chain of T steps on [0, ``t_max``] (:func:`npdiff.reverse.chain_for`), so
:math:`t_0 = T_0\,t_{\max}/T` (:func:`sdedit_time`; s = 1 is :math:`t_{\max}`). The reverse part is an
existing sampler started at :math:`t_0`, not a new loop:

* ``"ddpm"``: :func:`npdiff.sample.ddpm_sample` on those :math:`T_0` steps, respaced to
  :math:`\max(1, \mathrm{round}(s\cdot\texttt{steps}))` (``steps`` is what a full-strength run would take,
  as diffusers' ``strength`` counts them);
* ``"ddim"``: :func:`npdiff.sample.ddim_sample` the same way (``eta`` as there);
* ``"ode"``: the probability-flow ODE (:func:`npdiff.sample.solve_flow`, Heun on a uniform grid of
  :math:`\max(1, \mathrm{round}(s\cdot\texttt{steps}))` steps) from :math:`t_0` to ``t_min``, then Tweedie's
  :math:`\hat x_0` there (one more evaluation), as :func:`npdiff.sample.ode_sample` ends.

``threshold`` (``"ddpm"`` and ``"ddim"``) is :mod:`npdiff.thresholding`'s, for images.
"""

from __future__ import annotations

import numpy as np

from .._validate import SDEDIT_SAMPLERS, check_schedule, check_sdedit, check_strength
from ..denoiser import Denoiser
from ..forward import q_sample_unchecked
from ..sample import SampleResult, ddim_sample, ddpm_sample, solve_flow
from ..sample._common import tweedie
from ..schedule import Schedule
from ..thresholding import IMAGEN_PERCENTILE

__all__ = ["DEFAULT_STEPS", "SDEDIT_SAMPLERS", "sdedit", "sdedit_time", "sdedit_time_unchecked"]

#: steps of a full-strength run without ``steps``: the samplers' own defaults (ode: Heun steps)
DEFAULT_STEPS = {"ddpm": 1000, "ddim": 250, "ode": 100}


def sdedit_time(schedule: Schedule, strength: float, T: int = 1000) -> tuple[int, float]:
    r"""SDEdit's start for ``strength`` s: :math:`T_0 = \max(1, \mathrm{round}(sT))` and :math:`t_0 = T_0 t_{\max} / T`.

    Parameters
    ----------
    schedule : Schedule
        The denoiser's schedule (its ``t_max`` is strength 1).
    strength : float
        s, in (0, 1].
    T : int
        The length of the full chain on [0, ``t_max``].

    Returns
    -------
    T0 : int
        The number of chain steps from :math:`t_0` to clean data, 1..T.
    t0 : float
        The start time, in (0, ``t_max``].

    Examples
    --------
    >>> from npdiff.schedule import vp_linear
    >>> sdedit_time(vp_linear(), 0.5)
    (500, 0.5)
    >>> sdedit_time(vp_linear(), 0.0001, T=100)
    (1, 0.01)
    """
    return sdedit_time_unchecked(check_schedule(schedule), *check_strength(strength, T))


def sdedit_time_unchecked(schedule: Schedule, strength: float, T: int) -> tuple[int, float]:
    r""":func:`sdedit_time` on checked arguments.

    Examples
    --------
    >>> from npdiff.schedule import cosine
    >>> T0, t0 = sdedit_time_unchecked(cosine(), 0.3, 1000)
    >>> print(T0, round(t0, 4))
    300 0.2997
    """
    T0 = max(1, round(strength * T))
    return T0, min(T0 * schedule.t_max / T, schedule.t_max)  # min: T0 = T must give t_max, not t_max + 1 ulp


def sdedit(
    denoiser: Denoiser,
    x: np.ndarray,
    rng: np.random.Generator | int,
    *,
    strength: float = 0.5,
    sampler: str = "ddpm",
    steps: int | None = None,
    T: int = 1000,
    eta: float = 0.0,
    threshold: str = "none",
    percentile: float = IMAGEN_PERCENTILE,
    t_min: float = 1e-3,
    record: bool = False,
    progress: bool = False,
) -> SampleResult:
    r"""SDEdit (Meng et al. 2022): noise the guide ``x`` to :math:`t_0` by the forward process and denoise it.

    .. math::
        x_{t_0} = \sqrt{\bar\alpha(t_0)}\, x + \sqrt{1 - \bar\alpha(t_0)}\,\epsilon
        \quad\text{(Ho et al. 2020, Eq. 4)},\qquad
        t_0 = \frac{\max(1, \mathrm{round}(sT))}{T}\, t_{\max}

    then the reverse sampler ``sampler`` from :math:`t_0` (module docstring). One output per row of ``x``;
    repeat the rows for several edits of one guide.

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` defines the forward process and the chain.
    x : (N, D) array
        The guides, one a row.
    rng : np.random.Generator or int
        The only source of randomness (the noising, and the ancestral steps of ``"ddpm"`` or ``"ddim"`` with
        eta > 0): a Generator, or an int seed.
    strength : float
        s in (0, 1]: how far towards noise the guide is carried (:func:`sdedit_time`).
    sampler : str
        ``"ddpm"``, ``"ddim"`` or ``"ode"`` (:data:`SDEDIT_SAMPLERS`).
    steps : int or None
        The steps of a full-strength run (None: :data:`DEFAULT_STEPS`); the edit takes
        :math:`\max(1, \mathrm{round}(s\cdot\texttt{steps}))` of them (at most :math:`T_0` on the chain).
    T : int
        The length of the full chain on [0, ``t_max``] that strength cuts (``"ddpm"``, ``"ddim"``; for
        ``"ode"`` it only sets :math:`t_0`).
    eta : float
        DDIM's eta in [0, 1] (``"ddim"`` only).
    threshold : str
        Thresholding of the predicted x_0 (``"ddpm"`` and ``"ddim"`` only): ``"none"``, ``"static"`` or
        ``"dynamic"`` (:mod:`npdiff.thresholding`).
    percentile : float
        The percentile p of ``"dynamic"``, in (0, 1).
    t_min : float
        Where the ODE stops before its denoising step (``"ode"`` only), below :math:`t_0`.
    record : bool
        Keep the states visited from :math:`t_0` on.
    progress : bool
        A bar on stderr.

    Returns
    -------
    SampleResult
        ``x`` (N, D), the edits, and the number of denoiser evaluations.

    Examples
    --------
    On Gaussian data a weak edit stays near the guide and a full-strength one forgets it:

    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.edit.sdedit import sdedit
    >>> data = GaussianData(np.array([2.0]), 0.25)
    >>> guide = np.full((2000, 1), -1.0)
    >>> weak = sdedit(data, guide, np.random.default_rng(0), strength=0.02, steps=500)
    >>> full = sdedit(data, guide, np.random.default_rng(0), strength=1.0, steps=100)
    >>> print(round(float(weak.x.mean()), 1), round(float(full.x.mean()), 1), round(float(full.x.std()), 1), full.nfe)
    -0.9 2.0 0.5 100
    """
    x, rng, sampler, steps, eta, threshold, percentile, t_min = check_sdedit(denoiser, x, rng, sampler, steps, eta,
                                                                            threshold, percentile, t_min)
    strength, T = check_strength(strength, T)
    T0, t0 = sdedit_time_unchecked(denoiser.schedule, strength, T)
    k = max(1, round(strength * (DEFAULT_STEPS[sampler] if steps is None else steps)))  # the steps this strength takes
    if sampler != "ode":
        k = min(k, T0)  # no more steps than the cut chain has
    elif not t0 > t_min:
        raise ValueError(f"strength = {strength!r} starts the ode at t0 = {t0:.4g}, not above t_min = {t_min!r}: "
                         "use a larger strength or a smaller t_min")
    eps = rng.standard_normal(x.shape)  # (N, D) the forward process's noise
    x_t0 = q_sample_unchecked(x, np.full(x.shape[0], t0), eps, denoiser.schedule)  # (N, D) Ho et al. 2020, Eq. 4
    common = dict(x_T=x_t0, record=record, progress=progress)
    if sampler == "ddpm":
        return ddpm_sample(denoiser, None, rng, steps=k, T=T0, t_start=t0, threshold=threshold,
                           percentile=percentile, **common)
    if sampler == "ddim":
        return ddim_sample(denoiser, None, rng, steps=k, T=T0, eta=eta, t_start=t0, threshold=threshold,
                           percentile=percentile, **common)
    res = solve_flow(denoiser, x_t0, t0, t_min, method="heun", steps=k, record=record, progress=progress)
    res.x = tweedie(denoiser, res.x, t_min)  # the denoising step of ode_sample
    res.nfe += 1
    return res
