r"""DPM-Solver and DPM-Solver++: exponential integrators of the probability-flow ODE.

With :math:`\alpha_t = \sqrt{\bar\alpha(t)}`, :math:`\sigma_t = \sqrt{1-\bar\alpha(t)}` and
:math:`\lambda_t = \log(\alpha_t/\sigma_t)` (half the log-SNR), the probability-flow ODE is
semi-linear and its linear part integrates exactly. From a state :math:`x_s` at time s, for
:math:`h = \lambda_t - \lambda_s`:

.. math::
    x_t = \frac{\alpha_t}{\alpha_s}x_s - \alpha_t\int_{\lambda_s}^{\lambda_t} e^{-\lambda}\,
          \hat\epsilon_\theta(x_\lambda, \lambda)\,d\lambda
    \quad\text{(Lu et al. 2022a, Eq. 3.4)},\qquad
    x_t = \frac{\sigma_t}{\sigma_s}x_s + \sigma_t\int_{\lambda_s}^{\lambda_t} e^{\lambda}\,
          \hat x_\theta(x_\lambda, \lambda)\,d\lambda
    \quad\text{(Lu et al. 2022b, Eq. 8)},

in the noise prediction :math:`\epsilon_\theta` or the data prediction
:math:`x_\theta = (x - \sigma\epsilon_\theta)/\alpha` (Ho et al. 2020, Eq. 15). The solvers
expand the prediction in :math:`\lambda` and integrate the polynomial against the exponential:

* :func:`dpm_solver_singlestep` (Lu et al. 2022a, "DPM-Solver"): noise prediction, k = 1, 2
  or 3 evaluations per step at intermediate times uniform in :math:`\lambda` (Algorithms 1 and
  2); the first order is DDIM (Sec. 4.1). :func:`singlestep_orders` spends a budget of
  evaluations as their "DPM-Solver-fast" does (Sec. 3.4);
* :func:`dpmpp_multistep` (Lu et al. 2022b, "DPM-Solver++(2M)" and 3M): data prediction, one
  evaluation per step, the earlier steps' predictions giving the higher derivatives
  (Algorithm 2 for order 2; order 3 is the update of the authors' reference code, whose
  second difference carries half the weight Eq. 8 gives it: corrected here, measured in
  ``docs/samplers.md``).

The public functions check their arguments and call the unchecked cores
``dpm_solver_singlestep.unchecked`` and ``dpmpp_multistep.unchecked``, which
:func:`npdiff.sample.fast_sample` calls on the grids it builds.
"""

from __future__ import annotations

import numpy as np

from .._check import as_integers, positive_int
from .._progress import progress as bar
from ..denoiser import Denoiser, as_denoiser_batch, call_eps
from ..parameterization import x0_from_eps
from ._common import Recorder, SampleResult, check_finite
from .grids import check_grid, noise_levels, time_of_log_snr

__all__ = ["LOWER_ORDER_FINAL_BELOW", "dpm_solver_singlestep", "dpmpp_multistep", "singlestep_orders"]

#: multistep solvers of fewer steps lower their order on the last steps (the reference code's
#: ``lower_order_final``, which it applies "for steps < 10" only)
LOWER_ORDER_FINAL_BELOW = 10


