r"""DPM-Solver and DPM-Solver++: exponential integrators of the probability-flow ODE.

With :math:`\alpha_t = \sqrt{\bar\alpha(t)}`, :math:`\sigma_t = \sqrt{1-\bar\alpha(t)}` and
:math:`\ell_t = \log(\alpha_t/\sigma_t)`, ``half_log_snr``: HALF npdiff's log-SNR :math:`\lambda`
(the papers call it :math:`\lambda`; :mod:`npdiff.sample.exp_integrator`), the probability-flow ODE is
semi-linear and its linear part integrates exactly. From a state :math:`x_s` at time s, for
:math:`h = \ell_t - \ell_s`:

.. math::
    x_t = \frac{\alpha_t}{\alpha_s}x_s - \alpha_t\int_{\ell_s}^{\ell_t} e^{-\ell}\,
          \hat\epsilon_\theta(x_\ell, \ell)\,d\ell
    \quad\text{(Lu et al. 2022a, Eq. 3.4)},\qquad
    x_t = \frac{\sigma_t}{\sigma_s}x_s + \sigma_t\int_{\ell_s}^{\ell_t} e^{\ell}\,
          \hat x_\theta(x_\ell, \ell)\,d\ell
    \quad\text{(Lu et al. 2022b, Eq. 8)},

in the noise prediction :math:`\epsilon_\theta` or the data prediction
:math:`x_\theta = (x - \sigma\epsilon_\theta)/\alpha` (Ho et al. 2020, Eq. 15). The solvers
expand the prediction in :math:`\ell` and integrate the polynomial against the exponential:

* :func:`dpm_solver_singlestep` (Lu et al. 2022a, "DPM-Solver"): noise prediction, k = 1, 2
  or 3 evaluations per step at intermediate times uniform in :math:`\ell` (Algorithms 1 and
  2); the first order is DDIM (Sec. 4.1). :func:`singlestep_orders` spends a budget of
  evaluations as their "DPM-Solver-fast" does (Sec. 3.4): K = nfe // 3 + 1 steps for order 3.
  :func:`~npdiff.sample.fast_sample` (``dpm2``, ``dpm3``) runs them on a K-step grid of the chosen
  kind with the intermediate times at r = 1/2, or 1/3 and 2/3, of each step in :math:`\ell`. On the
  ``log_snr`` grid that is DPM-Solver-fast exactly (steps uniform in the log-SNR). On the other grids
  it is not the reference code's layout, which takes the outer times from an nfe-step grid of that
  kind (a step of order k spans k of its intervals) and evaluates at that grid's points inside each
  step; on the 8gaussians oracle neither layout wins at every budget (``docs/measurements/samplers.md``);
* :func:`dpmpp_multistep` (Lu et al. 2022b, "DPM-Solver++(2M)" and 3M): data prediction, one
  evaluation per step, the earlier steps' predictions giving the higher derivatives
  (Algorithm 2 for order 2; order 3 is the update of the authors' reference code, whose
  second difference carries half the weight Eq. 8 gives it: corrected here, measured in
  ``docs/measurements/samplers.md``).

Every step starts from the first-order step both forms share, :func:`~npdiff.sample.exp_integrator.ddim_step`,
and the multistep order of each step is :func:`~npdiff.sample.exp_integrator.step_order`. The public
functions check their arguments once and run their loop, a private function of this module.
"""

from __future__ import annotations

import numpy as np

from .._check import positive_int
from .._progress import progress as bar
from ..denoiser import Denoiser, as_denoiser_batch, call_eps
from ..parameterization import x0_from_eps
from ._checks import check_finite, check_flag, check_grid, check_orders
from ._common import Recorder, SampleResult
from .exp_integrator import LOWER_ORDER_FINAL_BELOW, ddim_step, step_order
from .grids import noise_levels, time_of_log_snr

__all__ = ["LOWER_ORDER_FINAL_BELOW", "dpm_solver_singlestep", "dpmpp_multistep", "singlestep_orders"]


