r"""Activations and their derivatives, in plain NumPy (the reference the Numba kernels are tested against).

Two activations, each returned together with its derivative because the forward pass
stores the derivative for the backward pass and for the Jacobian-vector product:

* GELU (Hendrycks & Gimpel 2016, Eq. 1 with the exact Gaussian CDF):

  .. math:: \mathrm{gelu}(z) = z\,\Phi(z),\qquad \Phi(z) = \tfrac12\big(1 + \mathrm{erf}(z/\sqrt2)\big),
            \qquad \mathrm{gelu}'(z) = \Phi(z) + z\,\Phi'(z)

* SiLU / swish (Elfwing et al. 2018, Eq. 3; Ramachandran et al. 2017):

  .. math:: \mathrm{silu}(z) = z\,\varsigma(z),\qquad \varsigma(z) = \tfrac12\big(1 + \tanh(z/2)\big),
            \qquad \mathrm{silu}'(z) = \varsigma(z) + z\,\varsigma'(z)

**Why rational approximations.** ``erf``, ``exp`` and ``tanh`` are scalar library calls that
Numba cannot vectorize (no vector math library), and at batch 4096 they cost more than the
matmuls. So erf and tanh are the float32 rational approximations of Eigen and XLA
(``generic_fast_erf_float``, ``generic_fast_tanh_float``):

.. math:: \mathrm{erf}(x) \approx x\,\frac{P(x^2)}{Q(x^2)},\ |x| \le 4;\qquad
          \tanh(y) \approx y\,\frac{R(y^2)}{S(y^2)},\ |y| \le c_{\tanh}

clamped outside (erf to its value at 4: 1 - 1.5e-8 against the true erf(4); tanh at 7.9988).
Their error is below 7e-8 (erf) and 3e-8 (tanh) inside the range, float32 rounding level.
They use only multiply, add, divide and a clamp, so LLVM vectorizes them. The derivatives
here are the exact derivatives of these rational functions (quotient rule), not of the
true erf/tanh, so the network computes one smooth function and its gradients, Jacobians
and divergences are exactly those of that function, in float32 and float64 alike. The
coefficients are stored rounded to float32 and used as such in both precisions.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_FUNCTIONS",
    "ERF_P",
    "ERF_Q",
    "TANH_CLAMP",
    "TANH_P",
    "TANH_Q",
    "activation",
    "erf_rational",
    "gelu",
    "silu",
    "tanh_rational",
]

#: names accepted by the MLP, mapped to the integer code the kernels branch on
ACTIVATIONS = {"gelu": 0, "silu": 1}


def _f32(coefs: tuple[float, ...]) -> np.ndarray:
    return np.array(coefs, dtype=np.float32).astype(np.float64)


#: erf numerator P(u), u = x^2, coefficients of u^0 .. u^6 (Eigen ``generic_fast_erf_float``)
ERF_P = _f32((-1.60960333262415e-02, -2.95459980854025e-03, -7.34990630326855e-04, -5.69250639462346e-05,
              -2.10102402082508e-06, 2.77068142495902e-08, -2.72614225801306e-10))
#: erf denominator Q(u), coefficients of u^0 .. u^4
ERF_Q = _f32((-1.42647390514189e-02, -7.37332916720468e-03, -1.68282697438203e-03, -2.13374055278905e-04,
              -1.45660718464996e-05))
ERF_CLAMP = 4.0

#: tanh numerator R(u), u = y^2, coefficients of u^0 .. u^6 (Eigen ``generic_fast_tanh_float``)
TANH_P = _f32((4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
               -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16))
#: tanh denominator S(u), coefficients of u^0 .. u^3
TANH_Q = _f32((4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06))
TANH_CLAMP = float(np.float32(7.99881172180175781))

INV_SQRT2 = float(np.float32(0.7071067811865476))


def _odd_rational(x: np.ndarray, num: np.ndarray, den: np.ndarray, clamp: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Value and derivative of :math:`f(x) = x P(x^2)/Q(x^2)` clamped at ``|x| = clamp``.

    .. math:: f'(x) = \frac{P Q + 2u\,(P_u Q - P Q_u)}{Q^2},\qquad u = x^2

    (quotient rule; :math:`P_u = dP/du`). Outside the clamp the value is f(clamp) and the
    derivative 0.
    """
    xc = np.clip(x, -clamp, clamp)
    u = xc * xc
    p = np.polynomial.polynomial.polyval(u, num)
    q = np.polynomial.polynomial.polyval(u, den)
    dp = np.polynomial.polynomial.polyval(u, np.polynomial.polynomial.polyder(num))
    dq = np.polynomial.polynomial.polyval(u, np.polynomial.polynomial.polyder(den))
    value = xc * p / q
    grad = (p * q + 2.0 * u * (dp * q - p * dq)) / (q * q)
    return value, np.where(np.abs(x) < clamp, grad, 0.0)


def erf_rational(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""The rational erf approximation and its derivative (see the module docstring)."""
    return _odd_rational(np.asarray(x, dtype=np.float64), ERF_P, ERF_Q, ERF_CLAMP)


def tanh_rational(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""The rational tanh approximation and its derivative (see the module docstring)."""
    return _odd_rational(np.asarray(y, dtype=np.float64), TANH_P, TANH_Q, TANH_CLAMP)


def gelu(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""GELU and its derivative: :math:`z\Phi(z)`, :math:`\Phi(z) + z\,\Phi'(z)`, :math:`\Phi` via erf.

    Returns float64 arrays of the shape of ``z``.
    """
    z = np.asarray(z, dtype=np.float64)
    erf, derf = erf_rational(z * INV_SQRT2)
    cdf = 0.5 + 0.5 * erf  # Phi(z)
    return z * cdf, cdf + z * (0.5 * INV_SQRT2) * derf


def silu(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""SiLU and its derivative: :math:`z\varsigma(z)`, :math:`\varsigma(z) + z\,\varsigma'(z)`, via tanh.

    Returns float64 arrays of the shape of ``z``.
    """
    z = np.asarray(z, dtype=np.float64)
    tanh, dtanh = tanh_rational(0.5 * z)
    sig = 0.5 + 0.5 * tanh  # sigmoid(z) = (1 + tanh(z/2)) / 2
    return z * sig, sig + z * 0.25 * dtanh


def activation(name: str) -> int:
    r"""The kernel code of an activation name; ``ValueError`` listing the choices otherwise."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


#: each name of :data:`ACTIVATIONS` with its reference function, returning the value and the derivative
ACTIVATION_FUNCTIONS = {"gelu": gelu, "silu": silu}
