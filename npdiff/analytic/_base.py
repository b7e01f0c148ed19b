r"""What every analytic oracle shares: time handling, Tweedie's formula and the denoiser protocol.

An oracle knows its noised marginal :math:`q_t` in closed form. Subclasses implement one
private method, ``_evaluate(x, sqrt_ab, alpha_bar, sigma2)``, returning for a checked batch

* ``log_prob`` (B,): :math:`\log q_t(x)`,
* ``score`` (B, D): :math:`\nabla_x \log q_t(x)`,
* ``laplacian`` (B,): :math:`\Delta_x \log q_t(x) = \mathrm{tr}\,\nabla_x^2 \log q_t(x)`,

and everything public follows from these three:

.. math::
    \epsilon(x, t) = -\sigma(t)\,\nabla\log q_t(x),\qquad
    \mathrm{tr}\frac{\partial\epsilon}{\partial x} = -\sigma(t)\,\Delta\log q_t(x),\qquad
    \mathbb E[x_0 \mid x_t = x] = \frac{x + \sigma^2(t)\,\nabla\log q_t(x)}{\sqrt{\bar\alpha(t)}}

(the first is the noise-prediction parameterization, Ho et al. 2020, Eq. 11 with
Song et al. 2021, Eq. 17; the last is Tweedie's formula, Efron 2011, Eq. 2.8, for
:math:`x_t = \sqrt{\bar\alpha}\,x_0 + \sigma\,\epsilon`).

Where :math:`\sigma(t) = 0` (t = 0 for ``vp_linear`` and ``cosine``) the marginal is the
clean data distribution. Subclasses whose clean density is smooth (Gaussian data) define
everything there; the others set ``_needs_noise`` and raise a ``ValueError`` instead of
returning an infinite or undefined number. Tweedie's ``x0_mean`` also raises where
:math:`\bar\alpha(t) < 10^{-16}` (``cosine`` beyond its ``t_max``), where :math:`x_t` carries
no information about :math:`x_0` that float64 can resolve.
"""

from __future__ import annotations

import numpy as np

from .._check import as_batch, as_times
from ..schedule import Schedule

# Below this, x + sigma^2 score (of order 1e-16 |x| in rounding) divided by sqrt(alpha_bar)
# no longer gives E[x0|x_t] to 1e-8 (cosine reaches it only beyond its t_max).
_MIN_ALPHA_BAR_TWEEDIE = 1e-16


class AnalyticOracle:
    r"""Base class of the closed-form oracles (see the module docstring).

    Attributes
    ----------
    schedule : Schedule
        The forward process the data diffuses under.
    dim : int
        The data dimension D.
    """

    schedule: Schedule
    dim: int
    #: True when the clean distribution has no smooth density (Dirac masses, boxes), so
    #: score, eps and divergence are undefined where sigma(t) = 0.
    _needs_noise: bool = False
    #: True when even log_prob is undefined where sigma(t) = 0 (Dirac masses).
    _log_prob_needs_noise: bool = False

    # -- to be provided by subclasses --------------------------------------------------
    def _evaluate(
        self, x: np.ndarray, sqrt_ab: np.ndarray, alpha_bar: np.ndarray, sigma2: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------
    def _levels(self, x: object, t: object, what: str, *, needs_noise: bool):
        x = as_batch(x, "x", dim=self.dim)
        t = as_times(t, x.shape[0])
        log_ab = self.schedule.log_alpha_bar(t)  # (B,)
        alpha_bar = np.exp(log_ab)
        sigma2 = -np.expm1(log_ab)  # 1 - alpha_bar without cancellation at small t
        if needs_noise and np.any(sigma2 <= 0.0):
            bad = t[sigma2 <= 0.0][0]
            raise ValueError(
                f"{type(self).__name__}.{what} is undefined at t where sigma(t) = 0 (got t = {bad}): "
                f"the clean distribution has no smooth density there; use t > 0"
            )
        return x, np.exp(0.5 * log_ab), alpha_bar, sigma2

    def log_prob(self, x: object, t: object) -> np.ndarray:
        r"""Log-density :math:`\log q_t(x)` of the noised marginal.

        Parameters
        ----------
        x : (B, D) points. t : float or (B,) times in [0, 1].

        Returns
        -------
        (B,) log-densities in nats.
        """
        x, sqrt_ab, alpha_bar, sigma2 = self._levels(x, t, "log_prob", needs_noise=self._log_prob_needs_noise)
        return self._evaluate(x, sqrt_ab, alpha_bar, sigma2)[0]

    def score(self, x: object, t: object) -> np.ndarray:
        r"""Score :math:`\nabla_x \log q_t(x)`, (B, D)."""
        x, sqrt_ab, alpha_bar, sigma2 = self._levels(x, t, "score", needs_noise=self._needs_noise)
        return self._evaluate(x, sqrt_ab, alpha_bar, sigma2)[1]

    def x0_mean(self, x: object, t: object) -> np.ndarray:
        r"""The optimal denoiser :math:`\mathbb E[x_0 \mid x_t = x]` by Tweedie's formula, (B, D)."""
        x, sqrt_ab, alpha_bar, sigma2 = self._levels(x, t, "x0_mean", needs_noise=self._needs_noise)
        if np.any(alpha_bar < _MIN_ALPHA_BAR_TWEEDIE):
            raise ValueError(
                f"{type(self).__name__}.x0_mean by Tweedie's formula is meaningless where alpha_bar(t) < "
                f"{_MIN_ALPHA_BAR_TWEEDIE:g} (got {alpha_bar.min():.3g}): it would divide rounding error by "
                f"sqrt(alpha_bar); use t <= schedule.t_max = {self.schedule.t_max}"
            )
        score = self._evaluate(x, sqrt_ab, alpha_bar, sigma2)[1]
        return (x + sigma2[:, None] * score) / sqrt_ab[:, None]

    def eps(self, x: object, t: object) -> np.ndarray:
        r"""Optimal noise prediction :math:`\epsilon(x, t) = -\sigma(t)\nabla\log q_t(x)`, (B, D)."""
        x, sqrt_ab, alpha_bar, sigma2 = self._levels(x, t, "eps", needs_noise=self._needs_noise)
        score = self._evaluate(x, sqrt_ab, alpha_bar, sigma2)[1]
        return -np.sqrt(sigma2)[:, None] * score

    def eps_and_divergence(self, x: object, t: object) -> tuple[np.ndarray, np.ndarray]:
        r"""``eps`` and its exact divergence :math:`\mathrm{tr}\,\partial\epsilon/\partial x = -\sigma\,\Delta\log q_t`.

        Returns
        -------
        eps : (B, D). divergence : (B,).
        """
        x, sqrt_ab, alpha_bar, sigma2 = self._levels(x, t, "eps_and_divergence", needs_noise=self._needs_noise)
        _, score, laplacian = self._evaluate(x, sqrt_ab, alpha_bar, sigma2)
        sigma = np.sqrt(sigma2)
        return -sigma[:, None] * score, -sigma * laplacian
