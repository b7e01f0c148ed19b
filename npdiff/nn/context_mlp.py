r"""A context-conditioned MLP denoiser: the MLP whose first layer also reads a per-example context vector.

The MLP of :mod:`npdiff.nn.mlp` with C more input columns: each point carries a context c (C,) that is
concatenated to its embedding before the first layer, the way SR3 and the cascaded models feed the
(up-sampled) low-resolution image to the super-resolution network (Saharia et al. 2022, SR3, Sec. 2.4;
Ho et al. 2022, CDM, Sec. 3) and GLIDE feeds the known pixels and the mask to its inpainting model
(Nichol et al. 2022, Sec. 3.3)::

    e   = [emb(x, t) | c]                              (B, E + C)   npdiff.nn.embedding, then the context
    h_0 = act(e W_0 + b_0)                              (B, H)       npdiff.nn.mlp.hidden
    h_k = h_{k-1} + act(h_{k-1} W_k + b_k), k = 1..L    (B, H)       npdiff.nn.mlp.residual_block
    y   = h_L W_out + b_out                             (B, D)       npdiff.nn.mlp.dense

Every layer is the MLP's own function (:mod:`npdiff.nn.mlp`); only the first weight matrix is taller,
(E + C, H), its last C rows reading the context.

**Derivatives with respect to x.** The context does not move with x, so its tangent is 0: the input's
tangent is :math:`[\dot e \mid 0]` (:func:`npdiff.nn.mlp.input_tangent` and C zero columns), and the input
cotangent reads only the first E columns of :math:`\partial L/\partial e` back
(:func:`npdiff.nn.mlp.input_cotangent`). The exact divergence is the sum of the D unit tangents' diagonals,
the method of :func:`npdiff.nn.mlp.divergence` unchanged: only the x-columns of the input Jacobian count.

The context y of the protocol is a float array (B, C) (or (C,), one context for the whole batch); it has no
"unconditional" value, so ``y=None`` is refused. Samplers and the likelihood, which call ``eps(x, t)``, see
the model through :class:`npdiff.edit.cascade.WithContext`, which fixes one context per row.

This module is the plain-NumPy float64 reference (no fast path): the trainer runs :func:`loss_and_grad`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._check import as_batch, as_flat_params, as_float_array, as_generator, as_times, positive_int
from ..denoiser import as_tangents
from ..schedule import Schedule, schedule_from_config
from .activations import ACTIVATION_FUNCTIONS
from .config import MLPConfig, init_layers, layer_views
from .embedding import embed
from .mlp import input_cotangent, input_tangent, mse, trunk, trunk_backward, trunk_tangent
from .network_denoiser import NetworkDenoiser

__all__ = ["ContextMLP", "ContextMLPConfig", "backward", "divergence", "forward", "jvp", "loss_and_grad", "vjp"]

@dataclasses.dataclass(frozen=True)
class ContextMLPConfig:
    r"""Architecture of the context-conditioned MLP: :class:`~npdiff.nn.config.MLPConfig`'s fields and ``context_dim``.

    Attributes
    ----------
    dim : data dimension D.
    context_dim : C, the width of the per-example context vector.
    width, depth, emb_dim, activation, parameterization, time_scale, coords, coord_scale : as
        :class:`~npdiff.nn.config.MLPConfig`'s.
    """

    dim: int = 64
    context_dim: int = 65
    width: int = 256
    depth: int = 3
    emb_dim: int = 128
    activation: str = "gelu"
    parameterization: str = "v"
    time_scale: float = 1000.0
    coords: str = "raw"
    coord_scale: float = 25.0

    def __post_init__(self) -> None:
        _ = self.mlp  # the MLP's own checks
        positive_int(self.context_dim, "context_dim")

    @property
    def mlp(self) -> MLPConfig:
        r"""The unconditional MLP this network extends (its layers, embedding and input checks)."""
        return MLPConfig(dim=self.dim, width=self.width, depth=self.depth, emb_dim=self.emb_dim, activation=self.activation,
                         parameterization=self.parameterization, time_scale=self.time_scale, coords=self.coords,
                         coord_scale=self.coord_scale)

    @property
    def num_classes(self) -> int:
        r"""0: the network is conditioned on a context vector, not on class labels."""
        return 0

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        r"""(in, out) of every layer: the MLP's, its first layer C inputs wider."""
        first, *rest = self.mlp.layer_shapes
        return [(first[0] + self.context_dim, first[1]), *rest]

    @property
    def n_params(self) -> int:
        r"""Length of the flat parameter vector."""
        return sum(i * o + o for i, o in self.layer_shapes)

    def layers(self, flat: np.ndarray) -> list:
        r"""Views ``(W (in, out), b (out,))`` into ``flat`` (n_params,), from the first layer to the output layer."""
        return layer_views(flat, self.layer_shapes)

    def init_params(self, rng: np.random.Generator, dtype: type = np.float32) -> np.ndarray:
        r"""PyTorch's ``nn.Linear`` initialization (:func:`~npdiff.nn.config.init_layers`); a (n_params,) vector."""
        rng = as_generator(rng)
        flat = np.empty(self.n_params, dtype)
        init_layers(self.layers(flat), rng)
        return flat

    def check_params(self, flat: object, name: str = "params") -> np.ndarray:
        r"""A finite float32 or float64 vector of length :attr:`n_params`; else a clear error."""
        return as_flat_params(flat, self.n_params, name)

    def check_inputs(self, x: object, t: object) -> tuple[np.ndarray, np.ndarray]:
        r"""Points x (B, D) and times t (B,) as float64 (:meth:`MLPConfig.check_inputs`)."""
        return self.mlp.check_inputs(x, t)

    def check_context(self, y: object, n: int, name: str = "y") -> np.ndarray:
        r"""The context (n, C) float64 of a batch of n points: one row per point, or one (C,) row for all; finite."""
        if y is None:
            raise ValueError(f"{name} must be the context of shape ({n}, {self.context_dim}) (a context-conditioned "
                             "network has no unconditional model), got None")
        c = as_float_array(y, name)
        if c.ndim == 1 and c.shape[0] == self.context_dim:
            c = np.broadcast_to(c, (n, self.context_dim))
        if c.shape != (n, self.context_dim):
            raise ValueError(f"{name} must be the context of shape ({n}, {self.context_dim}) or ({self.context_dim},), "
                             f"got shape {c.shape}")
        return c

    def to_dict(self) -> dict[str, Any]:
        r"""A JSON-serializable dict; :meth:`from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContextMLPConfig:
        r"""Rebuild a config; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(d, dict):
            raise TypeError(f"a context-MLP config must be a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown context-MLP config keys {unknown}")
        return cls(**d)


