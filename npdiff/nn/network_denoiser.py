r"""What every trained network shares behind the denoiser protocol: its output made a noise prediction.

A network predicts :math:`\hat y`, which is eps, x0 or v (its ``parameterization``). The protocol of
:mod:`npdiff.denoiser` asks for :math:`\hat\epsilon`. The linear map of
:func:`npdiff.parameterization.eps_coefficients` gives it, :math:`\hat\epsilon = c_x x + c_p \hat y`, and
because :math:`\partial x/\partial x = I` the same map carries every derivative the protocol asks for:

.. math:: \frac{\partial\hat\epsilon}{\partial x}\,v = c_x v + c_p\,\frac{\partial\hat y}{\partial x}\,v,\qquad
          u^\top\frac{\partial\hat\epsilon}{\partial x} = c_x u + c_p\,u^\top\frac{\partial\hat y}{\partial x},\qquad
          \mathrm{tr}\frac{\partial\hat\epsilon}{\partial x} = c_x D + c_p\,\mathrm{tr}\frac{\partial\hat y}{\partial x}

:class:`NetworkDenoiser` holds that map once, for :class:`~npdiff.nn.model.DiffusionMLP` and
:class:`~npdiff.nn.unet.DiffusionUNet`. It also holds what they share around it: the checked weights,
schedule and dtype, the door that checks x, t and the labels, and the overflow check. A network runs in
``dtype`` (float64 by default, as the likelihood's ODE wants; float32 for speed), with inputs and outputs
in float64 either way. The weights are copied at construction, so later changes to the array passed in
do not reach the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._check import InputOverflowError
from ..parameterization import eps_coefficients
from ..schedule import Schedule

__all__ = ["NetworkDenoiser"]


class NetworkDenoiser:
    r"""The shared part of a network denoiser (module docstring); subclasses run their network.

    Parameters
    ----------
    config : the architecture, an instance of the subclass's ``config_type``.
    schedule : the continuous schedule it was trained with (``.schedule`` of the protocol).
    params : (n_params,) weights; None draws the architecture's initial weights from ``rng``.
    rng : Generator (or int seed) used only when ``params`` is None.
    dtype : compute dtype, ``np.float64`` (default) or ``np.float32``.
    """

    config_type: type = object  # the subclass's config class

    def __init__(self, config: Any, schedule: Schedule, params: np.ndarray | None = None, *,
                 rng: np.random.Generator | int | None = None, dtype: type = np.float64) -> None:
        name = type(self).__name__
        if not isinstance(config, self.config_type):
            raise TypeError(f"config must be a {self.config_type.__name__}, got {type(config).__name__}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a continuous npdiff Schedule, got {type(schedule).__name__}")
        if params is None:
            if rng is None:
                raise TypeError(f"{name} needs params, or rng (a numpy Generator or an int seed) to initialize them")
            params = config.init_params(rng)
        self.params = config.check_params(np.array(params, copy=True))  # finite float32 (training) or float64
        if dtype not in (np.float32, np.float64, np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
        self.config = config
        self.schedule = schedule
        self.dtype = np.dtype(dtype)

    @property
    def dim(self) -> int:
        r"""Data dimension D (for images, the length of a flattened image)."""
        return self.config.dim

    @property
    def num_classes(self) -> int:
        r"""Number C of class labels (0: an unconditional network)."""
        return self.config.num_classes

    @property
    def parameterization(self) -> str:
        r"""What the network predicts: ``"eps"``, ``"x0"`` or ``"v"``."""
        return self.config.parameterization

    def with_dtype(self, dtype: type) -> NetworkDenoiser:
        r"""The same model computing in another dtype."""
        return type(self)(self.config, self.schedule, self.params, dtype=dtype)

    def predict(self, x: object, t: object, y: object = None) -> np.ndarray:
        r"""The raw network output (B, D), float64: eps, x0 or v according to ``parameterization``."""
        return self._predict(*self._door(x, t, y))

    def _predict(self, x: np.ndarray, t: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError  # the subclass runs its network: (B, D) float64, overflow checked

    # -- the door and the overflow check ----------------------------------------------------------------
    def _door(self, x: object, t: object, y: object) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        x, t = self.config.check_inputs(x, t)
        return x, t, self.config.label_index(self.config.check_labels(y, x.shape[0]), x.shape[0])

    def _finite(self, x: np.ndarray, *outputs: np.ndarray) -> None:
        # far outside the data a float32 (or even float64) network overflows: say so instead of returning inf
        if not all(np.all(np.isfinite(o)) for o in outputs):
            raise InputOverflowError(f"the {self.dtype.name} network overflowed for x up to |x| = {np.abs(x).max():.3g}; "
                                     "x must lie within the range the model can represent")

    # -- the map from the network's output to eps, and its derivatives (module docstring) ---------------
    def _coefficients(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        alpha = np.exp(0.5 * self.schedule.log_alpha_bar(t))[:, None]  # (B, 1)
        sigma = self.schedule.sigma(t)[:, None]  # (B, 1)
        if self.parameterization == "x0" and np.any(sigma == 0.0):
            raise ValueError(f"an x0-predicting model has no noise estimate where sigma(t) = 0; got t down to {t.min()}")
        return eps_coefficients(self.parameterization, alpha, sigma)

    def _eps(self, x: np.ndarray, t: np.ndarray, out: np.ndarray) -> np.ndarray:
        r""":math:`\hat\epsilon = c_x x + c_p \hat y` from the output (B, D)."""
        self._finite(x, out)
        if self.parameterization == "eps":
            return out
        c_x, c_p = self._coefficients(t)  # (B, 1) each
        with np.errstate(over="ignore", invalid="ignore"):
            eps = c_x * x + c_p * out
        self._finite(x, eps)
        return eps

    def _eps_and_divergence(self, x: np.ndarray, t: np.ndarray, out: np.ndarray, tr: np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\hat\epsilon` and :math:`c_x D + c_p\,\mathrm{tr}\,\partial\hat y/\partial x` from the output
        (B, D) and its trace (B,)."""
        self._finite(x, out, tr)
        if self.parameterization == "eps":
            return out, tr
        c_x, c_p = self._coefficients(t)
        with np.errstate(over="ignore", invalid="ignore"):
            eps, div = c_x * x + c_p * out, c_x[:, 0] * self.dim + c_p[:, 0] * tr
        self._finite(x, eps, div)
        return eps, div

    def _eps_jvp(self, x: np.ndarray, t: np.ndarray, v: np.ndarray, out: np.ndarray, out_dot: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\hat\epsilon` and :math:`c_x v + c_p\,(\partial\hat y/\partial x)\,v` from the output (B, D)
        and its tangents (B, K, D) along v (B, K, D)."""
        self._finite(x, out, out_dot)
        if self.parameterization == "eps":
            return out, out_dot
        c_x, c_p = self._coefficients(t)
        with np.errstate(over="ignore", invalid="ignore"):
            eps, eps_dot = c_x * x + c_p * out, c_x[:, :, None] * v + c_p[:, :, None] * out_dot
        self._finite(x, eps, eps_dot)
        return eps, eps_dot

    def _eps_vjp(self, x: np.ndarray, t: np.ndarray, u: np.ndarray, out: np.ndarray, u_jac: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\hat\epsilon` and :math:`c_x u + c_p\,u^\top\partial\hat y/\partial x` from the output (B, D)
        and the cotangent u (B, D) pulled back through the network, ``u_jac`` (B, D)."""
        self._finite(x, out, u_jac)
        if self.parameterization == "eps":
            return out, u_jac
        c_x, c_p = self._coefficients(t)
        with np.errstate(over="ignore", invalid="ignore"):
            eps, u_eps = c_x * x + c_p * out, c_x * u + c_p * u_jac
        self._finite(x, eps, u_eps)
        return eps, u_eps
