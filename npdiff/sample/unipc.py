r"""UniPC: a unified predictor-corrector for the probability-flow ODE (Zhao et al. 2023).

UniPC works on DPM-Solver++'s exact solution in the data prediction
:math:`x_\theta = (x - \sigma\epsilon_\theta)/\alpha` (Lu et al. 2022b, Eq. 8), in
:math:`\ell = \log(\alpha/\sigma)`, ``half_log_snr``: HALF npdiff's log-SNR :math:`\lambda` (the
papers call it :math:`\lambda`; :mod:`npdiff.sample.exp_integrator`). Each step from
:math:`t_{i}` to :math:`t_{i+1}`, :math:`h = \ell_{i+1} - \ell_i`, with the divided
differences :math:`D_k = (m_{i-k} - m_i)/r_k`, :math:`r_k = (\ell_{i-k} - \ell_i)/h`, of the
stored predictions :math:`m`:

* **UniP-p** (the predictor, order p):
  :math:`\tilde x_{i+1} = \frac{\sigma_{i+1}}{\sigma_i}x_i - \alpha_{i+1}(e^{-h}-1)\,m_i
  - \alpha_{i+1}B(h)\sum_{k<p}\rho^p_k D_k`;
* **UniC-p** (the corrector, order p + 1): the same with one more difference
  :math:`D_p = m_{i+1} - m_i`, from the evaluation :math:`m_{i+1} = x_\theta(\tilde x_{i+1}, t_{i+1})`
  that the next predictor needs anyway, so the correction costs no evaluation.

The first two terms are the first-order step, :func:`~npdiff.sample.exp_integrator.ddim_step`. The
weights :math:`\rho` solve :math:`R\rho = b` with :math:`R_{jk} = r_k^{\,j-1}` and
:math:`b_j = j!\,(-h)\,\varphi_{j+1}(-h)/B(h)`, :math:`\varphi_{j+1}(z) = \int_0^1 e^{(1-\theta)z}\theta^j/j!\,d\theta`
(Zhao et al. 2023, Sec. 3, Algorithms 1-2: the conditions under which the update integrates a
polynomial :math:`x_\theta(\ell)` of degree p exactly), here with :math:`B(h) = e^{-h} - 1`, the variant
"bh2" the authors recommend for unconditional sampling. With one difference both take
:math:`\rho = 1/2` instead (the authors' choice: :math:`b_1 = 1/2 + O(h)`). The state is corrected; the
stored prediction is the one at the predicted state (as in the reference code). The last step is not
corrected (that would cost an evaluation). The order of each step is
:func:`~npdiff.sample.exp_integrator.step_order`, as for :func:`~npdiff.sample.dpmpp_multistep`: the
first steps run at lower order, with fewer than 10 steps the last ones too (DPM-Solver's
``lower_order_final``; UniPC's reference code lowers the last step's order at every step count,
which makes the method second order overall), and a step more than twice as long as the one before
it drops the differences it would extrapolate over (predictor and corrector alike).
"""

from __future__ import annotations

import math

import numpy as np

from .._check import positive_int
from .._progress import progress as bar
from ..denoiser import Denoiser, as_denoiser_batch, call_eps
from ..parameterization import x0_from_eps
from ._checks import check_finite, check_grid
from ._common import Recorder, SampleResult
from .exp_integrator import ddim_step, step_order
from .grids import noise_levels

__all__ = ["unipc"]


def unipc(denoiser: Denoiser, x: object, times: object, *, order: int = 2,
          record: bool = False, progress: bool = False) -> SampleResult:
    r"""UniPC-p with :math:`B(h) = e^{-h} - 1` ("bh2"; Zhao et al. 2023) from ``times[0]`` down to ``times[-1]``.

    One evaluation per step; the predictor has order p = ``order``, the corrector raises it by one.

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` gives the noise levels.
    x : (B, D) array
        States at ``times[0]``.
    times : (K + 1,) array
        Strictly decreasing, in (0, ``schedule.t_max``], K >= ``order`` grid steps.
    order : int
        The predictor's order p, 1, 2 or 3.
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
    >>> from npdiff.sample import time_grid, unipc
    >>> data, x = GaussianData(np.zeros(2), 1.0), np.array([[0.5, -1.0]])
    >>> for K in (10, 20):
    ...     res = unipc(data, x, time_grid(data.schedule, K, "log_snr", 1e-3), order=2)
    ...     print(K, res.nfe, f"{np.abs(res.x - x).max():.1e}")
    10 10 4.2e-02
    20 20 8.1e-03
    """
    x = as_denoiser_batch(denoiser, x)
    order = positive_int(order, "order", maximum=3)
    times = check_grid(denoiser.schedule, times, min_steps=order)
    return _unipc(denoiser, x, times, order, record, progress)


