r"""Inpainting by replacement: the known coordinates follow the forward process, the rest the reverse chain.

Song et al. 2021 (App. I.2, "imputation"; also Sohl-Dickstein et al. 2015 and Ho et al.'s (Video Diffusion Models, 2022)
"replacement" method for video): at every reverse step the unknown coordinates take the ancestral DDPM step
of the whole state (Ho et al. 2020, Algorithm 2), while the known coordinates are redrawn from the forward
process at the new noise level,

.. math::
    x_{t-1}^{\text{known}} \sim q(x_{t-1} \mid y) = \mathcal N\big(\sqrt{\bar\alpha_{t-1}}\,y,\ (1 - \bar\alpha_{t-1}) I\big),
    \qquad
    x_{t-1}^{\text{unknown}} \sim p_\theta(x_{t-1} \mid x_t),

    x_{t-1} = m \odot x_{t-1}^{\text{known}} + (1 - m) \odot x_{t-1}^{\text{unknown}}

(Lugmayr et al. 2022, Eqs. 8-10). It is not a sampler of :math:`p(x^{\text{unknown}} \mid y)`: the
known coordinates of :math:`x_t` are drawn from :math:`q(x_t^{\text{known}} \mid y)` independently of the
unknown ones, whereas under the true joint they are correlated with them, so the unknown coordinates are
steered by noise that does not agree with them. On a Gaussian the error is a closed form
(``tests/test_edit_replacement.py``); on the 2D sets it is measured against the exact conditional
(``docs/measurements/inpainting.md``). RePaint (:mod:`npdiff.edit.repaint`) resamples to reduce it.

With ``sampler="ddim"`` the unknown coordinates take DDIM's deterministic step instead (Song, Meng & Ermon 2021,
Eq. 12 with eta = 0; :func:`npdiff.sample.ancestral.ddim_chain_step`), so that fewer steps do; the known ones are
still fresh draws of :math:`q(x_{t-1} \mid y)`, the only noise after the start.
"""

from __future__ import annotations

import numpy as np

from .._check import one_of
from .._progress import progress as bar
from ..denoiser import Denoiser
from ..forward import q_sample_discrete_unchecked
from ..reverse import p_mean_log_variance_unchecked, p_mean_variance_unchecked
from ..reverse_variance import ReverseVariance
from ..sample._checks import check_finite
from ..sample._common import SampleResult
from ..sample.ancestral import ddim_chain_step
from ..threads import blas_threads
from ._validate import check_inpainting
from .mask import keep_known

__all__ = ["REPLACEMENT_SAMPLERS", "replacement_sample", "replacement_step_unchecked"]

#: the reverse steps the unknown coordinates take: ancestral DDPM, or DDIM with eta = 0
REPLACEMENT_SAMPLERS = ("ddpm", "ddim")