def singlestep_orders(nfe: int, order: int) -> list[int]:
    r"""The orders of the steps of DPM-Solver-fast spending exactly ``nfe`` evaluations (Lu et al. 2022a, Sec. 3.4).

    Order 3: K = nfe // 3 + 1 steps, all third order but the last one or two (``[3, ..., 3, 2, 1]``,
    ``[3, ..., 3, 1]`` or ``[3, ..., 3, 2]`` as nfe mod 3 is 0, 1 or 2); order 2: second-order steps and
    a first-order one if nfe is odd; order 1: nfe DDIM steps. Needs nfe >= order.
    """
    order = positive_int(order, "order", maximum=3)
    nfe = positive_int(nfe, "nfe", minimum=order)
    if order == 3:
        return [3] * (nfe // 3 - 1) + {0: [2, 1], 1: [3, 1], 2: [3, 2]}[nfe % 3]
    if order == 2:
        return [2] * (nfe // 2) + [1] * (nfe % 2)
    return [1] * nfe


def dpm_solver_singlestep(denoiser: Denoiser, x: object, times: object, orders: object, *,
                          record: bool = False, progress: bool = False) -> SampleResult:
    r"""Singlestep DPM-Solver (Lu et al. 2022a) from ``times[0]`` down to ``times[-1]``.

    Step i goes from :math:`t_{i}` to :math:`t_{i+1}` with ``orders[i]`` evaluations (1, 2 or 3); see
    the core for the updates.

    Parameters
    ----------
    x : (B, D) states at ``times[0]``.
    times : (K + 1,) strictly decreasing, in (0, ``schedule.t_max``] (:mod:`npdiff.sample.grids`).
    orders : K ints in 1..3, e.g. :func:`singlestep_orders`.

    Returns
    -------
    SampleResult with the state at ``times[-1]`` and ``nfe == sum(orders)``.
    """
    x = as_denoiser_batch(denoiser, x)
    times = check_grid(denoiser.schedule, times)
    orders = as_integers(orders, "orders", lo=1, hi=3)
    if orders.shape != (times.size - 1,):
        raise ValueError(f"orders must hold one order per step, shape ({times.size - 1},) for {times.size} times, "
                         f"got shape {orders.shape}")
    return _singlestep(denoiser, x, times, [int(k) for k in orders], record, progress)


def _singlestep(denoiser: Denoiser, x: np.ndarray, times: np.ndarray, orders: list[int], record: bool,
                progress: bool) -> SampleResult:
    s = denoiser.schedule
    alpha, sigma, lam = noise_levels(s, times)  # (K+1,) each
    h = np.diff(lam)  # (K,) step sizes in lambda, > 0
    # the intermediate times, uniform in lambda inside each step: r = 1/2 (order 2), r = 1/3 and 2/3 (order 3)
    r = np.array([[0.5, 0.0] if k == 2 else [1 / 3, 2 / 3] for k in orders])  # (K, 2)
    mid = time_of_log_snr(s, 2.0 * (lam[:-1, None] + r * h[:, None]))  # (K, 2) times; lambda = log-SNR / 2
    a_mid, s_mid, l_mid = noise_levels(s, mid)  # (K, 2) each
    rec = Recorder(record)
    rec(x, times[0])
    nfe = 0
    for i in bar(range(len(orders)), total=len(orders), desc="dpm-solver", enabled=progress):
        k, t, t_next = orders[i], float(times[i]), float(times[i + 1])
        eps = call_eps(denoiser, x, t)  # (B, D) eps_theta(x_{i}, t_i)
        phi_1 = np.expm1(h[i])  # e^h - 1
        # DPM-Solver-1 = DDIM (Lu et al. 2022a, Sec. 3.3 and Sec. 4.1): the exact solution with eps constant
        x_lin = (alpha[i + 1] / alpha[i]) * x - sigma[i + 1] * phi_1 * eps
        if k == 1:
            x_next = x_lin
        elif k == 2:
            # DPM-Solver-2 (Lu et al. 2022a, Algorithm 1): u at lambda_i + r1 h, then the first-order difference
            h1 = l_mid[i, 0] - lam[i]  # = r1 h up to the inversion's last bit
            u = (a_mid[i, 0] / alpha[i]) * x - s_mid[i, 0] * np.expm1(h1) * eps
            d1 = call_eps(denoiser, u, float(mid[i, 0])) - eps  # (B, D)
            x_next = x_lin - sigma[i + 1] / (2.0 * h1 / h[i]) * phi_1 * d1
        else:
            # DPM-Solver-3 (Lu et al. 2022a, Algorithm 2): u1 at lambda_i + h/3, u2 at lambda_i + 2h/3
            h1, h2 = l_mid[i, 0] - lam[i], l_mid[i, 1] - lam[i]
            r1, r2 = h1 / h[i], h2 / h[i]
            u1 = (a_mid[i, 0] / alpha[i]) * x - s_mid[i, 0] * np.expm1(h1) * eps
            d1 = call_eps(denoiser, u1, float(mid[i, 0])) - eps
            u2 = ((a_mid[i, 1] / alpha[i]) * x - s_mid[i, 1] * np.expm1(h2) * eps
                  - s_mid[i, 1] * (r2 / r1) * (np.expm1(h2) / h2 - 1.0) * d1)
            d2 = call_eps(denoiser, u2, float(mid[i, 1])) - eps
            x_next = x_lin - sigma[i + 1] / r2 * (phi_1 / h[i] - 1.0) * d2
        nfe += k
        x = check_finite(x_next, f"at t={t_next:.6g}")
        rec(x, t_next)
    return rec.result(x, nfe)


def dpmpp_multistep(denoiser: Denoiser, x: object, times: object, *, order: int = 2, reference_3m: bool = False,
                    record: bool = False, progress: bool = False) -> SampleResult:
    r"""Multistep DPM-Solver++ of order 1, 2 or 3 (Lu et al. 2022b) from ``times[0]`` down to ``times[-1]``.

    One evaluation per step. The first steps run at lower order until enough predictions are stored;
    with fewer than :data:`LOWER_ORDER_FINAL_BELOW` steps the last steps lower the order too, as the
    reference code does (it steadies very short runs).

    Order 3 integrates a quadratic :math:`x_\theta(\lambda)` exactly. The authors' reference code (and
    diffusers and k-diffusion after it) weighs the second divided difference by half that, so its
    "3M" is second order overall; ``reference_3m=True`` reproduces it.

    Parameters
    ----------
    x : (B, D) states at ``times[0]``.
    times : (K + 1,) strictly decreasing, in (0, ``schedule.t_max``], K >= ``order``.
    reference_3m : order 3 with the reference code's weight of the second difference.

    Returns
    -------
    SampleResult with the state at ``times[-1]`` and ``nfe == K``.
    """
    x = as_denoiser_batch(denoiser, x)
    order = positive_int(order, "order", maximum=3)
    times = check_grid(denoiser.schedule, times, min_steps=order)
    if not isinstance(reference_3m, (bool, np.bool_)):
        raise TypeError(f"reference_3m must be a bool, got {type(reference_3m).__name__}")
    return _multistep(denoiser, x, times, order, record, progress, bool(reference_3m))


def _multistep(denoiser: Denoiser, x: np.ndarray, times: np.ndarray, order: int, record: bool,
               progress: bool, reference_3m: bool = False) -> SampleResult:
    alpha, sigma, lam = noise_levels(denoiser.schedule, times)  # (K+1,) each
    d2_weight = 1.0 if reference_3m else 2.0  # of the second difference, d2 ~ h^2 x_theta'' / 2
    K = times.size - 1
    m: list[np.ndarray] = []  # the last data predictions x_theta, newest last
    rec = Recorder(record)
    rec(x, times[0])
    for i in bar(range(K), total=K, desc=f"dpm-solver++{order}m", enabled=progress):
        t, t_next = float(times[i]), float(times[i + 1])
        m.append(x0_from_eps(x, call_eps(denoiser, x, t), alpha[i], sigma[i]))  # (B, D) x_theta(x_i, t_i)
        del m[:-order]
        k = min(order, i + 1, K - i) if K < LOWER_ORDER_FINAL_BELOW else min(order, i + 1)
        h = lam[i + 1] - lam[i]
        phi_1 = np.expm1(-h)  # e^{-h} - 1
        # first order (DPM-Solver++1 = DDIM): Eq. 8 with x_theta constant over the step
        x_next = (sigma[i + 1] / sigma[i]) * x - alpha[i + 1] * phi_1 * m[-1]
        if k == 2:
            # DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2): D = (1 + 1/2r) m_i - (1/2r) m_{i-1}, r = h_{i-1}/h_i
            r0 = (lam[i] - lam[i - 1]) / h
            x_next = x_next - 0.5 * alpha[i + 1] * phi_1 * (m[-1] - m[-2]) / r0
        elif k == 3:
            # 3M: Eq. 8 with x_theta expanded to second order in lambda, the derivatives from divided differences
            # of the last three predictions (the reference code's update, with the second difference's weight fixed)
            r0, r1 = (lam[i] - lam[i - 1]) / h, (lam[i - 1] - lam[i - 2]) / h
            d1_0, d1_1 = (m[-1] - m[-2]) / r0, (m[-2] - m[-3]) / r1
            d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)  # (B, D) h x_theta' + O(h^3)
            d2 = (d1_0 - d1_1) / (r0 + r1)  # (B, D) h^2 x_theta'' / 2 + O(h^3)
            phi_2 = phi_1 / h + 1.0  # (e^{-h} - 1 + h) / h
            phi_3 = phi_2 / h - 0.5  # (e^{-h} - 1 + h - h^2/2) / h^2
            # sigma_t int e^lambda [m + u x' + u^2 x''/2] = -alpha phi_1 m + alpha phi_2 (h x') - alpha phi_3 (h^2 x'')
            x_next = x_next + alpha[i + 1] * phi_2 * d1 - d2_weight * alpha[i + 1] * phi_3 * d2
        x = check_finite(x_next, f"at t={t_next:.6g}")
        rec(x, t_next)
    return rec.result(x, K)


# the unchecked cores, for fast_sample, which checks its arguments and builds the grid at its door
dpm_solver_singlestep.unchecked = _singlestep
dpmpp_multistep.unchecked = _multistep