def _weights(r: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    r"""The matrix R (p, p) and vector b (p,) of UniPC for the ratios r = (r_1, ..., r_{p-1}, 1) and step h."""
    p = r.size
    hh = -h  # data prediction: the exponential integrator runs in -ell
    b_h = np.expm1(hh)  # B(h), "bh2"
    b = np.empty(p)
    phi = np.expm1(hh) / hh - 1.0  # hh phi_2(hh), the reference code's h_phi_k
    for j in range(1, p + 1):
        b[j - 1] = phi * math.factorial(j) / b_h
        phi = phi / hh - 1.0 / math.factorial(j + 1)  # hh phi_{j+2}(hh)
    R = np.vander(r, p, increasing=True).T  # (p, p) R[j, k] = r_k ** j
    return R, b


def _unipc(denoiser: Denoiser, x: np.ndarray, times: np.ndarray, order: int, record: bool,
           progress: bool) -> SampleResult:
    alpha, sigma, ell = noise_levels(denoiser.schedule, times)  # (K+1,) each; ell = half_log_snr
    K = times.size - 1
    steps = np.diff(ell)  # (K,) h of every step
    m = [x0_from_eps(x, call_eps(denoiser, x, float(times[0])), alpha[0], sigma[0])]  # predictions, newest last
    rec = Recorder(record)
    rec(x, times[0])
    nfe = 1
    for i in bar(range(K), total=K, desc=f"unipc-{order}", enabled=progress):
        t_next = float(times[i + 1])
        p = step_order(order, i, steps)
        h = ell[i + 1] - ell[i]
        r = np.array([(ell[i - k] - ell[i]) / h for k in range(1, p)] + [1.0])  # (p,)
        d = [(m[-1 - k] - m[-1]) / r[k - 1] for k in range(1, p)]  # D_k, (B, D) each
        R, b = _weights(r, h)
        b_h = np.expm1(-h)
        # the first-order part: DPM-Solver++1 (DDIM) from x_i with m_i
        x_lin = ddim_step(x, m[-1], sigma[i], sigma[i + 1], alpha[i + 1], h)
        # UniP-p (Zhao et al. 2023, Algorithm 2): rho_p solves the first p - 1 equations; 1/2 for one difference
        rho_p = np.array([0.5]) if p == 2 else (np.linalg.solve(R[:-1, :-1], b[:-1]) if p > 2 else np.zeros(0))
        x_pred = x_lin - alpha[i + 1] * b_h * sum((w * dk for w, dk in zip(rho_p, d)), np.zeros_like(x))
        x_pred = check_finite(x_pred, f"at t={t_next:.6g}")
        if i == K - 1:  # no evaluation after the last step, hence no correction
            x = x_pred
        else:
            m_next = x0_from_eps(x_pred, call_eps(denoiser, x_pred, t_next), alpha[i + 1], sigma[i + 1])
            nfe += 1
            # UniC-p (Zhao et al. 2023, Algorithm 1): rho_c solves all p equations, the last difference m_{i+1} - m_i
            rho_c = np.array([0.5]) if p == 1 else np.linalg.solve(R, b)
            corr = sum((w * dk for w, dk in zip(rho_c[:-1], d)), rho_c[-1] * (m_next - m[-1]))
            x = check_finite(x_lin - alpha[i + 1] * b_h * corr, f"at t={t_next:.6g}")
            m.append(m_next)
            del m[:-order]
        rec(x, t_next)
    return rec.result(x, nfe)
