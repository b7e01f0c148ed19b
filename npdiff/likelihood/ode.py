r"""The exact log-likelihood of the probability-flow ODE.

Along the flow :math:`dx/dt = f(x, t)` (Song et al. 2021, Eq. 13) the log-density changes
by the divergence (the instantaneous change of variables, Chen et al. 2018, Thm. 1), so

.. math::
    \log p_{t_{\min}}(x) = \log p_{t_{\max}}(x_{t_{\max}}) + \int_{t_{\min}}^{t_{\max}}
        \nabla\cdot f(x_t, t)\,dt,\qquad
    \nabla\cdot f = -\tfrac12\beta(t)\Big[D - \frac{\mathrm{tr}\,\partial_x\epsilon_\theta(x, t)}{\sigma(t)}\Big]

(Song et al. 2021, Eq. 39 and Appendix D.2), with the prior :math:`\mathcal N(0, I)` at
``t_max``. "Exact" means the divergence is the exact trace returned by the denoiser's
``eps_and_divergence`` (closed form for an oracle, forward-mode Jacobian for the MLP),
never a Hutchinson estimate: the only errors are the ODE solver's and the prior's.

The state of ``scipy.integrate.solve_ivp`` (RK45) is the whole batch, (B * D) positions
plus B accumulated divergences, so one adaptive step size serves the batch; pass
``batch_size`` to solve chunks separately (less memory, more evaluations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from .._check import check_tolerances, flow_time, positive_int
from .._progress import TimeBar
from ..denoiser import Denoiser, as_denoiser_batch, call_eps_and_divergence
from ..gaussian import log_normal_diag_unchecked
from ..sample.ode import flow_from_eps
from ..threads import blas_threads

__all__ = ["ODELikelihood", "ode_log_likelihood"]


@dataclass
class ODELikelihood:
    r"""Result of :func:`ode_log_likelihood`, per point in nats.

    Attributes
    ----------
    log_p : (B,) :math:`\log p_{t_{\min}}(x) = ` ``prior + divergence``.
    prior : (B,) :math:`\log\mathcal N(x_{t_{\max}}; 0, I)`.
    divergence : (B,) :math:`\int_{t_{\min}}^{t_{\max}}\nabla\cdot f\,dt`.
    x_end : (B, D) the encoded points at ``t_max``.
    nfe : denoiser evaluations (summed over chunks).
    """

    log_p: np.ndarray
    prior: np.ndarray
    divergence: np.ndarray
    x_end: np.ndarray
    nfe: int


def _solve_chunk(denoiser: Denoiser, x: np.ndarray, t_min: float, t_max: float, rtol: float, atol: float,
                 reached: TimeBar):
    B, D = x.shape
    s = denoiser.schedule
    nfe = 0

    def fun(t: float, y: np.ndarray) -> np.ndarray:
        nonlocal nfe
        nfe += 1
        reached(t)
        xt = y[: B * D].reshape(B, D)
        t = min(max(float(t), t_min), t_max)  # RK45's last stage may round one ulp past the interval
        beta, sigma = float(s.beta(t)), float(s.sigma(t))
        eps, div_eps = call_eps_and_divergence(denoiser, xt, t)
        dx = flow_from_eps(xt, eps, beta, sigma)  # (B, D) Song et al. 2021, Eq. 13
        ddiv = -0.5 * beta * (D - div_eps / sigma)  # (B,) its divergence
        return np.concatenate([dx.ravel(), ddiv])

    y0 = np.concatenate([x.ravel(), np.zeros(B)])
    with np.errstate(over="raise", invalid="raise"):
        try:
            sol = solve_ivp(fun, (t_min, t_max), y0, method="RK45", rtol=rtol, atol=atol)
        except FloatingPointError as exc:
            raise FloatingPointError(f"the likelihood ODE diverged (overflow in the flow): {exc}") from None
    if sol.status != 0:
        raise FloatingPointError(f"the likelihood ODE failed to reach t_max={t_max}: {sol.message}")
    y = sol.y[:, -1]
    z = y[: B * D].reshape(B, D)
    divergence = y[B * D :]
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(divergence))):
        raise FloatingPointError("the likelihood ODE produced NaN or Inf values")
    return z, divergence, nfe


@blas_threads()
def ode_log_likelihood(
    denoiser: Denoiser,
    x: object,
    *,
    t_min: float = 1e-5,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    batch_size: int | None = None,
    progress: bool = False,
) -> ODELikelihood:
    r"""Log-likelihood of each point under the probability-flow ODE of ``denoiser``.

    Parameters
    ----------
    denoiser : follows the denoiser protocol; its ``schedule`` (and ``t_max``) is used.
    x : (B, D) points, taken as states at ``t_min``.
    t_min : start of the flow, in (0, t_max). The result is the model's density at
        ``t_min``, which for small ``t_min`` is the data density (the default 1e-5
        blurs by :math:`\sigma \approx 3\times10^{-3}` on vp_linear).
    rtol : float
        Relative tolerance of RK45 (Dormand-Prince), in [1e-13, 1).
    atol : float
        Absolute tolerance of RK45, in [1e-14, 1].
    batch_size : solve chunks of this many points separately (default: all at once).
    progress : a bar on stderr per chunk: the share of [t_min, t_max] the solver has reached.

    Returns
    -------
    :class:`ODELikelihood` with per-point ``log_p``, ``prior``, ``divergence`` (nats).
    """
    x, t_min = as_denoiser_batch(denoiser, x), flow_time(denoiser.schedule, t_min, "t_min", hi_open=True)
    rtol, atol = check_tolerances(rtol, atol)
    B = x.shape[0]
    chunk = B if batch_size is None else positive_int(batch_size, "batch_size")
    t_max = float(denoiser.schedule.t_max)
    zs, divs, nfe = [], [], 0
    for start in range(0, B, chunk):
        part = f" (points {start + 1}-{min(start + chunk, B)} of {B})" if chunk < B else ""
        with TimeBar(t_min, t_max, desc=f"likelihood ODE{part}", enabled=progress) as reached:
            z, div, n = _solve_chunk(denoiser, x[start : start + chunk], t_min, t_max, rtol, atol, reached)
        zs.append(z)
        divs.append(div)
        nfe += n
    z = np.concatenate(zs)  # (B, D)
    divergence = np.concatenate(divs)  # (B,)
    prior = log_normal_diag_unchecked(z, 0.0, 0.0)  # (B,) log N(z; 0, I)
    return ODELikelihood(log_p=prior + divergence, prior=prior, divergence=divergence, x_end=z, nfe=nfe)
