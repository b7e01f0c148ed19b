r"""The MLP denoiser network: forward pass, hand-written backward pass, forward-mode Jacobian.

Architecture (the tiny-diffusion 2D model, with every choice a field of :class:`MLPConfig`)::

    e   = [x | emb(x_1) .. emb(x_D) | emb(t)]          (B, E)   npdiff.nn.embedding
    h_0 = act(e W_0 + b_0)                              (B, H)
    h_k = h_{k-1} + act(h_{k-1} W_k + b_k),  k = 1..L   (B, H)   residual blocks
    y   = h_L W_out + b_out                             (B, D)   eps, x0 or v

Weights are stored (in, out), so a layer is ``h @ W + b``, and every parameter is a view
into ONE flat vector: the optimizer then updates all of them in a single fused kernel.

**Backward** (reverse mode; z_k is the pre-activation, d_k = act'(z_k) kept by the forward):

.. math::
    \bar y = \partial L/\partial y,\quad \bar W_{out} = h_L^\top \bar y,\quad \bar h_L = \bar y W_{out}^\top;
    \qquad \bar z_k = \bar h_k \odot d_k,\quad \bar W_k = h_{k-1}^\top \bar z_k,\quad \bar b_k = \textstyle\sum_{rows}\bar z_k,
    \quad \bar h_{k-1} = \bar h_k + \bar z_k W_k^\top

(the residual passes :math:`\bar h_k` straight through; Rumelhart et al. 1986 for backpropagation,
He et al. 2016 for the residual block), ending with :math:`\bar W_0 = e^\top \bar z_0`.

**Forward-mode Jacobian** (JVP): a tangent :math:`\dot x` goes through the same layers,

.. math:: \dot e = \partial e/\partial x\,\dot x,\quad \dot z_k = \dot h_{k-1} W_k,\quad
          \dot h_k = \dot h_{k-1} + d_k \odot \dot z_k,\quad \dot y = \dot h_L W_{out}

(the biases drop out). K tangents are stacked along the batch axis, so each layer is one
(K B, H) x (H, H) matmul. With the D unit tangents :math:`\dot x = e_d` the divergence is
exact: :math:`\mathrm{tr}\,\partial y/\partial x = \sum_d \dot y^{(d)}_d`, D passes and no
Hutchinson noise (the likelihood of Song et al. 2021, Eq. 39 needs it). The trace itself is
computed by the blocked, fused version of these passes in :mod:`npdiff.nn.trace`.

**Dropout** (training only; Srivastava et al. 2014, inverted scaling): with keep masks
:math:`m_k \in \{0, 1\}^{B \times H}`, :math:`P(m = 1) = 1 - p`, and :math:`s_k = m_k / (1 - p)`,
the residual branch of every hidden layer is thinned,

.. math:: h_0 = s_0 \odot \mathrm{act}(z_0),\qquad h_k = h_{k-1} + s_k \odot \mathrm{act}(z_k),

so :math:`\partial h_k/\partial z_k = s_k \odot \mathrm{act}'(z_k)`: storing :math:`d_k \leftarrow s_k \odot d_k`
leaves the backward above exact and unchanged. Evaluation (outputs, JVPs, traces) never drops; the
:math:`1/(1-p)` scale keeps the expected branch equal to the undropped one.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any

import numpy as np

from .._check import as_batch, as_times, positive_int, real_scalar
from . import kernels as K
from .activations import ACTIVATIONS, activation
from .embedding import frequencies, input_width
from .trace import one_time, output_and_trace

__all__ = ["MLP", "PARAMETERIZATIONS", "TIME_INPUTS", "MLPConfig"]

PARAMETERIZATIONS = ("eps", "x0", "v")
TIME_INPUTS = ("t", "log_t")
#: the largest coord_scale * |x| whose sine and cosine the kernels compute (see MLP.check_embedding_range)
EMBEDDING_RANGE = 1e6


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    r"""Architecture of the MLP denoiser; every field is a lever of the quality work.

    Attributes
    ----------
    dim : data dimension D.
    width : hidden units H of every layer.
    depth : number L of residual blocks after the first layer.
    emb_dim : features per sinusoidal embedding (even, >= 4).
    activation : ``"gelu"`` or ``"silu"``.
    parameterization : what the network predicts: ``"eps"``, ``"x0"`` or ``"v"``.
    time_scale : the time embedding sees ``time_scale * t`` (1000: the DDPM step index), or
        ``time_scale * log t`` with ``time_input="log_t"``.
    time_input : ``"t"`` or ``"log_t"``: what the time embedding reads. ``log t`` spreads the
        small times, where the data's fine detail is decided, over many periods of the
        embedding: for a VP schedule :math:`\sigma^2 \approx \beta_{\min} t` there, so
        :math:`\log t \approx 2\log\sigma + c`, the noise input of Karras et al. 2022
        (Table 1, :math:`c_{noise} = \tfrac14\ln\sigma`). It needs t > 0.
    coord_embedding : embed each coordinate sinusoidally (tiny-diffusion style).
    coord_scale : the coordinate embedding sees ``coord_scale * x_d``.
    raw_coords : also feed x itself; always on when ``coord_embedding`` is off.
    dropout : probability p in [0, 1) of dropping a hidden unit's residual branch during
        training (module docstring); 0 turns it off. Evaluation never drops.
    """

    dim: int = 2
    width: int = 128
    depth: int = 3
    emb_dim: int = 128
    activation: str = "gelu"
    parameterization: str = "eps"
    time_scale: float = 1000.0
    time_input: str = "t"
    coord_embedding: bool = True
    coord_scale: float = 25.0
    raw_coords: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        positive_int(self.dim, "dim")
        positive_int(self.width, "width")
        positive_int(self.depth, "depth", minimum=0)
        positive_int(self.emb_dim, "emb_dim", minimum=4)
        if self.emb_dim % 2:
            raise ValueError(f"emb_dim must be even (half sines, half cosines), got {self.emb_dim}")
        activation(self.activation)
        if not isinstance(self.parameterization, str) or self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got {self.parameterization!r}")
        real_scalar(self.time_scale, "time_scale", lo=0.0, lo_open=True)
        if not isinstance(self.time_input, str) or self.time_input not in TIME_INPUTS:
            raise ValueError(f"time_input must be one of {TIME_INPUTS}, got {self.time_input!r}")
        real_scalar(self.coord_scale, "coord_scale", lo=0.0, lo_open=True)
        real_scalar(self.dropout, "dropout", lo=0.0, hi=1.0, hi_open=True)
        for name in ("coord_embedding", "raw_coords"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")

    @property
    def raw(self) -> bool:
        r"""Whether x itself is an input (asked for, or the only view of x without the embedding)."""
        return self.raw_coords or not self.coord_embedding

    @property
    def input_width(self) -> int:
        r"""Number E of network inputs."""
        return input_width(self.dim, self.emb_dim, raw=self.raw, coord=self.coord_embedding)

    def to_dict(self) -> dict[str, Any]:
        r"""A JSON-serializable dict; :meth:`from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MLPConfig:
        r"""Rebuild a config; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(d, dict):
            raise TypeError(f"an MLP config must be a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown MLP config keys {unknown}")
        return cls(**d)


class _Work:
    r"""Preallocated buffers for one batch size and dtype, reused by every call."""

    def __init__(self, B: int, cfg: MLPConfig, dtype: np.dtype) -> None:
        H, L = cfg.width, cfg.depth
        self.emb = np.empty((B, cfg.input_width), dtype)  # (B, E)
        self.z = np.empty((B, H), dtype)  # pre-activation scratch
        self.h = [np.empty((B, H), dtype) for _ in range(L + 1)]  # h_0 .. h_L
        self.d = [np.empty((B, H), dtype) for _ in range(L + 1)]  # act'(z_0) .. act'(z_L)
        self.out = np.empty((B, cfg.dim), dtype)  # h_L W_out, without b_out
        self.dout = np.empty((B, cfg.dim), dtype)
        self.g = np.empty((B, H), dtype)  # dL/dh_k
        self.dz = np.empty((B, H), dtype)  # dL/dz_k
        self.tmp = np.empty((B, H), dtype)
        self.no_tan = np.empty((0, 0, 0), dtype)


class MLP:
    r"""The network of the module docstring, acting on a flat parameter vector.

    It owns no parameters, only the layout and reusable buffers: the same ``MLP`` serves the
    float32 training weights and a float64 copy used for likelihoods. Shapes: x (B, D),
    t (B,), params (n_params,) float32 or float64 (that dtype is the compute dtype).
    """

    def __init__(self, config: MLPConfig) -> None:
        if not isinstance(config, MLPConfig):
            raise TypeError(f"config must be an MLPConfig, got {type(config).__name__}")
        self.config = config
        self.act = ACTIVATIONS[config.activation]
        self.freq = frequencies(config.emb_dim)  # (emb_dim / 2,)
        H = config.width
        fan = [config.input_width] + [H] * config.depth + [H]
        outs = [H] * (config.depth + 1) + [config.dim]
        self.shapes: list[tuple[tuple[int, int], tuple[int]]] = [((i, o), (o,)) for i, o in zip(fan, outs)]
        self.offsets: list[tuple[int, int, int]] = []  # (start of W, start of b, end)
        start = 0
        for (i, o), _ in self.shapes:
            self.offsets.append((start, start + i * o, start + i * o + o))
            start += i * o + o
        self.n_params = start
        self._work: OrderedDict[tuple[int, str], _Work] = OrderedDict()

    # -- parameters ------------------------------------------------------------------------
    def init_params(self, rng: np.random.Generator, dtype: type = np.float32) -> np.ndarray:
        r"""PyTorch's ``nn.Linear`` initialization: W and b uniform in :math:`\pm 1/\sqrt{\mathrm{fan\_in}}`.

        (He et al. 2015's Kaiming-uniform with a = sqrt(5), which reduces to this bound.)
        Returns a (n_params,) vector of ``dtype``.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        flat = np.empty(self.n_params, dtype)
        for ((fan_in, _), _), (s, _, e) in zip(self.shapes, self.offsets):
            bound = 1.0 / np.sqrt(fan_in)
            flat[s:e] = rng.uniform(-bound, bound, e - s)
        return flat

    def layers(self, flat: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        r"""Views (W (in, out), b (out,)) into ``flat``, from the first layer to the output layer."""
        return [(flat[s:m].reshape(shape_w), flat[m:e]) for (shape_w, _), (s, m, e) in zip(self.shapes, self.offsets)]

    def _check_params(self, flat: object, name: str = "params") -> np.ndarray:
        if not isinstance(flat, np.ndarray) or flat.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must be a float32 or float64 numpy array, got {type(flat).__name__}")
        if flat.shape != (self.n_params,):
            raise ValueError(f"{name} must have shape ({self.n_params},) for this config, got {flat.shape}")
        return flat

    def _check_xt(self, x: object, t: object) -> tuple[np.ndarray, np.ndarray]:
        x = as_batch(x, "x", dim=self.config.dim)
        self.check_embedding_range(x)
        t = as_times(t, x.shape[0])
        self.check_times(t)
        return x, t

    def check_times(self, t: np.ndarray) -> None:
        r"""Refuse t = 0 when the time embedding reads log t (``time_input="log_t"``)."""
        if self.config.time_input == "log_t" and t.size and float(t.min()) <= 0.0:
            raise ValueError(f"t must be > 0 for a model whose time embedding reads log t, got t down to {t.min()!r}")

    def time_input(self, t: np.ndarray) -> np.ndarray:
        r"""What the time embedding reads: t, or log t (``MLPConfig.time_input``). (B,) float64."""
        return np.log(t) if self.config.time_input == "log_t" else t

    def check_embedding_range(self, x: np.ndarray) -> None:
        r"""Refuse x whose sinusoidal embedding the kernels cannot compute: ``coord_scale * |x|`` up to 1e6.

        The Numba sine and cosine reduce their argument by multiples of pi/2 exactly only below
        ~1.6e6 (``npdiff.nn.kernels._sincos``); beyond, they and their NumPy twin would disagree.
        """
        cfg = self.config
        if cfg.coord_embedding and x.size:
            biggest = float(np.max(np.abs(x)))
            if cfg.coord_scale * biggest > EMBEDDING_RANGE:
                raise ValueError(f"x up to |x| = {biggest:.3g} is beyond the coordinate embedding's range "
                                 f"(coord_scale * |x| <= {EMBEDDING_RANGE:g}, coord_scale = {cfg.coord_scale:g})")

    def work(self, B: int, dtype: np.dtype) -> _Work:
        r"""The buffers for batch size B and ``dtype`` (the last few sizes are kept)."""
        key = (B, np.dtype(dtype).str)
        w = self._work.get(key)
        if w is None:
            w = self._work[key] = _Work(B, self.config, np.dtype(dtype))
            while len(self._work) > 4:
                self._work.popitem(last=False)
        else:
            self._work.move_to_end(key)
        return w

    # -- dropout ---------------------------------------------------------------------------
    def dropout_masks(self, rng: np.random.Generator, B: int, dtype: type = np.float32) -> np.ndarray | None:
        r"""Scaled keep masks :math:`s_k = m_k / (1 - p)` for one training batch, or None when p = 0.

        :math:`m_k \sim \mathrm{Bernoulli}(1 - p)` elementwise (module docstring). Returns an
        (L + 1, B, H) array of ``dtype`` holding 0 or 1/(1 - p); with p = 0 nothing is drawn,
        so ``rng`` is not advanced and training is exactly that of a model without dropout.
        """
        p = self.config.dropout
        if p == 0:  # before any check: the training loop calls this every step
            return None
        positive_int(B, "B")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        u = rng.random((self.config.depth + 1, B, self.config.width))  # (L + 1, B, H) uniform on [0, 1)
        return (u >= p) * np.dtype(dtype).type(1.0 / (1.0 - p))  # bool * scalar: the mask made in dtype directly

    @staticmethod
    def _drop(w: _Work, keep: np.ndarray, k: int) -> None:
        # h_k = h_{k-1} + s_k act(z_k), and d_k <- s_k act'(z_k) = dh_k/dz_k, so the backward needs no change
        w.h[k] *= keep[k]
        w.d[k] *= keep[k]
        if k > 0:
            w.h[k] += w.h[k - 1]

    # -- forward ---------------------------------------------------------------------------
    def _forward(self, layers: list, x: np.ndarray, t: np.ndarray, w: _Work, tan: np.ndarray | None = None,
                 keep: np.ndarray | None = None) -> None:
        # fills w.emb, w.h, w.d and w.out = h_L W_out (b_out is added by the caller or the loss);
        # keep (L + 1, B, H): dropout masks from dropout_masks (training only), None for no dropout
        cfg = self.config
        want_tan = tan is not None
        K.embed(x, self.time_input(t), self.freq, cfg.time_scale, cfg.coord_scale, cfg.raw, cfg.coord_embedding, w.emb,
                tan if want_tan else w.no_tan, want_tan)
        W, b = layers[0]
        if one_time(t):
            # One time for the whole batch (every ODE or sampler step): emb(t) W_0 is one row, folded
            # into the bias, so the first layer multiplies only the x-dependent columns.
            n_x = cfg.input_width - cfg.emb_dim
            np.matmul(w.emb[:, :n_x], W[:n_x], out=w.z)
            b = b + w.emb[0, n_x:] @ W[n_x:]  # (H,)
        else:
            np.matmul(w.emb, W, out=w.z)
        K.bias_act(w.z, b, w.z, self.act, False, w.h[0], w.d[0])
        if keep is not None:
            self._drop(w, keep, 0)
        for k in range(1, cfg.depth + 1):
            W, b = layers[k]
            np.matmul(w.h[k - 1], W, out=w.z)
            K.bias_act(w.z, b, w.h[k - 1], self.act, keep is None, w.h[k], w.d[k])  # residual added by _drop
            if keep is not None:
                self._drop(w, keep, k)
        np.matmul(w.h[-1], layers[-1][0], out=w.out)

    def forward(self, params: np.ndarray, x: object, t: object) -> np.ndarray:
        r"""The raw network output y (B, D) in the dtype of ``params`` (eps, x0 or v: see the config)."""
        params = self._check_params(params)
        x, t = self._check_xt(x, t)
        layers = self.layers(params)
        w = self.work(x.shape[0], params.dtype)
        self._forward(layers, x, t, w)
        return w.out + layers[-1][1]  # (B, D)

    # -- backward --------------------------------------------------------------------------
    def _loss_and_grad(self, layers: list, grads: list, w: _Work, target: np.ndarray, weight: np.ndarray) -> float:
        # after _forward: L = mean_{b,d} weight_b (y - target)^2, gradients written into grads' views
        L = self.config.depth
        loss = K.mse_loss(w.out, layers[-1][1], target, weight, w.dout, grads[-1][1])
        np.matmul(w.h[L].T, w.dout, out=grads[-1][0])
        np.matmul(w.dout, layers[-1][0].T, out=w.g)  # dL/dh_L
        K.act_backward(w.g, w.tmp, w.d[L], False, w.dz, grads[L][1])  # dL/dz_L
        for k in range(L, 0, -1):
            np.matmul(w.h[k - 1].T, w.dz, out=grads[k][0])
            np.matmul(w.dz, layers[k][0].T, out=w.tmp)
            # dL/dh_{k-1} = dL/dh_k + dz_k W_k^T (residual), then dL/dz_{k-1}
            K.act_backward(w.g, w.tmp, w.d[k - 1], True, w.dz, grads[k - 1][1])
        np.matmul(w.emb.T, w.dz, out=grads[0][0])
        return loss

    def loss_and_grad(self, params: np.ndarray, grad: np.ndarray, x: object, t: object, target: object,
                      weight: object | None = None, rng: np.random.Generator | None = None) -> float:
        r"""Weighted squared error and its gradient with respect to every parameter.

        .. math:: L = \frac{1}{BD}\sum_{b,d} w_b\,(y_{bd} - \mathrm{target}_{bd})^2

        Parameters
        ----------
        params : (n_params,) weights; grad : (n_params,) array of the same dtype, overwritten
            with dL/dparams. x : (B, D) network inputs; t : float or (B,) times.
        target : (B, D) what y should be; weight : (B,) per-example weights (default 1).
        rng : the Generator that draws the dropout masks (:meth:`dropout_masks`) when the
            config's ``dropout`` > 0; None: no dropout (the loss of the evaluated network).

        Returns
        -------
        The loss L (float).
        """
        params = self._check_params(params)
        grad = self._check_params(grad, "grad")
        if grad.dtype != params.dtype:
            raise ValueError(f"grad must have the dtype of params ({params.dtype}), got {grad.dtype}")
        x, t = self._check_xt(x, t)
        target = as_batch(target, "target", dim=self.config.dim)
        if target.shape != x.shape:
            raise ValueError(f"target must have the shape of x {x.shape}, got {target.shape}")
        weight = np.ones(x.shape[0]) if weight is None else as_times(weight, x.shape[0], "weight", lo=0.0, hi=np.inf)
        w = self.work(x.shape[0], params.dtype)
        layers = self.layers(params)
        keep = None if rng is None else self.dropout_masks(rng, x.shape[0], params.dtype)
        self._forward(layers, x, t, w, keep=keep)
        return self._loss_and_grad(layers, self.layers(grad), w, target, weight)

    # -- forward-mode Jacobian ---------------------------------------------------------------
    def _push(self, layers: list, w: _Work, dz0: np.ndarray) -> np.ndarray:
        # push K stacked first-layer tangents dz0 (K, B, H) to the output: (K, B, D)
        nK, B, H = dz0.shape
        dh = np.empty_like(dz0)
        K.jvp_act(dz0, w.d[0], dh, False, dh)
        dz = dz0.reshape(nK * B, H)  # reuse dz0 as scratch
        for k in range(1, self.config.depth + 1):
            np.matmul(dh.reshape(nK * B, H), layers[k][0], out=dz)
            K.jvp_act(dz0, w.d[k], dh, True, dh)  # dh <- dh + d_k * dz_k
        return (dh.reshape(nK * B, H) @ layers[-1][0]).reshape(nK, B, self.config.dim)

    def jvp(self, params: np.ndarray, x: object, t: object, v: object) -> tuple[np.ndarray, np.ndarray]:
        r"""Output y (B, D) and the Jacobian-vector products :math:`(\partial y/\partial x)\,v_k` (K, B, D).

        ``v`` is one tangent (B, D) or K stacked tangents (K, B, D); each tangent row is the
        direction for the matching point of x. Shapes of the output follow ``v``.
        """
        params = self._check_params(params)
        x, t = self._check_xt(x, t)
        v = np.asarray(v, dtype=np.float64)
        single = v.ndim == 2
        vk = v[None] if single else v
        if vk.ndim != 3 or vk.shape[1:] != x.shape:
            raise ValueError(f"v must have shape {x.shape} or (K, *{x.shape}), got {v.shape}")
        cfg = self.config
        layers = self.layers(params)
        B, D = x.shape
        w = self.work(B, params.dtype)
        tan = np.empty((D, B, cfg.emb_dim), params.dtype) if cfg.coord_embedding else None
        self._forward(layers, x, t, w, tan)
        y = w.out + layers[-1][1]
        e_dot = np.zeros((vk.shape[0], B, cfg.input_width), params.dtype)  # tangent of the input (K, B, E)
        col = 0
        if cfg.raw:
            e_dot[:, :, :D] = vk
            col = D
        if cfg.coord_embedding:
            for d in range(D):
                e_dot[:, :, col:col + cfg.emb_dim] = vk[:, :, d, None] * tan[d]
                col += cfg.emb_dim
        dz0 = (e_dot.reshape(-1, cfg.input_width) @ layers[0][0]).reshape(vk.shape[0], B, cfg.width)
        jv = self._push(layers, w, dz0)
        return y, (jv[0] if single else jv)

    def _output_and_trace(self, layers: list, x: np.ndarray, t: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        return output_and_trace(self, layers, x, t, dtype)  # blocked and fused: npdiff.nn.trace

    def output_and_trace(self, params: np.ndarray, x: object, t: object) -> tuple[np.ndarray, np.ndarray]:
        r"""Output y (B, D) and the exact trace :math:`\mathrm{tr}\,\partial y/\partial x` (B,) by D tangent passes."""
        params = self._check_params(params)
        x, t = self._check_xt(x, t)
        return self._output_and_trace(self.layers(params), x, t, params.dtype)
