r"""Uniform densities on circles centred at the origin, blurred by isotropic Gaussian noise (2-D).

Data :math:`x_0 = R_k(\cos\theta, \sin\theta) + s\,z`, ring k with probability :math:`w_k`,
:math:`\theta \sim U[0, 2\pi)`, :math:`z \sim \mathcal N(0, I_2)`. Under the forward process
ring k has radius :math:`\rho = \sqrt{\bar\alpha} R_k` and blur variance
:math:`v = \bar\alpha s^2 + \sigma^2`. Averaging the Gaussian over the angle gives the
modified Bessel function :math:`I_0` (Watson 1944; Abramowitz & Stegun 9.6.16):

.. math::
    f_k(x) = \frac{1}{2\pi v}\exp\Big(-\frac{r^2 + \rho^2}{2v}\Big) I_0(z),\qquad r = \lVert x\rVert,\ z = \frac{r\rho}{v}.

With :math:`A(z) = I_1(z)/I_0(z)` (and :math:`I_0' = I_1`, :math:`I_1' = I_0 - I_1/z`):

.. math::
    \nabla\log f_k = x\Big(-\frac1v + \frac{\rho^2}{v^2}\frac{A(z)}{z}\Big),\qquad
    \Delta\log f_k = -\frac2v + \frac{\rho^2}{v^2}\big(1 - A(z)^2\big).

Everything is evaluated with the exponentially scaled ``i0e``/``i1e``, so it neither
overflows nor loses the tails. The number of rings is small, so the mixture is combined in
NumPy, (B, K) at a time; the gradients are all parallel to x, so the spread term of the
mixture Laplacian is :math:`\lVert x\rVert^2 \sum_k r_k (c_k - \bar c)^2` for
:math:`\nabla\log f_k = c_k x`.
"""

from __future__ import annotations

import numpy as np
from scipy.special import i0e, i1e

from .._check import as_float_array, as_generator, positive_int, real_scalar
from .._validate import check_schedule
from ..schedule import Schedule, vp_linear
from ._base import AnalyticOracle
from ._validate import check_weights


