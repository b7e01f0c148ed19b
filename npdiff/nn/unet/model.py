r"""The U-Net behind the denoiser protocol, whatever it predicts.

:class:`DiffusionUNet` holds a :class:`~npdiff.nn.unet.config.UNetConfig`, the schedule it was trained
with and a copy of the weights, and answers the protocol of :mod:`npdiff.denoiser` on flattened images
(B, D), D = 64 for the 8x8 digits: ``eps(x, t, y)``, ``eps_and_divergence(x, t, y)`` (the exact trace,
D tangents through the network in batched forward mode), and the optional ``eps_jvp(x, t, v, y)`` and
``eps_vjp(x, t, u, y)``, so every sampler, both likelihoods, guidance and the editing methods run on it
unchanged. A network that predicts x0 or v becomes a noise prediction, with its exact divergence and its
derivatives, through the linear map that :mod:`npdiff.nn.network_denoiser` holds for every network.

A conditional network (``config.num_classes`` C > 0) answers ``y=None`` with its "no label" row, the
unconditional model learned by label dropout, as :class:`~npdiff.nn.model.DiffusionMLP` does.

It runs the reference network (:mod:`npdiff.nn.unet.network`) in ``dtype``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._check import as_float_array
from ...schedule import Schedule, schedule_from_config
from ..network_denoiser import NetworkDenoiser
from .config import UNetConfig
from .network import backward_unchecked, divergence_unchecked, forward_unchecked, jvp_unchecked

__all__ = ["ARCH", "DiffusionUNet"]

#: the architecture's name in :meth:`DiffusionUNet.config_dict`, so that a checkpoint says what it holds
ARCH = "unet"


class DiffusionUNet(NetworkDenoiser):
    r"""A trained (or freshly initialized) U-Net denoiser.

    Parameters
    ----------
    config : the architecture (:class:`~npdiff.nn.unet.config.UNetConfig`).
    schedule : the continuous schedule it was trained with (``.schedule`` of the protocol).
    params : (n_params,) weights; None draws the initial weights of :meth:`UNetConfig.init_params` from ``rng``.
    rng : Generator (or int seed) used only when ``params`` is None.
    dtype : compute dtype, ``np.float64`` (default) or ``np.float32``.
    """

    config_type = UNetConfig

    def __init__(self, config: UNetConfig, schedule: Schedule, params: np.ndarray | None = None, *,
                 rng: np.random.Generator | int | None = None, dtype: type = np.float64) -> None:
        super().__init__(config, schedule, params, rng=rng, dtype=dtype)
        self._weights = config.views(self.params.astype(self.dtype))  # the named views the network reads

    # -- the protocol ------------------------------------------------------------------------------------
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
        return self._eps(x, t, self._predict(x, t, rows))

    def eps_and_divergence(self, x: object, t: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\hat\epsilon` (B, D) and the exact :math:`\mathrm{tr}\,\partial\hat\epsilon/\partial x` (B,), float64.

        The trace is the sum of the D unit tangents' own components (:func:`npdiff.nn.unet.network.divergence`).
        """
        x, t, rows = self._door(x, t, y)
        with np.errstate(over="ignore", invalid="ignore"):
            out, tr = divergence_unchecked(self.config, self._weights, x.astype(self.dtype), t, rows)
        return self._eps_and_divergence(x, t, out.astype(np.float64), tr.astype(np.float64))

    def eps_jvp(self, x: object, t: object, v: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`\hat\epsilon` (B, D) and the Jacobian-vector products (B, K, D), row b, tangent k being
        :math:`(\partial\hat\epsilon(x_b, t_b)/\partial x_b)\,v_{b,k}` for K tangents per image ``v`` (B, K, D)."""
        x, t, rows = self._door(x, t, y)
        v = as_float_array(v, "v")
        if v.ndim != 3 or v.shape[0] != x.shape[0] or v.shape[2] != self.dim or v.shape[1] == 0:
            raise ValueError(f"v must have shape ({x.shape[0]}, K, {self.dim}) with K >= 1, got {v.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            out, out_dot = jvp_unchecked(self.config, self._weights, x.astype(self.dtype), t, rows,
                                         v.transpose(1, 0, 2).astype(self.dtype))  # the network takes (K, B, D)
        return self._eps_jvp(x, t, v, out.astype(np.float64), out_dot.transpose(1, 0, 2).astype(np.float64))

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
        return self._eps_vjp(x, t, u, out.astype(np.float64), u_jac.astype(np.float64))

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