# -- the whole network: the MLP's layers, the context as C more input columns ----------------------
def _embed(cfg: ContextMLPConfig, x: np.ndarray, t: np.ndarray, c: np.ndarray) -> np.ndarray:
    mlp = cfg.mlp
    e = embed(x, t, emb_dim=mlp.emb_dim, time_scale=mlp.time_scale, coord_scale=mlp.coord_scale,
              raw=mlp.raw, coord=mlp.sinusoidal)  # (B, E)
    return np.concatenate([e, c], axis=1)  # (B, E + C)


def _forward(cfg: ContextMLPConfig, layers: list, x: np.ndarray, t: np.ndarray, c: np.ndarray):
    e = _embed(cfg, x, t, c)  # (B, E + C)
    out, hs, zs = trunk(e, layers, ACTIVATION_FUNCTIONS[cfg.activation])
    return out, (e, hs, zs)


def _backward(cfg: ContextMLPConfig, layers: list, cache: tuple, dy: np.ndarray) -> tuple[list, np.ndarray]:
    # [(dW, db)] per layer and dL/de (B, E + C)
    e, hs, zs = cache
    grads, _, de = trunk_backward(dy, e, hs, zs, layers, ACTIVATION_FUNCTIONS[cfg.activation])
    return grads, de


def _flat(grads: list) -> np.ndarray:
    return np.concatenate([np.concatenate([dW.ravel(), db]) for dW, db in grads])  # (n_params,) the layout of params


def _jvp(cfg: ContextMLPConfig, layers: list, x: np.ndarray, t: np.ndarray, c: np.ndarray, v: np.ndarray):
    # v (K, B, D) -> output (B, D) and its tangents (K, B, D)
    out, (_, _, zs) = _forward(cfg, layers, x, t, c)
    K, B = v.shape[0], x.shape[0]
    e_dot = np.concatenate([input_tangent(cfg.mlp, x, v), np.zeros((K, B, cfg.context_dim))], axis=2)  # c does not move
    return out, trunk_tangent(e_dot, zs, layers, ACTIVATION_FUNCTIONS[cfg.activation])


def _vjp(cfg: ContextMLPConfig, layers: list, x: np.ndarray, t: np.ndarray, c: np.ndarray, u: np.ndarray):
    out, cache = _forward(cfg, layers, x, t, c)
    de = _backward(cfg, layers, cache, u)[1]  # (B, E + C)
    return out, input_cotangent(cfg.mlp, x, de[:, : de.shape[1] - cfg.context_dim])  # the context's columns drop out


