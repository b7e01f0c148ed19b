r"""Uniform densities on axis-aligned boxes, optionally blurred by isotropic Gaussian noise.

Data :math:`x_0 = u + s\,z` with :math:`u` uniform on box k (chosen with probability
:math:`w_k`) and :math:`z \sim \mathcal N(0, I)`. The forward process scales the box by
:math:`\sqrt{\bar\alpha}` and adds variance, so component k of :math:`q_t` is the product over
coordinates of a uniform on :math:`[\sqrt{\bar\alpha}\,l_{kd}, \sqrt{\bar\alpha}\,h_{kd}]`
convolved with :math:`\mathcal N(0, v)`, :math:`v = \bar\alpha s^2 + \sigma^2`:

.. math::
    f_{kd}(x_d) = \frac{\Phi(a) - \Phi(b)}{\sqrt{\bar\alpha}(h_{kd} - l_{kd})},\qquad
    a = \frac{x_d - \sqrt{\bar\alpha}\,l_{kd}}{\sqrt v},\quad b = \frac{x_d - \sqrt{\bar\alpha}\,h_{kd}}{\sqrt v},

    (\log f)' = \frac{\phi(a) - \phi(b)}{\sqrt v\,(\Phi(a) - \Phi(b))},\qquad
    (\log f)'' = \frac{-a\,\phi(a) + b\,\phi(b)}{v\,(\Phi(a) - \Phi(b))} - \big((\log f)'\big)^2 .

The mixture over boxes is combined as in :mod:`npdiff.analytic._kernels` (Numba kernel
``_box_numba`` and its twin), with :math:`\log(\Phi(a) - \Phi(b))` evaluated in log space so
that points far from every box keep a finite log-density and score.

Far from every box (:math:`z = ` distance / blur std :math:`\gg 1`) the two terms of
:math:`(\log f)''` are each of order :math:`z^2/v` while their difference is about
:math:`-1/v`: the Laplacian (the divergence) then keeps a relative precision of roughly
:math:`z^4 \cdot 10^{-16}` (1e-9 at z = 50); log-density and score are unaffected.

With ``noise_std = 0`` the clean density (t with sigma(t) = 0) is piecewise constant:
``log_prob`` is finite inside the boxes and ``-inf`` outside, and ``score``, ``eps``,
``x0_mean`` and the divergence raise ``ValueError`` there.
"""

from __future__ import annotations

import numpy as np

from .._check import as_float_array, as_generator, positive_int, real_scalar
from .._validate import check_schedule
from ..schedule import Schedule, vp_linear
from ._base import AnalyticOracle
from ._kernels import box_eval, box_hvp, gmm_eval, gmm_hvp
from ._validate import check_weights

_COLLAPSED_WIDTH = 1e-6


