r"""The trained MLP behind the denoiser protocol, whatever it predicts.

:class:`DiffusionMLP` holds an :class:`~npdiff.nn.config.MLPConfig`, the schedule it was trained
with and a copy of the weights, and answers the protocol of :mod:`npdiff.denoiser`:
``eps(x, t)``, ``eps_and_divergence(x, t)`` and ``schedule``. A network that predicts x0 or v
is turned into a noise prediction, with its exact divergence and its derivatives, by the linear map
that :mod:`npdiff.nn.network_denoiser` holds for every network. The optional derivatives of the
protocol, ``eps_jvp(x, t, v)`` and ``eps_vjp(x, t, u)``, use the network's hand-written forward mode
(:func:`npdiff.nn.mlp.jvp`) and backward pass (:func:`npdiff.nn.mlp.vjp`): the plain reference network,
in float64 whatever ``dtype``, so that a sampler's exact Jacobian (:mod:`npdiff.likelihood.sampler_density`)
has no float32 rounding in it.

A conditional network (``config.num_classes`` C > 0) is a conditional denoiser
(:mod:`npdiff.denoiser`): ``eps(x, t, y)`` with labels y, and ``y=None`` its "no label" row, the
unconditional model the same network learned by label dropout (:mod:`npdiff.train`).

It runs the fast path (:mod:`npdiff.nn.fast`) in ``dtype``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..denoiser import as_tangents
from ..schedule import Schedule, schedule_from_config
from .config import MLPConfig
from .fast import FastMLP
from .mlp import jvp as mlp_jvp
from .mlp import vjp as mlp_vjp
from .network_denoiser import InputOverflowError, NetworkDenoiser

__all__ = ["DiffusionMLP", "InputOverflowError"]


#: rows (points times tangents) of one block of the forward mode: bounds its (rows, H) temporaries
_TANGENT_ROWS = 4096


class DiffusionMLP(NetworkDenoiser):
    r"""A trained (or freshly initialized) MLP denoiser.

    Parameters
    ----------
    config : the architecture (:class:`~npdiff.nn.config.MLPConfig`).
    schedule : the continuous schedule it was trained with (``.schedule`` of the protocol).
    params : (n_params,) weights; None draws PyTorch-style initial weights from ``rng``.
    rng : Generator (or int seed) used only when ``params`` is None.
    dtype : compute dtype, ``np.float64`` (default) or ``np.float32``.
    """

    config_type = MLPConfig

    def __init__(self, config: MLPConfig, schedule: Schedule, params: np.ndarray | None = None, *,
                 rng: np.random.Generator | int | None = None, dtype: type = np.float64) -> None:
        super().__init__(config, schedule, params, rng=rng, dtype=dtype)
        self.net = FastMLP(config)
        weights = self.params.astype(self.dtype)
        self._layers = config.layers(weights)  # the weights the fast path reads
        self._table = config.label_table(weights)  # (C + 1, H), or None

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
        return self._eps(x, t, self._predict(x, t, rows))

    def eps_and_divergence(self, x: object, t: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\hat\epsilon` (B, D) and the exact :math:`\mathrm{tr}\,\partial\hat\epsilon/\partial x` (B,), float64.

        The trace by the blocked forward mode of :mod:`npdiff.nn.fast.trace`; ``y`` as in :meth:`eps`.
        """
        x, t, rows = self._door(x, t, y)
        with np.errstate(over="ignore", invalid="ignore"):
            out, tr = self.net.output_and_trace(self._layers, x, t, rows, self._table)
        return self._eps_and_divergence(x, t, out.astype(np.float64), tr.astype(np.float64))

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
        eps, eps_dot = self._eps_jvp(x, t, vk, out, out_dot)
        return eps, (eps_dot[:, 0] if np.ndim(v) == 2 else eps_dot)

    def eps_vjp(self, x: object, t: object, u: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\hat\epsilon` (B, D) and :math:`u_b^\top\partial\hat\epsilon/\partial x` (B, D), float64.

        The backward pass with respect to the input (module docstring); ``u`` (B, D) one cotangent per point.
        """
        x, t, y = self._tangent_door(x, t, y)
        u = as_tangents(u, x, "u", one=True)[:, 0]  # (B, D)
        with np.errstate(over="ignore", invalid="ignore"):
            out, u_jac = mlp_vjp(self.config, self.params, x, t, u, y)
        return self._eps_vjp(x, t, u, out, u_jac)

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
