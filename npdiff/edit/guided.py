r"""Inpainting by guidance through the denoiser's prediction of x_0: DPS and reconstruction guidance.

Both follow the gradient of the data fit of the predicted clean data,

.. math::
    L(x_t) = \big\lVert m \odot \big(y - \hat x_0(x_t)\big)\big\rVert^2,\qquad
    \hat x_0(x_t) = \frac{x_t - \sigma_t\,\epsilon_\theta(x_t, t)}{\alpha_t}

(Ho et al. 2020, Eq. 15; :math:`\alpha_t = \sqrt{\bar\alpha_t}`, :math:`\sigma_t = \sqrt{1 - \bar\alpha_t}`),
whose gradient needs the denoiser's input-Jacobian only as a vector-Jacobian product,

.. math::
    \nabla_{x_t} L = -\frac{2}{\alpha_t}\Big(r - \sigma_t\,\big(\partial\epsilon_\theta/\partial x_t\big)^{\top} r\Big),
    \qquad r = m \odot (y - \hat x_0),

a call of the protocol's optional ``eps_vjp`` (:func:`npdiff.denoiser.call_eps_vjp`) with the cotangent r,
which needs :math:`\epsilon_\theta` first: two denoiser calls a step, counted as two evaluations in ``nfe``
(as an autograd framework's forward pass and then its backward pass, which costs about two passes more).

* :func:`dps_sample`, diffusion posterior sampling (Chung et al. 2023, Algorithm 1, with the step
  :math:`\zeta_i = \zeta / \lVert y - A\hat x_0\rVert` of their App. C.2): the ancestral step, then a step
  down the gradient. It never pastes the known values: they come out as close as the guidance brings them.
* :func:`reconstruction_guidance_sample`, Ho et al. (Video Diffusion Models, 2022, Eq. 7): the predicted clean
  data corrected by :math:`\tilde x_0 = \hat x_0 - \tfrac{w_r\alpha_t}{2}\nabla_{x_t} L`, the ancestral step
  taken with :math:`\tilde x_0`, and the known coordinates replaced as in :mod:`npdiff.edit.replacement`.
"""

from __future__ import annotations

import numpy as np

from .._check import InputOverflowError
from .._progress import progress as bar
from ..denoiser import Denoiser, call_eps, call_eps_vjp
from ..forward import q_posterior_discrete_unchecked, q_sample_discrete_unchecked
from ..parameterization import x0_from_eps
from ..reverse import call_time
from ..sample._checks import check_finite
from ..sample._common import SampleResult
from ..threads import blas_threads
from ._validate import as_scale, check_data_fit, check_inpainting, check_vjp
from .mask import keep_known

__all__ = ["data_fit_gradient", "data_fit_gradient_unchecked", "dps_sample", "reconstruction_guidance_sample"]