def _divergence(cfg: ContextMLPConfig, layers: list, x: np.ndarray, t: np.ndarray, c: np.ndarray):
    B, D = x.shape
    units = np.broadcast_to(np.eye(D)[:, None, :], (D, B, D))  # (D, B, D): tangent d is e_d at every point
    out, out_dot = _jvp(cfg, layers, x, t, c, units)
    return out, np.einsum("dbd->b", out_dot)  # sum_d (J e_d)_d


# -- public: checked once, computed in float64 --------------------------------------------------------
def _door(config: object, params: object, x: object, t: object, y: object):
    if not isinstance(config, ContextMLPConfig):
        raise TypeError(f"config must be a ContextMLPConfig, got {type(config).__name__}")
    layers = config.layers(config.check_params(params).astype(np.float64))
    x, t = config.check_inputs(x, t)
    return config, layers, x, t, config.check_context(y, x.shape[0])


def forward(config: ContextMLPConfig, params: np.ndarray, x: object, t: object, y: object) -> tuple[np.ndarray, tuple]:
    r"""The network's output (B, D) and the cache :func:`backward` reads.

    Parameters
    ----------
    config : the architecture.
    params : (n_params,) weights (float32 or float64).
    x : (B, D) network inputs.
    t : float or (B,) times in [0, 1].
    y : (B, C) contexts (or (C,) for every point).

    Returns
    -------
    out : (B, D) float64, eps, x0 or v (``config.parameterization``).
    cache : (e (B, E + C), [h_0 .. h_L], [z_0 .. z_L]) for :func:`backward`.
    """
    config, layers, x, t, c = _door(config, params, x, t, y)
    return _forward(config, layers, x, t, c)


def backward(config: ContextMLPConfig, params: np.ndarray, cache: tuple, dy: np.ndarray) -> np.ndarray:
    r"""Gradient (n_params,) of a loss with respect to every parameter, given dL/dout (B, D) and :func:`forward`'s cache."""
    if not isinstance(config, ContextMLPConfig):
        raise TypeError(f"config must be a ContextMLPConfig, got {type(config).__name__}")
    return _flat(_backward(config, config.layers(config.check_params(params).astype(np.float64)), cache, dy)[0])


def loss_and_grad(config: ContextMLPConfig, params: np.ndarray, x: object, t: object, target: object,
                  weight: object | None = None, y: object = None) -> tuple[float, np.ndarray]:
    r"""The weighted squared error of :func:`npdiff.nn.mlp.mse` and its gradient (n_params,).

    x, target (B, D); t a float or (B,); weight (B,) per-example weights >= 0 (default 1); y the contexts (B, C).
    """
    config, layers, x, t, c = _door(config, params, x, t, y)
    target = as_batch(target, "target", dim=config.dim)
    if target.shape != x.shape:
        raise ValueError(f"target must have the shape of x {x.shape}, got {target.shape}")
    weight = np.ones(x.shape[0]) if weight is None else as_times(weight, x.shape[0], "weight", lo=0.0, hi=np.inf)
    out, cache = _forward(config, layers, x, t, c)
    loss, dy = mse(out, target, weight)
    return loss, _flat(_backward(config, layers, cache, dy)[0])


def jvp(config: ContextMLPConfig, params: np.ndarray, x: object, t: object, v: object, y: object
        ) -> tuple[np.ndarray, np.ndarray]:
    r"""Output (B, D) and the Jacobian-vector products :math:`(\partial\,\mathrm{out}/\partial x)\,v_k` (c held fixed).

    ``v`` is one tangent (B, D) or K stacked tangents (K, B, D); the products have its shape. ``y`` the contexts.
    """
    config, layers, x, t, c = _door(config, params, x, t, y)
    v = as_float_array(v, "v")
    vk = v[None] if v.ndim == 2 else v
    if vk.ndim != 3 or vk.shape[1:] != x.shape:
        raise ValueError(f"v must have shape {x.shape} or (K, *{x.shape}), got {v.shape}")
    out, out_dot = _jvp(config, layers, x, t, c, vk)
    return out, (out_dot[0] if v.ndim == 2 else out_dot)


def vjp(config: ContextMLPConfig, params: np.ndarray, x: object, t: object, u: object, y: object
        ) -> tuple[np.ndarray, np.ndarray]:
    r"""Output (B, D) and the vector-Jacobian products :math:`u_b^\top\,\partial\,\mathrm{out}_b/\partial x_b` (B, D)."""
    config, layers, x, t, c = _door(config, params, x, t, y)
    u = as_float_array(u, "u")
    if u.shape != x.shape:
        raise ValueError(f"u must have the shape of x {x.shape}, got {u.shape}")
    return _vjp(config, layers, x, t, c, u)