class RingMixture(AnalyticOracle):
    r"""The oracle for 2-D data on circles of radii ``radii`` blurred by N(0, noise_std^2 I).

    Parameters
    ----------
    weights : (K,) non-negative, summing to 1.
    radii : (K,) radii >= 0 (radius 0 is an isotropic Gaussian at the origin).
    noise_std : float > 0 (a circle alone has no density in 2-D).
    schedule : Schedule or None (``vp_linear()``).
    labels : (K,) ints 0..C-1, the class of each ring, or None (a labelled mixture is a
        conditional denoiser: :mod:`npdiff.analytic._base`, "Labels").

    Everything is defined at t = 0 too (the clean blurred rings).
    """

    def __init__(self, weights: object, radii: object, noise_std: float, schedule: Schedule | None = None,
                 labels: object = None) -> None:
        w = check_weights(weights)
        R = as_float_array(radii, "radii")
        if R.shape != w.shape:
            raise ValueError(f"radii must have shape {w.shape} to match weights, got shape {R.shape}")
        if np.any(R < 0.0):
            raise ValueError(f"radii must be >= 0, got min {R.min()}")
        self.noise_std = real_scalar(noise_std, "noise_std", lo=0.0, lo_open=True)
        self.schedule = check_schedule(schedule, default=vp_linear())
        self.dim = 2
        keep = w > 0.0
        self.weights = w[keep]
        self.radii = R[keep]
        self._log_w = np.log(self.weights)
        self._set_labels(labels, self.weights, keep)

    def _restrict(self, mask):
        w = self.weights[mask]
        return RingMixture(w / w.sum(), self.radii[mask], self.noise_std, self.schedule)

    def _evaluate(self, x, sqrt_ab, alpha_bar, sigma2):
        v = (alpha_bar * self.noise_std**2 + sigma2)[:, None]  # (B, 1) blur variance at t
        rho = sqrt_ab[:, None] * self.radii[None]  # (B, K) ring radii at t
        r = np.sqrt(np.sum(x * x, axis=1))[:, None]  # (B, 1)
        z = r * rho / v  # (B, K)
        i0 = i0e(z)
        A = i1e(z) / i0
        A_over_z = np.divide(A, z, out=np.full_like(z, 0.5), where=z > 1e-8)  # A(z)/z -> 1/2 at 0
        ell = self._log_w - np.log(2.0 * np.pi * v) - (r - rho) ** 2 / (2.0 * v) + np.log(i0)  # (B, K)
        c = -1.0 / v + (rho / v) ** 2 * A_over_z  # (B, K): grad log f_k = c_k x
        tr_h = -2.0 / v + (rho / v) ** 2 * (1.0 - A * A)  # (B, K)
        m = ell.max(axis=1, keepdims=True)
        log_prob = m[:, 0] + np.log(np.sum(np.exp(ell - m), axis=1))
        resp = np.exp(ell - log_prob[:, None])  # (B, K)
        c_bar = np.sum(resp * c, axis=1)  # (B,)
        spread = r[:, 0] ** 2 * np.sum(resp * (c - c_bar[:, None]) ** 2, axis=1)
        return log_prob, c_bar[:, None] * x, np.sum(resp * tr_h, axis=1) + spread

    def _hvp(self, x, sqrt_ab, alpha_bar, sigma2, v):
        # grad log f_k = c_k(r) x, so H_k = c_k I + (c_k'(r) / r) x x^T with (A' = 1 - A/z - A^2)
        #   c_k'(r) / r = (rho/v)^4 a(z),  a(z) = (z - 2A - z A^2) / z^3  (-> -1/8 + z^2/24 at z -> 0)
        var = (alpha_bar * self.noise_std**2 + sigma2)[:, None]  # (B, 1)
        rho = sqrt_ab[:, None] * self.radii[None]  # (B, K)
        r = np.sqrt(np.sum(x * x, axis=1))[:, None]  # (B, 1)
        z = r * rho / var  # (B, K)
        i0 = i0e(z)
        A = i1e(z) / i0
        small = z < 1e-3
        zs = np.where(small, 1.0, z)
        A_over_z = np.where(small, 0.5 - z * z / 16.0, A / zs)
        a = np.where(small, -0.125 + z * z / 24.0, (zs - 2.0 * A - zs * A * A) / zs**3)  # (B, K)
        ell = self._log_w - (r - rho) ** 2 / (2.0 * var) + np.log(i0)  # (B, K) up to a shared constant
        resp = np.exp(ell - ell.max(axis=1, keepdims=True))
        resp /= resp.sum(axis=1, keepdims=True)
        c = -1.0 / var + (rho / var) ** 2 * A_over_z  # (B, K)
        c_bar = np.sum(resp * c, axis=1)  # (B,)
        a_bar = np.sum(resp * (rho / var) ** 4 * a, axis=1)  # (B,) the mixture's x x^T coefficient, before the spread
        spread = np.sum(resp * (c - c_bar[:, None]) ** 2, axis=1)  # (B,) sum_k r_k (c_k - c_bar)^2 for g_k = c_k x
        xv = np.einsum("bd,btd->bt", x, v)  # (B, T)
        hv = c_bar[:, None, None] * v + ((a_bar + spread)[:, None] * xv)[:, :, None] * x[:, None, :]
        return c_bar[:, None] * x, hv

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        r"""Draw n clean points: ring k ~ w, an angle uniform in [0, 2 pi), plus blur, (n, 2)."""
        return self._draw(positive_int(n, "n"), as_generator(rng))[0]

    def _draw(self, n, rng):
        k = rng.choice(self.weights.size, size=n, p=self.weights)  # (n,)
        theta = rng.uniform(0.0, 2.0 * np.pi, size=n)
        x = self.radii[k, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)  # (n, 2)
        return x + self.noise_std * rng.standard_normal((n, 2)), k

    def __repr__(self) -> str:
        return f"RingMixture(K={self.weights.size}, noise_std={self.noise_std}, schedule={self.schedule!r})"

