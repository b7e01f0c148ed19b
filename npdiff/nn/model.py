r"""The trained MLP behind the denoiser protocol, whatever it predicts.

:class:`DiffusionMLP` holds an :class:`~npdiff.nn.config.MLPConfig`, the schedule it was trained
with and a copy of the weights, and answers the protocol of :mod:`npdiff.denoiser`:
``eps(x, t)``, ``eps_and_divergence(x, t)`` and ``schedule``. A network that predicts x0 or v
is turned into a noise prediction by the linear map of :func:`npdiff.parameterization.eps_coefficients`,
:math:`\hat\epsilon = c_x x + c_p \hat y`, and the same map carries the exact divergence, since
:math:`\partial x/\partial x = I`:

.. math:: \mathrm{tr}\frac{\partial\hat\epsilon}{\partial x} = c_x D + c_p\,\mathrm{tr}\frac{\partial\hat y}{\partial x}

The optional derivatives of the protocol, ``eps_jvp(x, t, v)`` and ``eps_vjp(x, t, u)``, go through
the same map, :math:`\partial\hat\epsilon/\partial x = c_x I + c_p\,\partial\hat y/\partial x`, with the
network's hand-written forward mode (:func:`npdiff.nn.mlp.jvp`) and backward pass
(:func:`npdiff.nn.mlp.vjp`): the plain reference network, in float64 whatever ``dtype``, so that a
sampler's exact Jacobian (:mod:`npdiff.likelihood.sampler_density`) has no float32 rounding in it.

A conditional network (``config.num_classes`` C > 0) is a conditional denoiser
(:mod:`npdiff.denoiser`): ``eps(x, t, y)`` with labels y, and ``y=None`` its "no label" row, the
unconditional model the same network learned by label dropout (:mod:`npdiff.train`).

It runs the fast path (:mod:`npdiff.nn.fast`), in ``dtype``: float64 by default (the
likelihood's ODE wants it), float32 for speed; inputs and outputs are float64 either way. The
weights are copied at construction: later changes to the array passed in do not reach the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..denoiser import as_tangents
from ..parameterization import eps_coefficients
from ..schedule import Schedule, schedule_from_config
from .config import MLPConfig
from .fast import FastMLP
from .mlp import jvp as mlp_jvp
from .mlp import vjp as mlp_vjp

__all__ = ["DiffusionMLP", "InputOverflowError"]


#: rows (points times tangents) of one block of the forward mode: bounds its (rows, H) temporaries
_TANGENT_ROWS = 4096


class InputOverflowError(ValueError, FloatingPointError):
    r"""The network overflowed on its input x: a bad argument (ValueError) and, for a solver that runs into
    it mid-flight, a diverged flow (FloatingPointError)."""


class DiffusionMLP:
    r"""A trained (or freshly initialized) MLP denoiser.

    Parameters
    ----------
    config : the architecture (:class:`~npdiff.nn.config.MLPConfig`).
    schedule : the continuous schedule it was trained with (``.schedule`` of the protocol).
    params : (n_params,) weights; None draws PyTorch-style initial weights from ``rng``.
    rng : Generator (or int seed) used only when ``params`` is None.
    dtype : compute dtype, ``np.float64`` (default) or ``np.float32``.
    """

    def __init__(self, config: MLPConfig, schedule: Schedule, params: np.ndarray | None = None, *,
                 rng: np.random.Generator | int | None = None, dtype: type = np.float64) -> None:
        if not isinstance(config, MLPConfig):
            raise TypeError(f"config must be an MLPConfig, got {type(config).__name__}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a continuous npdiff Schedule, got {type(schedule).__name__}")
        if params is None:
            if rng is None:
                raise TypeError("DiffusionMLP needs params, or rng (a numpy Generator or an int seed) to initialize them")
            params = config.init_params(rng)
        self.params = config.check_params(np.array(params, copy=True))  # float32 from training, or float64
        if not np.all(np.isfinite(self.params)):
            raise ValueError(f"params must be finite, got {np.count_nonzero(~np.isfinite(self.params))} NaN or Inf entries")
        if dtype not in (np.float32, np.float64, np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
        self.config = config
        self.schedule = schedule
        self.dtype = np.dtype(dtype)
        self.net = FastMLP(config)
        weights = self.params.astype(self.dtype)
        self._layers = config.layers(weights)  # the weights the fast path reads
        self._table = config.label_table(weights)  # (C + 1, H), or None

    @property
    def dim(self) -> int:
        r"""Data dimension D."""
        return self.config.dim

    @property
    def num_classes(self) -> int:
        r"""Number C of class labels (0: an unconditional network)."""
        return self.config.num_classes

    @property
    def parameterization(self) -> str:
        r"""What the network predicts: ``"eps"``, ``"x0"`` or ``"v"``."""
        return self.config.parameterization

    def with_dtype(self, dtype: type) -> DiffusionMLP:
        r"""The same model computing in another dtype."""
        return DiffusionMLP(self.config, self.schedule, self.params, dtype=dtype)

    def _coefficients(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        alpha = np.exp(0.5 * self.schedule.log_alpha_bar(t))[:, None]  # (B, 1)
        sigma = self.schedule.sigma(t)[:, None]  # (B, 1)
        if self.parameterization == "x0" and np.any(sigma == 0.0):
            raise ValueError(f"an x0-predicting model has no noise estimate where sigma(t) = 0; got t down to {t.min()}")
        return eps_coefficients(self.parameterization, alpha, sigma)

    def _finite(self, x: np.ndarray, *outputs: np.ndarray) -> None:
        # far outside the data a float32 (or even float64) network overflows: say so instead of returning inf
        if not all(np.all(np.isfinite(o)) for o in outputs):
            raise InputOverflowError(f"the {self.dtype.name} network overflowed for x up to |x| = {np.abs(x).max():.3g}; "
                                     "x must lie within the range the model can represent")

    def _door(self, x: object, t: object, y: object) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        x, t = self.config.check_inputs(x, t)
        return x, t, self.config.label_index(self.config.check_labels(y, x.shape[0]), x.shape[0])

    def predict(self, x: object, t: object, y: object = None) -> np.ndarray:
        r"""The raw network output (B, D), float64: eps, x0 or v according to ``parameterization``."""
        return self._predict(*self._door(x, t, y))

    def _predict(self, x: np.ndarray, t: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            out = self.net.output(self._layers, x, t, rows, self._table).astype(np.float64)
        self._finite(x, out)
        return out

    def eps(self, x: object, t: object, y: object = None) -> np.ndarray:
        r"""Predicted noise :math:`\hat\epsilon(x, t\,(, y))` (B, D), float64 (converted as in the module docstring).

        ``y``: labels of a conditional network, an int or (B,) ints; None: unconditional.
        """
        x, t, rows = self._door(x, t, y)
        out = self._predict(x, t, rows)
        if self.parameterization == "eps":
            return out
        c_x, c_p = self._coefficients(t)
        with np.errstate(over="ignore", invalid="ignore"):
            eps = c_x * x + c_p * out
        self._finite(x, eps)
        return eps

    def eps_and_divergence(self, x: object, t: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\hat\epsilon` (B, D) and the exact :math:`\mathrm{tr}\,\partial\hat\epsilon/\partial x` (B,), float64.

        The trace by the blocked forward mode of :mod:`npdiff.nn.fast.trace`; ``y`` as in :meth:`eps`.
        """
        x, t, rows = self._door(x, t, y)
        with np.errstate(over="ignore", invalid="ignore"):
            out, tr = self.net.output_and_trace(self._layers, x, t, rows, self._table)
            out, tr = out.astype(np.float64), tr.astype(np.float64)
        self._finite(x, out, tr)
        if self.parameterization == "eps":
            return out, tr
        c_x, c_p = self._coefficients(t)
        with np.errstate(over="ignore", invalid="ignore"):
            eps, div = c_x * x + c_p * out, c_x[:, 0] * self.dim + c_p[:, 0] * tr
        self._finite(x, eps, div)
        return eps, div

    def _tangent_door(self, x: object, t: object, y: object) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        x, t = self.config.check_inputs(x, t)
        return x, t, self.config.check_labels(y, x.shape[0])  # labels as mlp.jvp takes them

    def eps_jvp(self, x: object, t: object, v: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\hat\epsilon` (B, D) and :math:`(\partial\hat\epsilon/\partial x)\,v_{b,k}` for v (B, K, D), float64.

        Forward mode through the plain float64 network (module docstring), K tangents per point
        (one direction (B, D) gives (B, D)); ``y`` as in :meth:`eps`.
        """
        x, t, y = self._tangent_door(x, t, y)
        vk = as_tangents(v, x)  # (B, K, D)
        B, K = vk.shape[:2]
        out, out_dot = np.empty(x.shape), np.empty(vk.shape)
        step = max(1, _TANGENT_ROWS // K)  # K tangents of `step` points: a (K step, H) block per layer
        with np.errstate(over="ignore", invalid="ignore"):
            for i in range(0, B, step):
                sl = slice(i, min(B, i + step))
                o, od = mlp_jvp(self.config, self.params, x[sl], t[sl], vk[sl].transpose(1, 0, 2),
                                None if y is None else y[sl])
                out[sl], out_dot[sl] = o, od.transpose(1, 0, 2)  # (K, b, D) -> (b, K, D)
        self._finite(x, out, out_dot)
        if self.parameterization != "eps":
            c_x, c_p = self._coefficients(t)  # (B, 1) each
            out, out_dot = c_x * x + c_p * out, c_x[:, :, None] * vk + c_p[:, :, None] * out_dot
            self._finite(x, out, out_dot)
        return out, (out_dot[:, 0] if np.ndim(v) == 2 else out_dot)

    def eps_vjp(self, x: object, t: object, u: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\hat\epsilon` (B, D) and :math:`u_b^\top\partial\hat\epsilon/\partial x` (B, D), float64.

        The backward pass with respect to the input (module docstring); ``u`` (B, D) one cotangent per point.
        """
        x, t, y = self._tangent_door(x, t, y)
        u = as_tangents(u, x, "u", one=True)[:, 0]  # (B, D)
        with np.errstate(over="ignore", invalid="ignore"):
            out, u_j = mlp_vjp(self.config, self.params, x, t, u, y)
        self._finite(x, out, u_j)
        if self.parameterization != "eps":
            c_x, c_p = self._coefficients(t)
            out, u_j = c_x * x + c_p * out, c_x * u + c_p * u_j
            self._finite(x, out, u_j)
        return out, u_j

    # -- serialization ---------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        r"""Architecture and schedule as a JSON-serializable dict (what a checkpoint stores)."""
        return {"model": self.config.to_dict(), "schedule": self.schedule.config()}

    @classmethod
    def from_config_dict(cls, d: dict[str, Any], params: np.ndarray, *, dtype: type = np.float64) -> DiffusionMLP:
        r"""Inverse of :meth:`config_dict` given the weights."""
        return cls(MLPConfig.from_dict(d["model"]), schedule_from_config(d["schedule"]), params, dtype=dtype)

    def __repr__(self) -> str:
        c = self.config
        labels = f", {c.num_classes} classes" if c.num_classes else ""
        return (f"DiffusionMLP(D={c.dim}, width={c.width}, depth={c.depth}, {c.activation}, predicts {c.parameterization}"
                f"{labels}, schedule={self.schedule!r}, dtype={self.dtype.name})")
