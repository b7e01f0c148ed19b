r"""The exponential integrator of the probability-flow ODE: the first-order step every solver builds on.

Notation. :math:`\lambda` is npdiff's log-SNR, :math:`\log(\bar\alpha/(1-\bar\alpha))`, everywhere.
DPM-Solver (Lu et al. 2022a, 2022b), UniPC and EDM write :math:`\lambda` for
:math:`\log(\alpha/\sigma)` with :math:`\alpha = \sqrt{\bar\alpha}`, :math:`\sigma = \sqrt{1-\bar\alpha}`:
that is HALF the log-SNR, called ``half_log_snr`` here (:func:`npdiff.sample.grids.noise_levels`
gives it at the times of a grid). A step from time s down to time t has
:math:`h = \text{half\_log\_snr}(t) - \text{half\_log\_snr}(s) > 0`.

In the data prediction :math:`\hat x_0 = x_\theta(x, s) = (x - \sigma_s\epsilon_\theta)/\alpha_s`
(Ho et al. 2020, Eq. 15) the probability-flow ODE is semi-linear and its linear part
integrates exactly (Lu et al. 2022b, Eq. 8):

.. math::
    x_t = \frac{\sigma_t}{\sigma_s}x_s + \sigma_t\int_{\ell_s}^{\ell_t} e^{\ell}\,x_\theta(x_\ell, \ell)\,d\ell,
    \qquad \ell = \text{half\_log\_snr}.

Holding :math:`x_\theta` at its value at s gives the first-order step, :func:`ddim_step`:

.. math::
    x_t = \frac{\sigma_t}{\sigma_s}x_s + \alpha_t\big(1 - e^{-h}\big)\hat x_0
        = \frac{\sigma_t}{\sigma_s}x_s - \alpha_t\,\mathrm{expm1}(-h)\,\hat x_0 .

It is DDIM with :math:`\eta = 0` (Song, Meng & Ermon 2021, Eq. 12: substitute
:math:`\epsilon_\theta = (x_s - \alpha_s\hat x_0)/\sigma_s` and
:math:`e^{-h} = \alpha_s\sigma_t/(\sigma_s\alpha_t)`), DPM-Solver-1 (Lu et al. 2022a, Sec. 4.1) and
DPM-Solver++1 (Lu et al. 2022b). ``expm1`` keeps every digit of :math:`1 - e^{-h}` on the short
steps (:math:`h \to 0`) where ``1 - exp(-h)`` would cancel. The solvers of :mod:`npdiff.sample`
(DDIM on the chain, DPM-Solver, DPM-Solver++, UniPC) all take this step and add their own
higher-order terms to it.

:func:`step_order` is the order a multistep solver (DPM-Solver++, UniPC) uses at each step of a run: lower
at the first steps, at the last steps of a short run, and wherever a step is long against the one before it.

Both are the formula alone: the solvers call them inside their loops on arrays they checked at their door.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LOWER_ORDER_FINAL_BELOW", "MIN_STEP_RATIO", "ddim_step", "step_order"]

#: multistep solvers of fewer steps lower their order on the last steps too (DPM-Solver's reference code's
#: ``lower_order_final``, which it applies "for steps < 10" only)
LOWER_ORDER_FINAL_BELOW = 10
#: a multistep step extrapolates over its stencil only if each neighbouring ratio h_prev / h in it is at least this
MIN_STEP_RATIO = 0.5


def ddim_step(x: np.ndarray, x0_hat: np.ndarray, sigma: float, sigma_next: float, alpha_next: float,
              h: float) -> np.ndarray:
    r"""One first-order exponential-integrator step in the data prediction (module docstring).

    .. math:: x_{\text{next}} = \frac{\sigma_{\text{next}}}{\sigma}\,x - \alpha_{\text{next}}\,\mathrm{expm1}(-h)\,\hat x_0

    (Lu et al. 2022b, Eq. 8 with :math:`x_\theta` constant over the step; DDIM's Eq. 12 with
    :math:`\eta = 0`, Song, Meng & Ermon 2021.)

    Parameters
    ----------
    x : (B, D) array
        States at the step's start, noise level ``sigma > 0``.
    x0_hat : (B, D) array
        The predicted clean data :math:`\hat x_0` at the start.
    sigma : float
        :math:`\sigma = \sqrt{1-\bar\alpha}` at the start.
    sigma_next : float
        :math:`\sigma` at the step's end (0 at clean data).
    alpha_next : float
        :math:`\alpha = \sqrt{\bar\alpha}` at the step's end.
    h : float
        The step in half the log-SNR, :math:`h = \log(\alpha_{\text{next}}/\sigma_{\text{next}}) - \log(\alpha/\sigma)`
        (``inf`` at clean data, where the step returns :math:`\alpha_{\text{next}}\hat x_0`).

    Returns
    -------
    (B, D) array
        The states at the step's end.

    Examples
    --------
    A step to clean data (:math:`\sigma_{\text{next}} = 0`, :math:`h = \infty`) lands on the prediction:

    >>> import numpy as np
    >>> from npdiff.sample.exp_integrator import ddim_step
    >>> x, x0_hat = np.array([[2.0, -1.0]]), np.array([[0.5, 0.25]])
    >>> ddim_step(x, x0_hat, sigma=0.6, sigma_next=0.0, alpha_next=1.0, h=np.inf)
    array([[0.5 , 0.25]])

    A step of zero length leaves the state where it is:

    >>> ddim_step(x, x0_hat, sigma=0.6, sigma_next=0.6, alpha_next=0.8, h=0.0)
    array([[ 2., -1.]])
    """
    return (sigma_next / sigma) * x - alpha_next * np.expm1(-h) * x0_hat


def step_order(order: int, i: int, h: np.ndarray) -> int:
    r"""The order of step ``i`` (0-based) of a multistep solver of order ``order`` on the steps ``h``.

    A step of order k extrapolates the polynomial through the k newest predictions, at
    :math:`\ell_i, \ell_{i-1}, \dots, \ell_{i-k+1}`, over the step :math:`[\ell_i, \ell_i + h_i]`
    (:math:`\ell` = ``half_log_snr``). Three rules, applied in turn:

    1. the first steps run at lower order until enough predictions are stored: :math:`k \le i + 1`;
    2. a run of fewer than :data:`LOWER_ORDER_FINAL_BELOW` steps also lowers the order of its last steps,
       :math:`k \le K - i`, as DPM-Solver's reference code does (it steadies very short runs, whose last
       steps are long in :math:`\ell` even on a uniform log-SNR grid);
    3. the order drops while a neighbouring ratio inside the stencil,
       :math:`r_j = h_{j-1}/h_j` for :math:`j = i, \dots, i-k+2`, is below :data:`MIN_STEP_RATIO`.

    Rule 3 is the step ratio: the second-order update weighs the newest difference
    :math:`(m_i - m_{i-1})/r_i` by 1/2 (DPM-Solver++(2M), Lu et al. 2022b, Algorithm 2), so its
    extrapolation weights :math:`1 + 1/(2r)` and :math:`1/(2r)` grow without bound as a step becomes
    long against the one before it; a predicted :math:`x_\theta(\ell)`, which saturates towards the data, is
    then extrapolated far beyond the points that fit it. A grid whose steps in :math:`\ell` grow fast
    hits this at its last step (the uniform-t grid at 10 steps: :math:`r = 0.21`). At
    :math:`r \ge 1/2` the weights stay within 1.5 times the uniform grid's. Measured on the 8gaussians
    oracle's exact KL (``docs/measurements/samplers.md``): the threshold 1/2 removes the 10-step jump of
    the uniform grid and changes no step of the uniform log-SNR or EDM grids; 0.7 gains a little at
    10-15 steps on the quadratic grid but loses at 50 steps on the uniform one, where the steps before the
    last still grow by ratios 0.6-0.75. On any grid whose neighbouring steps tend to equal length the rule
    stops acting as the steps shrink, so the order of convergence is the solver's.

    Parameters
    ----------
    order : int
        The solver's order, 1, 2 or 3.
    i : int
        The step, 0..K-1.
    h : (K,) array
        The run's steps in ``half_log_snr``, all > 0.

    Returns
    -------
    int
        The order of step ``i``, 1..``order``.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.sample.exp_integrator import step_order
    >>> [step_order(3, i, np.ones(6)) for i in range(6)]
    [1, 2, 3, 3, 2, 1]
    >>> [step_order(3, i, np.ones(12)) for i in range(12)]
    [1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]

    A step more than twice as long as the one before it runs at first order:

    >>> [step_order(2, i, np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.5, 1.0])) for i in range(11)]
    [1, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2]
    """
    K = h.size
    k = min(order, i + 1)
    if K < LOWER_ORDER_FINAL_BELOW:
        k = min(k, K - i)
    # h[j - 1] < MIN_STEP_RATIO h[j] for a j of the stencil: r_j = h_{j-1} / h_j too small to extrapolate over
    while k > 1 and any(h[i - j - 1] < MIN_STEP_RATIO * h[i - j] for j in range(k - 1)):
        k -= 1
    return k