class BoxMixture(AnalyticOracle):
    r"""The oracle for a mixture of uniform boxes plus isotropic Gaussian noise.

    Parameters
    ----------
    weights : (K,) non-negative, summing to 1.
    lows : (K, D) array
        The boxes' lower corners.
    highs : (K, D) array
        Their upper corners, ``lows < highs`` elementwise.
    noise_std : float >= 0, the std s of the Gaussian blur of the clean data.
    schedule : Schedule or None (``vp_linear()``).
    labels : (K,) ints 0..C-1, the class of each box, or None (a labelled mixture is a
        conditional denoiser: :mod:`npdiff.analytic._base`, "Labels").
    """

    def __init__(self, weights: object, lows: object, highs: object, noise_std: float = 0.0,
                 schedule: Schedule | None = None, labels: object = None) -> None:
        w = check_weights(weights)
        lo = as_float_array(lows, "lows")
        hi = as_float_array(highs, "highs")
        if lo.ndim != 2 or lo.shape[0] != w.size or lo.shape[1] == 0:
            raise ValueError(f"lows must have shape (K, D) = ({w.size}, D) to match weights, got shape {lo.shape}")
        if hi.shape != lo.shape:
            raise ValueError(f"highs must have the shape of lows {lo.shape}, got shape {hi.shape}")
        if np.any(hi <= lo):
            raise ValueError(f"highs must exceed lows in every coordinate, got min(highs - lows) = {np.min(hi - lo)}")
        self.noise_std = real_scalar(noise_std, "noise_std", lo=0.0)
        self.schedule = check_schedule(schedule, default=vp_linear())
        self.dim = lo.shape[1]
        keep = w > 0.0
        self.weights = w[keep]
        self.lows = np.ascontiguousarray(lo[keep])  # (K, D)
        self.highs = np.ascontiguousarray(hi[keep])
        self._log_c = np.log(self.weights) - np.sum(np.log(self.highs - self.lows), axis=1)  # (K,)
        self._needs_noise = self.noise_std == 0.0
        self._max_width = float(np.max(self.highs - self.lows))
        self._set_labels(labels, self.weights, keep)

    def _restrict(self, mask):
        w = self.weights[mask]
        return BoxMixture(w / w.sum(), self.lows[mask], self.highs[mask], self.noise_std, self.schedule)

    def _evaluate(self, x, sqrt_ab, alpha_bar, sigma2):
        var = alpha_bar * self.noise_std**2 + sigma2  # (B,)
        clean = var <= 0.0
        # boxes shrunk far below the blur (alpha_bar -> 0, cosine beyond t_max): Phi(a) - Phi(b)
        # would cancel; a box of relative width eps is then a point mass at its centre up to
        # a relative O(eps^2) < 1e-12
        with np.errstate(divide="ignore"):
            collapsed = ~clean & (sqrt_ab * self._max_width < _COLLAPSED_WIDTH * np.sqrt(var))
        if not np.any(clean | collapsed):
            return box_eval(x, sqrt_ab, var, self._log_c, self.lows, self.highs)
        B, D = x.shape
        log_prob = np.empty(B)
        score = np.full((B, D), np.nan)  # undefined without noise; guarded by _needs_noise
        laplacian = np.full(B, np.nan)
        if np.any(collapsed):
            c = collapsed
            centers = 0.5 * (self.lows + self.highs)
            log_prob[c], score[c], laplacian[c] = gmm_eval(
                x[c], sqrt_ab[c], alpha_bar[c], var[c], np.log(self.weights), centers,
                np.zeros((1, 1, 1)), np.zeros_like(centers), False)
        inside = np.all((x[clean, None, :] >= self.lows) & (x[clean, None, :] < self.highs), axis=2)  # (c, K)
        density = inside @ (self.weights / np.prod(self.highs - self.lows, axis=1))  # (c,)
        with np.errstate(divide="ignore"):
            log_prob[clean] = np.log(density)
        noisy = ~clean & ~collapsed
        if np.any(noisy):
            out = box_eval(x[noisy], sqrt_ab[noisy], var[noisy], self._log_c, self.lows, self.highs)
            log_prob[noisy], score[noisy], laplacian[noisy] = out
        return log_prob, score, laplacian

    def _hvp(self, x, sqrt_ab, alpha_bar, sigma2, v):
        var = alpha_bar * self.noise_std**2 + sigma2  # (B,) > 0: a clean box has no Hessian (_needs_noise)
        with np.errstate(divide="ignore"):
            collapsed = sqrt_ab * self._max_width < _COLLAPSED_WIDTH * np.sqrt(var)  # point masses, as in _evaluate
        score, hv = np.empty(x.shape), np.empty(v.shape)
        c, n = collapsed, ~collapsed
        if np.any(c):
            centers = 0.5 * (self.lows + self.highs)
            score[c], hv[c] = gmm_hvp(x[c], sqrt_ab[c], alpha_bar[c], var[c], v[c], np.log(self.weights), centers,
                                      np.zeros((1, 1, 1)), np.zeros_like(centers), False)
        if np.any(n):
            score[n], hv[n] = box_hvp(x[n], sqrt_ab[n], var[n], v[n], self._log_c, self.lows, self.highs)
        return score, hv

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        r"""Draw n clean points: box k ~ w, a uniform point in it, plus ``noise_std`` z, (n, D)."""
        return self._draw(positive_int(n, "n"), as_generator(rng))[0]

    def _draw(self, n, rng):
        k = rng.choice(self.weights.size, size=n, p=self.weights)  # (n,)
        u = rng.random((n, self.dim))
        x = self.lows[k] + (self.highs[k] - self.lows[k]) * u  # (n, D)
        if self.noise_std > 0.0:
            x = x + self.noise_std * rng.standard_normal((n, self.dim))
        return x, k

    def __repr__(self) -> str:
        return (f"BoxMixture(K={self.weights.size}, dim={self.dim}, noise_std={self.noise_std}, "
                f"schedule={self.schedule!r})")
