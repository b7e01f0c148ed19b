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

:func:`step_order` is the order a multistep solver (DPM-Solver++, UniPC) uses at each step of a run.

Both are the formula alone: the solvers call them inside their loops on arrays they checked at their door.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LOWER_ORDER_FINAL_BELOW", "ddim_step", "step_order"]

#: multistep solvers of fewer steps lower their order on the last steps too (DPM-Solver's reference code's
#: ``lower_order_final``, which it applies "for steps < 10" only)
LOWER_ORDER_FINAL_BELOW = 10


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


def step_order(order: int, i: int, K: int) -> int:
    r"""The order of step ``i`` (0-based) of a ``K``-step run of a multistep solver of order ``order``.

    The first steps run at lower order until enough predictions are stored (``min(order, i + 1)``);
    a run of fewer than :data:`LOWER_ORDER_FINAL_BELOW` steps also lowers the order of its last steps
    (``min(order, K - i)``), as DPM-Solver's reference code does (it steadies very short runs).

    Parameters
    ----------
    order : int
        The solver's order, 1, 2 or 3.
    i : int
        The step, 0..K-1.
    K : int
        The number of steps of the run.

    Returns
    -------
    int
        The order of step ``i``, 1..``order``.

    Examples
    --------
    >>> from npdiff.sample.exp_integrator import step_order
    >>> [step_order(3, i, 6) for i in range(6)]
    [1, 2, 3, 3, 2, 1]
    >>> [step_order(3, i, 12) for i in range(12)]
    [1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]
    """
    if K < LOWER_ORDER_FINAL_BELOW:
        return min(order, i + 1, K - i)
    return min(order, i + 1)