def singlestep_orders(nfe: int, order: int) -> list[int]:
    r"""The orders of the steps of DPM-Solver-fast spending exactly ``nfe`` evaluations (Lu et al. 2022a, Sec. 3.4).

    Order 3: K = nfe // 3 + 1 steps, all third order but the last one or two (``[3, ..., 3, 2, 1]``,
    ``[3, ..., 3, 1]`` or ``[3, ..., 3, 2]`` as nfe mod 3 is 0, 1 or 2); order 2: second-order steps and
    a first-order one if nfe is odd; order 1: nfe DDIM steps.

    Parameters
    ----------
    nfe : int
        The budget of denoiser evaluations, at least ``order``.
    order : int
        The highest order, 1, 2 or 3.

    Returns
    -------
    list of int
        One order per step; they sum to ``nfe``.

    Examples
    --------
    >>> from npdiff.sample import singlestep_orders
    >>> singlestep_orders(10, 3), singlestep_orders(7, 2)
    ([3, 3, 3, 1], [2, 2, 2, 1])
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

    Step i goes from :math:`t_{i}` to :math:`t_{i+1}` with ``orders[i]`` evaluations: order 1 is
    DDIM (Sec. 4.1), orders 2 and 3 are DPM-Solver-2 and -3 (Algorithms 1 and 2) with their
    intermediate times at :math:`r_1 = 1/2` and :math:`r_1 = 1/3`, :math:`r_2 = 2/3` of the step
    in ``half_log_snr``.

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` gives the noise levels.
    x : (B, D) array
        States at ``times[0]``.
    times : (K + 1,) array
        Strictly decreasing, in (0, ``schedule.t_max``] (:mod:`npdiff.sample.grids`).
    orders : (K,) ints
        One order in 1..3 per step, e.g. :func:`singlestep_orders`.
    record : bool
        Keep the states at ``times``.
    progress : bool
        A bar on stderr, one step a tick.

    Returns
    -------
    SampleResult
        The states (B, D) at ``times[-1]``; ``nfe == sum(orders)``.

    Examples
    --------
    On data :math:`\mathcal N(0, I)` every marginal is :math:`\mathcal N(0, I)`: the exact flow stands
    still (:math:`x_t = x_T`), so the distance to the starting point is the solver's error.

    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample import dpm_solver_singlestep, time_grid
    >>> data, x = GaussianData(np.zeros(2), 1.0), np.array([[0.5, -1.0]])
    >>> for K in (5, 10):
    ...     res = dpm_solver_singlestep(data, x, time_grid(data.schedule, K, "log_snr", 1e-3), [3] * K)
    ...     print(K, res.nfe, f"{np.abs(res.x - x).max():.1e}")
    5 15 3.1e-02
    10 30 1.9e-03
    """
    x = as_denoiser_batch(denoiser, x)
    times = check_grid(denoiser.schedule, times)
    return _singlestep(denoiser, x, times, check_orders(orders, times.size - 1), record, progress)