def divergence(config: ContextMLPConfig, params: np.ndarray, x: object, t: object, y: object
               ) -> tuple[np.ndarray, np.ndarray]:
    r"""Output (B, D) and the exact trace :math:`\mathrm{tr}\,\partial\,\mathrm{out}/\partial x` (B,) by the D unit tangents."""
    config, layers, x, t, c = _door(config, params, x, t, y)
    return _divergence(config, layers, x, t, c)


# -- the denoiser of the protocol -------------------------------------------------------------------
class ContextMLP(NetworkDenoiser):
    r"""The context-conditioned MLP as a conditional denoiser: ``eps(x, t, y)`` with y the contexts (B, C).

    Parameters
    ----------
    config : the architecture (:class:`ContextMLPConfig`).
    schedule : the continuous schedule it was trained with.
    params : (n_params,) weights; None draws initial weights from ``rng``.
    rng : Generator (or int seed) used only when ``params`` is None.
    dtype : accepted for the shared constructor; the reference computes in float64 whatever it is.
    """

    config_type = ContextMLPConfig

    def __init__(self, config: ContextMLPConfig, schedule: Schedule, params: np.ndarray | None = None, *,
                 rng: np.random.Generator | int | None = None, dtype: type = np.float64) -> None:
        super().__init__(config, schedule, params, rng=rng, dtype=dtype)
        self._layers = config.layers(self.params.astype(np.float64))

    @property
    def context_dim(self) -> int:
        r"""Width C of the context vector."""
        return self.config.context_dim

    def _door(self, x: object, t: object, y: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, t = self.config.check_inputs(x, t)
        return x, t, self.config.check_context(y, x.shape[0])

    def _predict(self, x: np.ndarray, t: np.ndarray, c: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            out = _forward(self.config, self._layers, x, t, c)[0]
        self._finite(x, out)
        return out

    def eps(self, x: object, t: object, y: object = None) -> np.ndarray:
        r"""Predicted noise (B, D), float64; ``y``: the contexts (B, C) (or (C,)), required."""
        x, t, c = self._door(x, t, y)
        return self._eps(x, t, self._predict(x, t, c))

    def eps_and_divergence(self, x: object, t: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r"""Predicted noise (B, D) and its exact divergence (B,) by the D unit tangents (module docstring)."""
        x, t, c = self._door(x, t, y)
        with np.errstate(over="ignore", invalid="ignore"):
            out, tr = _divergence(self.config, self._layers, x, t, c)
        return self._eps_and_divergence(x, t, out, tr)

    def eps_jvp(self, x: object, t: object, v: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r"""Predicted noise (B, D) and :math:`(\partial\hat\epsilon/\partial x)\,v` for v (B, K, D) (or (B, D))."""
        x, t, c = self._door(x, t, y)
        vk = as_tangents(v, x)  # (B, K, D)
        with np.errstate(over="ignore", invalid="ignore"):
            out, out_dot = _jvp(self.config, self._layers, x, t, c, np.swapaxes(vk, 0, 1))
        eps, eps_dot = self._eps_jvp(x, t, vk, out, np.swapaxes(out_dot, 0, 1))
        return eps, (eps_dot[:, 0] if np.ndim(v) == 2 else eps_dot)

    def eps_vjp(self, x: object, t: object, u: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r"""Predicted noise (B, D) and :math:`u^\top\partial\hat\epsilon/\partial x` (B, D)."""
        x, t, c = self._door(x, t, y)
        u = as_tangents(u, x, "u", one=True)[:, 0]  # (B, D)
        with np.errstate(over="ignore", invalid="ignore"):
            out, u_jac = _vjp(self.config, self._layers, x, t, c, u)
        return self._eps_vjp(x, t, u, out, u_jac)

    # -- serialization ---------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        r"""Architecture and schedule as a JSON-serializable dict."""
        return {"model": self.config.to_dict(), "schedule": self.schedule.config()}

    @classmethod
    def from_config_dict(cls, d: dict[str, Any], params: np.ndarray, *, dtype: type = np.float64) -> ContextMLP:
        r"""Inverse of :meth:`config_dict` given the weights."""
        return cls(ContextMLPConfig.from_dict(d["model"]), schedule_from_config(d["schedule"]), params, dtype=dtype)

    def __repr__(self) -> str:
        c = self.config
        return (f"ContextMLP(D={c.dim}, context={c.context_dim}, width={c.width}, depth={c.depth}, "
                f"predicts {c.parameterization}, schedule={self.schedule!r})")
