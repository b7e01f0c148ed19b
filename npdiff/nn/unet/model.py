r"""The U-Net behind the denoiser protocol, whatever it predicts.

:class:`DiffusionUNet` holds a :class:`~npdiff.nn.unet.config.UNetConfig`, the schedule it was trained
with and a copy of the weights, and answers the protocol of :mod:`npdiff.denoiser` on flattened images
(B, D), D = 64 for the 8x8 digits: ``eps(x, t, y)``, ``eps_and_divergence(x, t, y)`` (the exact trace,
D tangents through the network in batched forward mode), and the optional ``eps_jvp(x, t, v, y)`` and
``eps_vjp(x, t, u, y)``, so every sampler, both likelihoods, guidance and the editing methods run on it
unchanged. A network that predicts x0 or v becomes a noise prediction through the linear map of
:func:`npdiff.parameterization.eps_coefficients`, :math:`\hat\epsilon = c_x x + c_p \hat y`, which carries
the derivatives with it, since :math:`\partial x/\partial x = I`:

.. math:: \frac{\partial\hat\epsilon}{\partial x}\,v = c_x v + c_p\,\frac{\partial\hat y}{\partial x}\,v,\qquad
          u^\top\frac{\partial\hat\epsilon}{\partial x} = c_x u + c_p\,u^\top\frac{\partial\hat y}{\partial x},\qquad
          \mathrm{tr}\frac{\partial\hat\epsilon}{\partial x} = c_x D + c_p\,\mathrm{tr}\frac{\partial\hat y}{\partial x}

A conditional network (``config.num_classes`` C > 0) answers ``y=None`` with its "no label" row, the
unconditional model learned by label dropout, as :class:`~npdiff.nn.model.DiffusionMLP` does.

It runs the reference network (:mod:`npdiff.nn.unet.network`) in ``dtype``: float64 by default (the
likelihood's ODE wants it), float32 for speed; inputs and outputs are float64 either way. The weights
are copied at construction: later changes to the array passed in do not reach the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._check import as_float_array
from ...parameterization import eps_coefficients
from ...schedule import Schedule, schedule_from_config
from ..model import InputOverflowError
from .config import UNetConfig
from .network import backward_unchecked, divergence_unchecked, forward_unchecked, jvp_unchecked

__all__ = ["ARCH", "DiffusionUNet"]

#: the architecture's name in :meth:`DiffusionUNet.config_dict`, so that a checkpoint says what it holds
ARCH = "unet"


class DiffusionUNet:
    r"""A trained (or freshly initialized) U-Net denoiser.

    Parameters
    ----------
    config : the architecture (:class:`~npdiff.nn.unet.config.UNetConfig`).
    schedule : the continuous schedule it was trained with (``.schedule`` of the protocol).
    params : (n_params,) weights; None draws the initial weights of :meth:`UNetConfig.init_params` from ``rng``.
    rng : Generator (or int seed) used only when ``params`` is None.
    dtype : compute dtype, ``np.float64`` (default) or ``np.float32``.
    """

    def __init__(self, config: UNetConfig, schedule: Schedule, params: np.ndarray | None = None, *,
                 rng: np.random.Generator | int | None = None, dtype: type = np.float64) -> None:
        if not isinstance(config, UNetConfig):
            raise TypeError(f"config must be a UNetConfig, got {type(config).__name__}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a continuous npdiff Schedule, got {type(schedule).__name__}")
        if params is None:
            if rng is None:
                raise TypeError("DiffusionUNet needs params, or rng (a numpy Generator or an int seed) to initialize them")
            params = config.init_params(rng)
        self.params = config.check_params(np.array(params, copy=True))  # float32 from training, or float64
        if dtype not in (np.float32, np.float64, np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
        self.config = config
        self.schedule = schedule
        self.dtype = np.dtype(dtype)
        self._weights = config.views(self.params.astype(self.dtype))  # the named views the network reads

    @property
    def dim(self) -> int:
        r"""Data dimension D: the length of a flattened image."""
        return self.config.dim

    @property
    def num_classes(self) -> int:
        r"""Number C of class labels (0: an unconditional network)."""
        return self.config.num_classes

    @property
    def parameterization(self) -> str:
        r"""What the network predicts: ``"eps"``, ``"x0"`` or ``"v"``."""
        return self.config.parameterization

    def with_dtype(self, dtype: type) -> DiffusionUNet:
        r"""The same model computing in another dtype."""
        return DiffusionUNet(self.config, self.schedule, self.params, dtype=dtype)

    # -- the door, the conversion to eps, the overflow check -----------------------------------------
    def _door(self, x: object, t: object, y: object) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        x, t = self.config.check_inputs(x, t)
        return x, t, self.config.label_index(self.config.check_labels(y, x.shape[0]), x.shape[0])

    def _coefficients(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        alpha = np.exp(0.5 * self.schedule.log_alpha_bar(t))[:, None]  # (B, 1)
        sigma = self.schedule.sigma(t)[:, None]  # (B, 1)
        if self.parameterization == "x0" and np.any(sigma == 0.0):
            raise ValueError(f"an x0-predicting model has no noise estimate where sigma(t) = 0; got t down to {t.min()}")
        return eps_coefficients(self.parameterization, alpha, sigma)

    def _finite(self, x: np.ndarray, *outputs: np.ndarray) -> None:
        if not all(np.all(np.isfinite(o)) for o in outputs):
            raise InputOverflowError(f"the {self.dtype.name} network overflowed for x up to |x| = {np.abs(x).max():.3g}; "
                                     "x must lie within the range the model can represent")

    def _to_eps(self, x: np.ndarray, t: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.parameterization == "eps":
            return out
        c_x, c_p = self._coefficients(t)
        return c_x * x + c_p * out

    # -- the protocol ------------------------------------------------------------------------------------
    def predict(self, x: object, t: object, y: object = None) -> np.ndarray:
        r"""The raw network output (B, D), float64: eps, x0 or v according to ``parameterization``."""
        return self._predict(*self._door(x, t, y))

    def _predict(self, x: np.ndarray, t: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            out = forward_unchecked(self.config, self._weights, x.astype(self.dtype), t, rows)[0].astype(np.float64)
        self._finite(x, out)
        return out

    def eps(self, x: object, t: object, y: object = None) -> np.ndarray:
        r"""Predicted noise :math:`\hat\epsilon(x, t\,(, y))` (B, D), float64.

        ``x`` (B, D) flattened images; ``t`` a float or (B,); ``y`` labels of a conditional network, an int or
        (B,) ints, None: unconditional.
        """
        x, t, rows = self._door(x, t, y)
        out = self._to_eps(x, t, self._predict(x, t, rows))
        self._finite(x, out)
        return out

    def eps_and_divergence(self, x: object, t: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\hat\epsilon` (B, D) and the exact :math:`\mathrm{tr}\,\partial\hat\epsilon/\partial x` (B,), float64.

        The trace is the sum of the D unit tangents' own components (:func:`npdiff.nn.unet.network.divergence`).
        """
        x, t, rows = self._door(x, t, y)
        with np.errstate(over="ignore", invalid="ignore"):
            out, tr = divergence_unchecked(self.config, self._weights, x.astype(self.dtype), t, rows)
            out, tr = out.astype(np.float64), tr.astype(np.float64)
        self._finite(x, out, tr)
        if self.parameterization == "eps":
            return out, tr
        c_x, c_p = self._coefficients(t)
        eps, div = c_x * x + c_p * out, c_x[:, 0] * self.dim + c_p[:, 0] * tr
        self._finite(x, eps, div)
        return eps, div

    def eps_jvp(self, x: object, t: object, v: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\hat\epsilon` (B, D) and the Jacobian-vector products (B, K, D), row b, tangent k being
        :math:`(\partial\hat\epsilon(x_b, t_b)/\partial x_b)\,v_{b,k}` for K tangents per image ``v`` (B, K, D)."""
        x, t, rows = self._door(x, t, y)
        v = as_float_array(v, "v")
        if v.ndim != 3 or v.shape[0] != x.shape[0] or v.shape[2] != self.dim:
            raise ValueError(f"v must have shape ({x.shape[0]}, K, {self.dim}), got {v.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            out, out_dot = jvp_unchecked(self.config, self._weights, x.astype(self.dtype), t, rows,
                                         v.transpose(1, 0, 2).astype(self.dtype))  # the network takes (K, B, D)
            out, out_dot = out.astype(np.float64), out_dot.transpose(1, 0, 2).astype(np.float64)
        self._finite(x, out, out_dot)
        if self.parameterization == "eps":
            return out, out_dot
        c_x, c_p = self._coefficients(t)
        return c_x * x + c_p * out, c_x[:, :, None] * v + c_p[:, :, None] * out_dot

    def eps_vjp(self, x: object, t: object, u: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\hat\epsilon` (B, D) and the vector-Jacobian products (B, D), row b being
        :math:`u_b^\top\,\partial\hat\epsilon(x_b, t_b)/\partial x_b` for one cotangent per image ``u`` (B, D):
        one forward and one backward pass."""
        x, t, rows = self._door(x, t, y)
        u = as_float_array(u, "u")
        if u.shape != x.shape:
            raise ValueError(f"u must have the shape of x {x.shape}, got {u.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            out, cache = forward_unchecked(self.config, self._weights, x.astype(self.dtype), t, rows)
            u_jac = backward_unchecked(self.config, self._weights, cache, u.astype(self.dtype))[1]
            out, u_jac = out.astype(np.float64), u_jac.astype(np.float64)
        self._finite(x, out, u_jac)
        if self.parameterization == "eps":
            return out, u_jac
        c_x, c_p = self._coefficients(t)
        return c_x * x + c_p * out, c_x * u + c_p * u_jac

    # -- serialization -------------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        r"""Architecture (named ``"arch": "unet"``) and schedule as a JSON-serializable dict (what a checkpoint stores)."""
        return {"arch": ARCH, "model": self.config.to_dict(), "schedule": self.schedule.config()}

    @classmethod
    def from_config_dict(cls, d: dict[str, Any], params: np.ndarray, *, dtype: type = np.float64) -> DiffusionUNet:
        r"""Inverse of :meth:`config_dict` given the weights; the dict of another architecture is a ``ValueError``."""
        if not isinstance(d, dict) or d.get("arch") != ARCH:
            got = d.get("arch", "an MLP (no 'arch')") if isinstance(d, dict) else type(d).__name__
            raise ValueError(f"a DiffusionUNet needs a config dict with 'arch': {ARCH!r}, got {got!r}")
        return cls(UNetConfig.from_dict(d["model"]), schedule_from_config(d["schedule"]), params, dtype=dtype)

    def __repr__(self) -> str:
        c = self.config
        labels = f", {c.num_classes} classes" if c.num_classes else ""
        return (f"DiffusionUNet({c.channels}x{c.image_size}x{c.image_size}, widths={c.widths}, "
                f"predicts {c.parameterization}{labels}, schedule={self.schedule!r}, dtype={self.dtype.name})")