@blas_threads()
def replacement_sample(
    denoiser: Denoiser,
    known: np.ndarray,
    mask: np.ndarray,
    n: int | None,
    rng: np.random.Generator | int,
    *,
    steps: int = 250,
    T: int = 1000,
    variance: str = "large",
    sampler: str = "ddpm",
    x_T: np.ndarray | None = None,
    progress: bool = False,
) -> SampleResult:
    r"""Inpaint by replacement (Song et al. 2021, App. I.2) on the ancestral DDPM chain, or on DDIM's.

    .. math::
        x_{t-1} = m \odot \big(\sqrt{\bar\alpha_{t-1}}\,y + \sqrt{1-\bar\alpha_{t-1}}\,z'\big)
                + (1 - m) \odot \big(\tilde\mu_t(x_t, \hat x_0) + \sqrt{\Sigma_t}\,z\big)

    (Lugmayr et al. 2022, Eqs. 8-10); at the last step the mean is taken (no noise) and the known
    coordinates are y exactly. With ``sampler="ddim"`` the second line is DDIM's deterministic step
    :math:`\sqrt{\bar\alpha_{t-1}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t-1}}\,\epsilon_\theta(x_t, t)`
    (Song, Meng & Ermon 2021, Eq. 12, eta = 0).

    Parameters
    ----------
    denoiser : Denoiser
        Follows the denoiser protocol; its ``schedule`` defines the chain.
    known : (D,) or (N, D) array
        The known values y (read where ``mask`` is True; finite everywhere).
    mask : (D,) or (N, D) array of bools or 0/1
        True where a coordinate is known.
    n : int or None
        The number of samples N (None when ``known``, ``mask`` or ``x_T`` has N rows).
    rng : np.random.Generator or int
        The only source of randomness.
    steps : int
        The number of reverse steps, 1..T, one denoiser evaluation each (the respaced chain).
    T : int
        The length of the underlying chain.
    variance : str
        ``"large"`` (beta) or ``"small"`` (beta_tilde), as in :func:`npdiff.sample.ddpm_sample` (``"ddpm"`` only).
    sampler : str
        ``"ddpm"`` (ancestral) or ``"ddim"`` (deterministic, eta = 0) for the unknown coordinates.
    x_T : (N, D) array or None
        Starting noise; drawn from N(0, I) when None.
    progress : bool
        A bar on stderr, one step a tick.

    Returns
    -------
    SampleResult
        ``x`` (N, D), the known coordinates equal to ``known``, and ``nfe == steps``.

    Examples
    --------
    Correlation 0.9 and :math:`x_1 = 1` known: the conditional mean of :math:`x_2` is 0.9; replacement's is
    0.6, its known bias (``tests/test_edit_replacement.py`` derives it in closed form):

    >>> import numpy as np
    >>> from npdiff.analytic import GaussianData
    >>> data = GaussianData(np.zeros(2), np.array([[1.0, 0.9], [0.9, 1.0]]))
    >>> res = replacement_sample(data, [1.0, 0.0], [True, False], 2000, np.random.default_rng(0), steps=100)
    >>> print(res.x[0, 0], res.nfe, round(float(res.x[:, 1].mean()), 1))
    1.0 100 0.6
    """
    denoiser, y, m, x, rng, chain, reverse_var = check_inpainting(denoiser, known, mask, n, rng, x_T, steps, T, variance)
    ddim = one_of(sampler, "sampler", REPLACEMENT_SAMPLERS) == "ddim"
    for i in bar(range(chain.T, 0, -1), total=chain.T, desc="replacement", enabled=progress):
        x = replacement_step_unchecked(denoiser, x, i, y, m, reverse_var, rng, ddim=ddim)
    return SampleResult(x=x, nfe=chain.T)


def replacement_step_unchecked(denoiser: Denoiser, x: np.ndarray, i: int, known: np.ndarray, mask: np.ndarray,
                               reverse_var: ReverseVariance, rng: np.random.Generator, *, ddim: bool = False) -> np.ndarray:
    r"""One replacement step from chain index i to i - 1 (Lugmayr et al. 2022, Eqs. 8-10), on checked arguments.

    The unknown coordinates take the reverse step :math:`p_\theta(x_{i-1} \mid x_i)` (its noise drawn first),
    the known ones a fresh draw of :math:`q(x_{i-1} \mid y)` (drawn second); at i = 1 both are their means.
    RePaint (:mod:`npdiff.edit.repaint`) takes exactly this step, so the two agree draw for draw when RePaint
    does not resample.

    Parameters
    ----------
    denoiser : Denoiser
        Checked at the caller's door.
    x : (N, D) array
        The state at chain index i.
    i : int
        The chain index, 1..T of ``reverse_var.chain``.
    known : (N, D) array
        The known values.
    mask : (N, D) bool array
        True where known.
    reverse_var : ReverseVariance
        The chain and its reverse variance.
    rng : np.random.Generator
        The noise.
    ddim : bool
        The unknown coordinates take DDIM's deterministic step (eta = 0) instead of the ancestral one.

    Returns
    -------
    (N, D) array
        The state at chain index i - 1.
    """
    chain = reverse_var.chain
    if ddim:
        _, _, x0_hat = p_mean_variance_unchecked(denoiser, x, i, chain)
        x = ddim_chain_step(x, x0_hat, chain, i)  # (N, D) Song, Meng & Ermon 2021, Eq. 12, eta = 0
        noised = q_sample_discrete_unchecked(known, i - 1, rng.standard_normal(x.shape), chain) if i > 1 else known
    elif i > 1:
        mean, log_var, _, _ = p_mean_log_variance_unchecked(denoiser, x, i, reverse_var)
        x = mean + np.exp(0.5 * log_var)[:, None] * rng.standard_normal(x.shape)  # (N, D) Ho et al. 2020, Alg. 2
        noised = q_sample_discrete_unchecked(known, i - 1, rng.standard_normal(x.shape), chain)  # q(x_{i-1} | y)
    else:  # the last step: the mean, and the known values themselves (alpha_bar_0 = 1)
        x, _, _ = p_mean_variance_unchecked(denoiser, x, i, chain)
        noised = known
    return check_finite(keep_known(x, noised, mask), f"at chain step {i}")