def data_fit_gradient(denoiser: Denoiser, x: object, t: object, known: object, mask: object
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The predicted noise, the predicted clean data and :math:`\nabla_{x_t}\lVert m\odot(y - \hat x_0(x_t))\rVert^2`.

    .. math::
        \nabla_{x_t} L = -\frac{2}{\alpha_t}\big(r - \sigma_t J^\top r\big),\qquad r = m \odot (y - \hat x_0),
        \quad J = \partial\epsilon_\theta / \partial x_t

    (the chain rule through Ho et al. 2020, Eq. 15; Chung et al. 2023, Eq. 16 with A the mask).

    Parameters
    ----------
    denoiser : Denoiser
        A denoiser with the optional ``eps_vjp`` (:func:`npdiff.denoiser.has_eps_vjp`).
    x : (B, D) array
        The states :math:`x_t`.
    t : float or (B,) array
        Their times, in (0, ``schedule.t_max``] (where :math:`\sigma_t > 0` and :math:`\alpha_t > 0`).
    known : (D,) or (B, D) array
        The known values y.
    mask : (D,) or (B, D) array of bools or 0/1
        True where a coordinate is known.

    Returns
    -------
    eps : (B, D) array
        :math:`\epsilon_\theta(x_t, t)`.
    x0_hat : (B, D) array
        :math:`\hat x_0(x_t)`.
    grad : (B, D) array
        :math:`\nabla_{x_t} L`.

    Examples
    --------
    On Gaussian data :math:`\hat x_0` is linear in :math:`x_t`, :math:`\hat x_0 = \alpha_t C\Sigma_t^{-1} x_t`
    for a zero mean, so the gradient is :math:`-2\alpha_t\Sigma_t^{-1}C\,r`:

    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> data = GaussianData(np.zeros(2), np.array([[1.0, 0.5], [0.5, 2.0]]))
    >>> x, t = np.array([[0.3, -0.7]]), 0.4
    >>> _, x0_hat, grad = data_fit_gradient(data, x, t, [1.0, 0.0], [True, False])
    >>> a2 = float(data.schedule.alpha_bar(t)); cov_t = a2 * data.cov + (1 - a2) * np.eye(2)
    >>> r = np.array([[1.0 - x0_hat[0, 0], 0.0]])
    >>> bool(np.allclose(grad, -2 * np.sqrt(a2) * r @ data.cov @ np.linalg.inv(cov_t)))
    True
    """
    x, t, y, m = check_data_fit(denoiser, x, t, known, mask)
    return data_fit_gradient_unchecked(denoiser, x, t, y, m)


def data_fit_gradient_unchecked(denoiser: Denoiser, x: np.ndarray, t: float | np.ndarray, known: np.ndarray,
                                mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r""":func:`data_fit_gradient` on checked arguments (x, known (B, D), mask (B, D) bool, t a float or (B,))."""
    schedule = denoiser.schedule
    alpha = np.reshape(np.exp(0.5 * schedule.log_alpha_bar(t)), (-1, 1))  # (B, 1) or (1, 1)
    sigma = np.reshape(schedule.sigma(t), (-1, 1))  # the schedule's expm1 form: no cancellation at small t
    # the cotangent r needs eps first: two calls, as an autograd framework's forward pass and then its backward
    x0_hat = x0_from_eps(x, call_eps(denoiser, x, t), alpha, sigma)  # (B, D) Ho et al. 2020, Eq. 15
    r = np.where(mask, known - x0_hat, 0.0)  # (B, D)
    eps, jt_r = call_eps_vjp(denoiser, x, t, r)  # (B, D), (B, D) J^T r
    return eps, x0_hat, -2.0 / alpha * (r - sigma * jt_r)


@blas_threads()
def dps_sample(
    denoiser: Denoiser,
    known: np.ndarray,
    mask: np.ndarray,
    n: int | None,
    rng: np.random.Generator | int,
    *,
    steps: int = 250,
    scale: float = 1.0,
    T: int = 1000,
    variance: str = "large",
    x_T: np.ndarray | None = None,
    progress: bool = False,
) -> SampleResult:
    r"""Inpaint by diffusion posterior sampling (Chung et al. 2023, Algorithm 1) on the ancestral DDPM chain.

    .. math::
        x'_{i-1} = \tilde\mu_i(x_i, \hat x_0) + \sqrt{\Sigma_i}\,z,\qquad
        x_{i-1} = x'_{i-1} - \zeta_i\,\nabla_{x_i}\big\lVert m\odot(y - \hat x_0(x_i))\big\rVert^2,\qquad
        \zeta_i = \frac{\zeta}{\lVert m\odot(y - \hat x_0(x_i))\rVert}

    (Chung et al. 2023, Alg. 1, lines 4-7, with :math:`A = \mathrm{diag}(m)` and the normalized step of their
    App. C.2; per sample; no step where the residual is exactly zero). At i = 1 the mean is taken, then the
    gradient step. The gradient is :func:`data_fit_gradient`.

    Parameters
    ----------
    denoiser : Denoiser
        A denoiser with the optional ``eps_vjp``; its ``schedule`` defines the chain.
    known : (D,) or (N, D) array
        The known values y.
    mask : (D,) or (N, D) array of bools or 0/1
        True where a coordinate is known.
    n : int or None
        The number of samples N (None when ``known``, ``mask`` or ``x_T`` has N rows).
    rng : np.random.Generator or int
        The only source of randomness.
    steps : int
        The steps of the respaced chain, 1..T; two denoiser calls each.
    scale : float
        :math:`\zeta \ge 0` (0: plain DDPM, the known values ignored).
    T : int
        The length of the underlying chain.
    variance : str
        ``"large"`` or ``"small"``.
    x_T : (N, D) array or None
        Starting noise; drawn from N(0, I) when None.
    progress : bool
        A bar on stderr, one step a tick.

    Returns
    -------
    SampleResult
        ``x`` (N, D) (the known coordinates as the guidance left them) and ``nfe == 2 * steps``.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> data = GaussianData(np.zeros(2), np.array([[1.0, 0.9], [0.9, 1.0]]))
    >>> res = dps_sample(data, [1.0, 0.0], [True, False], 2000, np.random.default_rng(0), steps=100, scale=0.1)
    >>> print(res.nfe, round(float(res.x[:, 0].mean()), 1))
    200 1.0
    """
    denoiser, y, m, x, rng, chain, reverse_var = check_inpainting(denoiser, known, mask, n, rng, x_T, steps, T, variance)
    scale = as_scale(scale, "scale")
    check_vjp(denoiser)
    for i in bar(range(chain.T, 0, -1), total=chain.T, desc="dps", enabled=progress):
        # a scale too large for the data throws the chain out of range: check_finite names the step, no warning
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                _, x0_hat, grad = data_fit_gradient_unchecked(denoiser, x, call_time(chain, i, denoiser.schedule), y, m)
            except InputOverflowError as err:  # the previous step's pull left the denoiser's range
                raise FloatingPointError(f"the chain left the denoiser's range at chain step {i}: scale = {scale:g} "
                                         "is too large for these data") from err
            mean = q_posterior_discrete_unchecked(x0_hat, x, i, chain)[0]  # (N, D) Ho et al. 2020, Eq. 7
            if i > 1:
                mean = mean + np.exp(0.5 * reverse_var.log_variance_at(i, None, x.shape[1])) * rng.standard_normal(x.shape)
            norm = np.sqrt(np.sum(np.where(m, y - x0_hat, 0.0) ** 2, axis=1, keepdims=True))  # (N, 1)
            zeta = np.divide(scale, norm, out=np.zeros_like(norm), where=norm > 0.0)  # Chung et al. 2023, App. C.2
            x = check_finite(mean - zeta * grad, f"at chain step {i}")
    return SampleResult(x=x, nfe=2 * chain.T)


@blas_threads()
def reconstruction_guidance_sample(
    denoiser: Denoiser,
    known: np.ndarray,
    mask: np.ndarray,
    n: int | None,
    rng: np.random.Generator | int,
    *,
    steps: int = 250,
    weight: float = 1.0,
    T: int = 1000,
    variance: str = "large",
    x_T: np.ndarray | None = None,
    progress: bool = False,
) -> SampleResult:
    r"""Inpaint by reconstruction guidance (Ho et al., Video Diffusion Models, 2022, Eq. 7) with replacement.

    .. math::
        \tilde x_0 = \hat x_0 - \frac{w_r\,\alpha_i}{2}\,\nabla_{x_i}\big\lVert m\odot(y - \hat x_0(x_i))\big\rVert^2,
        \qquad x_{i-1} = m \odot x_{i-1}^{\text{known}} + (1 - m)\odot\big(\tilde\mu_i(x_i, \tilde x_0) + \sqrt{\Sigma_i}\,z\big)

    with :math:`x_{i-1}^{\text{known}} \sim q(x_{i-1} \mid y)` as in replacement (Lugmayr et al. 2022, Eq. 8);
    ``weight = 0`` is :func:`~npdiff.edit.replacement.replacement_sample` (with two calls a step).

    Parameters
    ----------
    denoiser : Denoiser
        A denoiser with the optional ``eps_vjp``; its ``schedule`` defines the chain.
    known : (D,) or (N, D) array
        The known values y.
    mask : (D,) or (N, D) array of bools or 0/1
        True where a coordinate is known.
    n : int or None
        The number of samples N (None when ``known``, ``mask`` or ``x_T`` has N rows).
    rng : np.random.Generator or int
        The only source of randomness.
    steps : int
        The steps of the respaced chain, 1..T; two denoiser calls each.
    weight : float
        :math:`w_r \ge 0`.
    T : int
        The length of the underlying chain.
    variance : str
        ``"large"`` or ``"small"``.
    x_T : (N, D) array or None
        Starting noise; drawn from N(0, I) when None.
    progress : bool
        A bar on stderr, one step a tick.

    Returns
    -------
    SampleResult
        ``x`` (N, D), the known coordinates equal to ``known``, and ``nfe == 2 * steps``.

    Examples
    --------
    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> data = GaussianData(np.zeros(2), np.array([[1.0, 0.9], [0.9, 1.0]]))
    >>> res = reconstruction_guidance_sample(data, [1.0, 0.0], [True, False], 2000, np.random.default_rng(0),
    ...                                      steps=100, weight=1.0)
    >>> print(res.nfe, res.x[0, 0], round(float(res.x[:, 1].mean()), 1))
    200 1.0 0.7
    """
    denoiser, y, m, x, rng, chain, reverse_var = check_inpainting(denoiser, known, mask, n, rng, x_T, steps, T, variance)
    weight = as_scale(weight, "weight")
    check_vjp(denoiser)
    for i in bar(range(chain.T, 0, -1), total=chain.T, desc="reconstruction", enabled=progress):
        _, x0_hat, grad = data_fit_gradient_unchecked(denoiser, x, call_time(chain, i, denoiser.schedule), y, m)
        x0_tilde = x0_hat - 0.5 * weight * np.sqrt(chain.alpha_bar[i]) * grad  # Ho et al., Video Diffusion Models, Eq. 7
        x = q_posterior_discrete_unchecked(x0_tilde, x, i, chain)[0]  # (N, D) Ho et al. 2020, Eq. 7
        if i > 1:
            x = x + np.exp(0.5 * reverse_var.log_variance_at(i, None, x.shape[1])) * rng.standard_normal(x.shape)
            noised = q_sample_discrete_unchecked(y, i - 1, rng.standard_normal(x.shape), chain)  # q(x_{i-1} | y)
        else:
            noised = y
        x = check_finite(keep_known(x, noised, m), f"at chain step {i}")
    return SampleResult(x=x, nfe=2 * chain.T)