def _singlestep(denoiser: Denoiser, x: np.ndarray, times: np.ndarray, orders: list[int], record: bool,
                progress: bool) -> SampleResult:
    s = denoiser.schedule
    alpha, sigma, ell = noise_levels(s, times)  # (K+1,) each; ell = half_log_snr
    h = np.diff(ell)  # (K,) step sizes in half_log_snr, > 0
    # the intermediate times, uniform in ell inside each step: r = 1/2 (order 2), r = 1/3 and 2/3 (order 3)
    r = np.array([[0.5, 0.0] if k == 2 else [1 / 3, 2 / 3] for k in orders])  # (K, 2)
    mid = time_of_log_snr(s, 2.0 * (ell[:-1, None] + r * h[:, None]))  # (K, 2) times; log-SNR = 2 half_log_snr
    a_mid, s_mid, l_mid = noise_levels(s, mid)  # (K, 2) each
    rec = Recorder(record)
    rec(x, times[0])
    nfe = 0
    for i in bar(range(len(orders)), total=len(orders), desc="dpm-solver", enabled=progress):
        k, t, t_next = orders[i], float(times[i]), float(times[i + 1])
        eps = call_eps(denoiser, x, t)  # (B, D) eps_theta(x_{i}, t_i)
        x0_hat = x0_from_eps(x, eps, alpha[i], sigma[i])  # (B, D)
        phi_1 = np.expm1(h[i])  # e^h - 1
        # DPM-Solver-1 = DDIM (Lu et al. 2022a, Sec. 3.3 and Sec. 4.1): the exact solution with eps constant
        x_lin = ddim_step(x, x0_hat, sigma[i], sigma[i + 1], alpha[i + 1], h[i])
        if k == 1:
            x_next = x_lin
        elif k == 2:
            # DPM-Solver-2 (Lu et al. 2022a, Algorithm 1): u at ell_i + r1 h, then the first-order difference
            h1 = l_mid[i, 0] - ell[i]  # = r1 h up to the inversion's last bit
            u = ddim_step(x, x0_hat, sigma[i], s_mid[i, 0], a_mid[i, 0], h1)
            d1 = call_eps(denoiser, u, float(mid[i, 0])) - eps  # (B, D)
            x_next = x_lin - sigma[i + 1] / (2.0 * h1 / h[i]) * phi_1 * d1
        else:
            # DPM-Solver-3 (Lu et al. 2022a, Algorithm 2): u1 at ell_i + h/3, u2 at ell_i + 2h/3
            h1, h2 = l_mid[i, 0] - ell[i], l_mid[i, 1] - ell[i]
            r1, r2 = h1 / h[i], h2 / h[i]
            u1 = ddim_step(x, x0_hat, sigma[i], s_mid[i, 0], a_mid[i, 0], h1)
            d1 = call_eps(denoiser, u1, float(mid[i, 0])) - eps
            u2 = (ddim_step(x, x0_hat, sigma[i], s_mid[i, 1], a_mid[i, 1], h2)
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

    One evaluation per step. Step i runs at order :func:`~npdiff.sample.exp_integrator.step_order`: the
    first steps at lower order until enough predictions are stored, with fewer than
    :data:`~npdiff.sample.exp_integrator.LOWER_ORDER_FINAL_BELOW` steps the last steps too, as the
    reference code does (it steadies very short runs), and first order wherever a step is more than
    twice as long (in ``half_log_snr``) as the one before it, where the extrapolation of the earlier
    predictions would reach far beyond them.

    Order 3 integrates a quadratic :math:`x_\theta(\ell)` exactly (:math:`\ell` = ``half_log_snr``).
    The authors' reference code (and diffusers and k-diffusion after it) weighs the second divided
    difference by half that, so its "3M" is second order overall; ``reference_3m=True`` reproduces it.

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` gives the noise levels.
    x : (B, D) array
        States at ``times[0]``.
    times : (K + 1,) array
        Strictly decreasing, in (0, ``schedule.t_max``], K >= ``order`` grid steps.
    order : int
        1 (DDIM), 2 ("2M", Algorithm 2) or 3 ("3M").
    reference_3m : bool
        Order 3 with the reference code's weight of the second difference.
    record : bool
        Keep the states at ``times``.
    progress : bool
        A bar on stderr, one step a tick.

    Returns
    -------
    SampleResult
        The states (B, D) at ``times[-1]``; ``nfe == K``.

    Examples
    --------
    On data :math:`\mathcal N(0, I)` every marginal is :math:`\mathcal N(0, I)`: the exact flow stands
    still (:math:`x_t = x_T`), so the distance to the starting point is the solver's error.

    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> from npdiff.sample import dpmpp_multistep, time_grid
    >>> data, x = GaussianData(np.zeros(2), 1.0), np.array([[0.5, -1.0]])
    >>> for K in (10, 20):
    ...     res = dpmpp_multistep(data, x, time_grid(data.schedule, K, "log_snr", 1e-3), order=3)
    ...     print(K, res.nfe, f"{np.abs(res.x - x).max():.1e}")
    10 10 3.5e-02
    20 20 2.8e-03
    """
    x = as_denoiser_batch(denoiser, x)
    order = positive_int(order, "order", maximum=3)
    times = check_grid(denoiser.schedule, times, min_steps=order)
    return _multistep(denoiser, x, times, order, record, progress, check_flag(reference_3m, "reference_3m"))


def _multistep(denoiser: Denoiser, x: np.ndarray, times: np.ndarray, order: int, record: bool,
               progress: bool, reference_3m: bool = False) -> SampleResult:
    alpha, sigma, ell = noise_levels(denoiser.schedule, times)  # (K+1,) each; ell = half_log_snr
    d2_weight = 1.0 if reference_3m else 2.0  # of the second difference, d2 ~ h^2 x_theta'' / 2
    K = times.size - 1
    steps = np.diff(ell)  # (K,) h of every step
    m: list[np.ndarray] = []  # the last data predictions x_theta, newest last
    rec = Recorder(record)
    rec(x, times[0])
    for i in bar(range(K), total=K, desc=f"dpm-solver++{order}m", enabled=progress):
        t, t_next = float(times[i]), float(times[i + 1])
        m.append(x0_from_eps(x, call_eps(denoiser, x, t), alpha[i], sigma[i]))  # (B, D) x_theta(x_i, t_i)
        del m[:-order]
        k = step_order(order, i, steps)
        h = ell[i + 1] - ell[i]
        phi_1 = np.expm1(-h)  # e^{-h} - 1
        # first order (DPM-Solver++1 = DDIM): Eq. 8 with x_theta constant over the step
        x_next = ddim_step(x, m[-1], sigma[i], sigma[i + 1], alpha[i + 1], h)
        if k == 2:
            # DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2): D = (1 + 1/2r) m_i - (1/2r) m_{i-1}, r = h_{i-1}/h_i
            r0 = (ell[i] - ell[i - 1]) / h
            x_next = x_next - 0.5 * alpha[i + 1] * phi_1 * (m[-1] - m[-2]) / r0
        elif k == 3:
            # 3M: Eq. 8 with x_theta expanded to second order in ell, the derivatives from divided differences
            # of the last three predictions (the reference code's update, with the second difference's weight fixed)
            r0, r1 = (ell[i] - ell[i - 1]) / h, (ell[i - 1] - ell[i - 2]) / h
            d1_0, d1_1 = (m[-1] - m[-2]) / r0, (m[-2] - m[-3]) / r1
            d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)  # (B, D) h x_theta' + O(h^3)
            d2 = (d1_0 - d1_1) / (r0 + r1)  # (B, D) h^2 x_theta'' / 2 + O(h^3)
            phi_2 = phi_1 / h + 1.0  # (e^{-h} - 1 + h) / h
            phi_3 = phi_2 / h - 0.5  # (e^{-h} - 1 + h - h^2/2) / h^2
            # sigma_t int e^ell [m + u x' + u^2 x''/2] = -alpha phi_1 m + alpha phi_2 (h x') - alpha phi_3 (h^2 x'')
            x_next = x_next + alpha[i + 1] * phi_2 * d1 - d2_weight * alpha[i + 1] * phi_3 * d2
        x = check_finite(x_next, f"at t={t_next:.6g}")
        rec(x, t_next)
    return rec.result(x, K)
