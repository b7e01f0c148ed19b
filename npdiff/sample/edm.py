r"""EDM's deterministic sampler: Heun's method in the noise level (Karras et al. 2022, Algorithm 1).

Karras et al. write every diffusion as :math:`x = s(t)\,(x_0 + \sigma(t)\,n)`. For the VP process
:math:`x_t = \sqrt{\bar\alpha}\,x_0 + \sqrt{1-\bar\alpha}\,\epsilon` that is :math:`s = \sqrt{\bar\alpha}`
and the noise level

.. math:: \sigma = \sqrt{\frac{1-\bar\alpha}{\bar\alpha}} = e^{-\lambda/2} = e^{-\ell}

with :math:`\lambda` npdiff's log-SNR and :math:`\ell` = ``half_log_snr``, the variable DPM-Solver
calls :math:`\lambda` (:mod:`npdiff.sample.exp_integrator`). So the scaled state
:math:`\tilde x = x/\sqrt{\bar\alpha} = x_0 + \sigma\epsilon` follows their probability-flow ODE with
:math:`\sigma(t) = t`, :math:`s(t) = 1` (Eqs. 1 and 4 with Table 1's EDM column), whose slope is the
predicted noise:

.. math::
    \frac{d\tilde x}{d\sigma} = \frac{\tilde x - D(\tilde x; \sigma)}{\sigma}
    = \epsilon_\theta(\sqrt{\bar\alpha}\,\tilde x, t(\sigma)),\qquad D(\tilde x;\sigma) = \tilde x - \sigma\epsilon_\theta .

Heun's method in :math:`\sigma` (Algorithm 1, lines 4-8) on the noise levels of Eq. 5 with
:math:`\rho = 7` (:func:`npdiff.sample.grids.karras_grid`) is EDM's sampler; here it takes any grid.
Algorithm 1 ends with an Euler step to :math:`\sigma = 0`; here the grid ends at ``t_min`` and the
last step is Euler only when asked (``last_euler``: an odd budget of evaluations).
"""

from __future__ import annotations

import numpy as np

from .._progress import progress as bar
from ..denoiser import Denoiser, as_denoiser_batch, call_eps
from ._checks import check_finite, check_flag, check_grid
from ._common import Recorder, SampleResult
from .grids import noise_levels

__all__ = ["edm_heun"]


def edm_heun(denoiser: Denoiser, x: object, times: object, *, last_euler: bool = False,
             record: bool = False, progress: bool = False) -> SampleResult:
    r"""EDM's Heun sampler (Karras et al. 2022, Algorithm 1) for the VP process, ``times[0]`` down to ``times[-1]``.

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` gives the noise levels.
    x : (B, D) array
        States :math:`x_t` (not scaled) at ``times[0]``.
    times : (K + 1,) array
        Strictly decreasing, in (0, ``schedule.t_max``] (Eq. 5's levels: ``karras_grid``).
    last_euler : bool
        End with an Euler step, as Algorithm 1 does (2K - 1 evaluations instead of 2K).
    record : bool
        Keep the states at ``times``.
    progress : bool
        A bar on stderr, one step a tick.

    Returns
    -------
    SampleResult
        :math:`x_t` (B, D) at ``times[-1]``; ``nfe == 2K`` (``2K - 1`` with ``last_euler``).

    Examples
    --------
    On data :math:`\mathcal N(0, I)` every marginal is :math:`\mathcal N(0, I)`: the exact flow stands
    still (:math:`x_t = x_T`), so the distance to the starting point is the solver's error.

    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample import edm_heun, time_grid
    >>> data, x = GaussianData(np.zeros(2), 1.0), np.array([[0.5, -1.0]])
    >>> for K in (10, 20):
    ...     res = edm_heun(data, x, time_grid(data.schedule, K, "karras", 1e-3))
    ...     print(K, res.nfe, f"{np.abs(res.x - x).max():.1e}")
    10 20 1.6e-01
    20 40 3.5e-02
    """
    x = as_denoiser_batch(denoiser, x)
    times = check_grid(denoiser.schedule, times)
    return _edm_heun(denoiser, x, times, check_flag(last_euler, "last_euler"), record, progress)


def _edm_heun(denoiser: Denoiser, x: np.ndarray, times: np.ndarray, last_euler: bool, record: bool,
              progress: bool) -> SampleResult:
    alpha, _, ell = noise_levels(denoiser.schedule, times)  # (K+1,) each; ell = half_log_snr
    noise = np.exp(-ell)  # (K+1,) EDM's sigma_i = sqrt((1 - alpha_bar) / alpha_bar)
    K = times.size - 1
    y = x / alpha[0]  # (B, D) EDM's x: the state scaled to unit signal
    rec = Recorder(record)
    rec(x, times[0])
    nfe = 0
    for i in bar(range(K), total=K, desc="edm-heun", enabled=progress):
        t, t_next = float(times[i]), float(times[i + 1])
        ds = noise[i + 1] - noise[i]  # < 0: the noise level falls
        d = call_eps(denoiser, alpha[i] * y, t)  # (B, D) d_i = (x - D(x; sigma_i)) / sigma_i (line 5)
        y_next = y + ds * d  # Euler step (line 6)
        nfe += 1
        if not (last_euler and i == K - 1):
            # Heun's correction with the slope at the Euler prediction (lines 7-8)
            d_next = call_eps(denoiser, alpha[i + 1] * y_next, t_next)
            y_next = y + ds * 0.5 * (d + d_next)
            nfe += 1
        y = check_finite(y_next, f"at t={t_next:.6g}")
        rec(alpha[i + 1] * y, t_next)
    return rec.result(alpha[K] * y, nfe)
