r"""A prompt-conditioned MLP denoiser: the MLP's hidden state cross-attends to the encoded prompt.

The MLP of :mod:`npdiff.nn.mlp` with one cross-attention layer after its first layer (Rombach et al.
2022, Sec. 3.3, on an MLP instead of a U-Net): the first hidden state h (B, H) is split into Q query
tokens of H / Q features, each reads the encoded prompt c (:func:`npdiff.nn.text.encode`) through
cross-attention with a residual, and the tokens are joined back into h for the residual blocks::

    e = emb(x, t)                         (B, E)     npdiff.nn.embedding
    h_0 = act(e W_0 + b_0)                (B, H)     npdiff.nn.mlp.hidden
    c = encode(ids)                       (B, L + 1, C_t)
    h = join(split(h_0) + MHA(split(h_0), c))        npdiff.nn.text.cross_attention
    h = h + act(h W_k + b_k), k = 1..L_blocks        npdiff.nn.mlp.residual_block
    y = h W_out + b_out                   (B, D)

The prompt y of the protocol is its token ids (B, L) (or (L,) for one prompt for the batch), padded with
0 (:func:`npdiff.data.prompts.tokenize`); ``y=None`` is the empty prompt, the encoder's start token
alone: the unconditional model that attribute and prompt dropout train, so classifier-free guidance
is :math:`(1 + w)\epsilon(x, t, y) - w\epsilon(x, t, \varnothing)` as with labels.

**Derivatives with respect to x.** The prompt does not move with x, so the forward-mode tangent passes
the encoder by (:math:`\dot c = 0`) and crosses only the queries' side of the attention
(:func:`npdiff.nn.text.cross_attention_tangent`); the exact divergence is the sum of the D unit tangents'
diagonals, the method of :func:`npdiff.nn.mlp.divergence` unchanged. The input VJP is the backward pass
stopped at the input.

This module is the plain-NumPy float64 reference (there is no fast path yet). Weights live in one flat
vector: the MLP's layers in :class:`~npdiff.nn.config.MLPConfig`'s layout, then the named text arrays of
:attr:`PromptMLPConfig.text_shapes`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._check import as_batch, as_flat_params, as_float_array, as_generator, as_integers, as_times, positive_int
from ..data.prompts import DIGIT_VOCABULARY, MAX_WORDS, START
from ..denoiser import as_tangents
from .activations import ACTIVATION_FUNCTIONS
from .config import MLPConfig, init_layers
from .embedding import embed
from .mlp import (
    dense,
    dense_backward,
    dense_tangent,
    hidden,
    hidden_backward,
    hidden_tangent,
    input_cotangent,
    input_tangent,
    mse,
    residual_block,
    residual_block_backward,
    residual_block_tangent,
)
from .network_denoiser import NetworkDenoiser
from .text import ATTENTION_KEYS, cross_attention, cross_attention_backward, cross_attention_tangent, encode, encode_backward

__all__ = ["PromptMLP", "PromptMLPConfig", "backward", "divergence", "forward", "jvp", "loss_and_grad", "vjp"]



@dataclasses.dataclass(frozen=True)
class PromptMLPConfig:
    r"""Architecture of the prompt-conditioned MLP.

    Attributes
    ----------
    dim : data dimension D.
    width : hidden units H of every MLP layer.
    depth : residual blocks after the first layer (and after the cross-attention).
    emb_dim : features per sinusoidal embedding.
    activation : ``"gelu"`` or ``"silu"``.
    parameterization : ``"eps"``, ``"x0"`` or ``"v"``.
    time_scale : the time embedding reads ``time_scale * t``.
    coords : what the network sees of x, as :class:`~npdiff.nn.config.MLPConfig`'s.
    coord_scale : the coordinate embedding reads ``coord_scale * x_d``.
    vocab_size : V token ids, padding and start included (the digits' vocabulary: 19).
    max_words : the longest prompt, in words.
    text_width : C_t channels of the token embeddings, the encoder and the cross-attention.
    text_heads : heads of the encoder's self-attention (divides ``text_width``).
    query_tokens : Q tokens the hidden state is split into (divides ``width``).
    cross_heads : heads of the cross-attention (divides ``text_width``).
    """

    dim: int = 64
    width: int = 128
    depth: int = 2
    emb_dim: int = 16
    activation: str = "gelu"
    parameterization: str = "eps"
    time_scale: float = 1000.0
    coords: str = "raw"
    coord_scale: float = 25.0
    vocab_size: int = DIGIT_VOCABULARY.size
    max_words: int = MAX_WORDS
    text_width: int = 32
    text_heads: int = 2
    query_tokens: int = 4
    cross_heads: int = 2

    def __post_init__(self) -> None:
        _ = self.mlp  # the MLP's own checks
        positive_int(self.vocab_size, "vocab_size", minimum=3)
        positive_int(self.max_words, "max_words")
        for name, whole in (("text_heads", "text_width"), ("cross_heads", "text_width"), ("query_tokens", "width")):
            n, w = positive_int(getattr(self, name), name), positive_int(getattr(self, whole), whole)
            if w % n:
                raise ValueError(f"{name} must divide {whole} = {w}, got {n}")

    @property
    def mlp(self) -> MLPConfig:
        r"""The unconditional MLP around the cross-attention (its layers, embedding and input checks)."""
        return MLPConfig(dim=self.dim, width=self.width, depth=self.depth, emb_dim=self.emb_dim, activation=self.activation,
                         parameterization=self.parameterization, time_scale=self.time_scale, coords=self.coords,
                         coord_scale=self.coord_scale)

    @property
    def num_classes(self) -> int:
        r"""0: the network is conditioned on prompts, not on class labels."""
        return 0

    @property
    def text_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        r"""(name, shape) of every text array after the MLP's layers, in the flat vector's order."""
        C, Hq = self.text_width, self.width // self.query_tokens
        shapes = [("tok", (self.vocab_size, C)), ("pos", (self.max_words + 1, C)), ("enc.g", (C,))]
        shapes += [(f"enc.{k}", s) for k, s in zip(ATTENTION_KEYS, [(C, C), (C,)] * 4)]
        shapes += [(f"cross.{k}", s) for k, s in zip(ATTENTION_KEYS, [(Hq, C), (C,), (C, C), (C,), (C, C), (C,), (C, Hq), (Hq,)])]
        return shapes

    @property
    def n_params(self) -> int:
        r"""Length of the flat parameter vector."""
        return self.mlp.n_params + sum(int(np.prod(s)) for _, s in self.text_shapes)

    def views(self, flat: np.ndarray) -> tuple[list, dict[str, np.ndarray]]:
        r"""The MLP's layers ``[(W, b), ...]`` and the named text arrays, views into ``flat`` (n_params,)."""
        start, text = self.mlp.n_params, {}
        for name, shape in self.text_shapes:
            size = int(np.prod(shape))
            text[name] = flat[start:start + size].reshape(shape)
            start += size
        return self.mlp.layers(flat), text

    def init_params(self, rng: np.random.Generator, dtype: type = np.float32) -> np.ndarray:
        r"""Linear layers as PyTorch's ``nn.Linear``; embeddings N(0, 1); the RMSNorm gain 1. A (n_params,) vector."""
        rng = as_generator(rng)
        flat = np.empty(self.n_params, dtype)
        layers, text = self.views(flat)
        init_layers(layers, rng)
        text["tok"][...] = rng.standard_normal(text["tok"].shape)
        text["pos"][...] = rng.standard_normal(text["pos"].shape)
        text["enc.g"][...] = 1.0
        for block in ("enc", "cross"):
            init_layers([(text[f"{block}.W{n}"], text[f"{block}.b{n}"]) for n in "qkvo"], rng)
        return flat

    def check_params(self, flat: object, name: str = "params") -> np.ndarray:
        r"""A finite float32 or float64 vector of length :attr:`n_params`; else a clear error."""
        return as_flat_params(flat, self.n_params, name)

    def check_inputs(self, x: object, t: object) -> tuple[np.ndarray, np.ndarray]:
        r"""Points x (B, D) and times t (B,) as float64 (:meth:`MLPConfig.check_inputs`)."""
        return self.mlp.check_inputs(x, t)

    def check_prompt(self, y: object, n: int, name: str = "y") -> np.ndarray:
        r"""Token ids (n, L) int64 for a batch of n points: None (the empty prompt, (n, 1) of padding), one prompt
        (L,) for every point, or one per point (n, L); ids 0 (padding) or 2..V-1, 1 <= L <= ``max_words``."""
        if y is None:
            return np.zeros((n, 1), dtype=np.int64)
        arr = np.asarray(y) if not isinstance(y, (str, bytes)) else None
        if arr is None or arr.dtype == bool or arr.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be token ids (npdiff.data.prompts.tokenize) or None, got {type(y).__name__}")
        if arr.ndim == 1:
            arr = np.broadcast_to(arr, (n, arr.shape[0]))
        if arr.ndim != 2 or arr.shape[0] != n or not 1 <= arr.shape[1] <= self.max_words:
            raise ValueError(f"{name} must be token ids of shape (L,) or ({n}, L) with 1 <= L <= {self.max_words}, "
                             f"got shape {np.shape(y)}")
        ids = as_integers(arr, name, lo=0, hi=self.vocab_size - 1)
        if np.any(ids == START):
            raise ValueError(f"{name} must not hold the start token (id {START}): the encoder puts it in front itself")
        return ids

    def to_dict(self) -> dict[str, Any]:
        r"""A JSON-serializable dict; :meth:`from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PromptMLPConfig:
        r"""Rebuild a config; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(d, dict):
            raise TypeError(f"a prompt-MLP config must be a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown prompt-MLP config keys {unknown}")
        return cls(**d)


def _block(text: dict, prefix: str) -> dict:
    return {k: text[f"{prefix}.{k}"] for k in ATTENTION_KEYS}


# -- the whole network ----------------------------------------------------------------------------
def _forward(cfg: PromptMLPConfig, layers: list, text: dict, x: np.ndarray, t: np.ndarray, ids: np.ndarray):
    act, mlp = ACTIVATION_FUNCTIONS[cfg.activation], cfg.mlp
    B, H, Q = x.shape[0], cfg.width, cfg.query_tokens
    e = embed(x, t, emb_dim=mlp.emb_dim, time_scale=mlp.time_scale, coord_scale=mlp.coord_scale,
              raw=mlp.raw, coord=mlp.sinusoidal)  # (B, E)
    h0, z0 = hidden(e, *layers[0], act)  # (B, H)
    c, mask, enc_cache = encode(ids, text["tok"], text["pos"], text["enc.g"], _block(text, "enc"), cfg.text_heads)
    tokens, cross_cache = cross_attention(h0.reshape(B, Q, H // Q), c, mask, _block(text, "cross"), cfg.cross_heads)
    h = tokens.reshape(B, H)  # (B, H) the joined tokens
    hs, zs = [h], [z0]
    for W, b in layers[1:-1]:
        h, z = residual_block(h, W, b, act)
        hs.append(h)
        zs.append(z)
    return dense(h, *layers[-1]), (e, hs, zs, enc_cache, cross_cache)


def _backward(cfg: PromptMLPConfig, layers: list, text: dict, cache: tuple, dy: np.ndarray, params: bool = True):
    # dL/dtheta as named gradients (if params) and dL/de (B, E)
    act = ACTIVATION_FUNCTIONS[cfg.activation]
    e, hs, zs, enc_cache, cross_cache = cache
    B, H, Q = dy.shape[0], cfg.width, cfg.query_tokens
    grads = [None] * len(layers)
    dW, db, dh = dense_backward(dy, hs[-1], layers[-1][0])
    grads[-1] = (dW, db)
    for k in range(cfg.depth, 0, -1):
        dW, db, dh = residual_block_backward(dh, hs[k - 1], zs[k], layers[k][0], act)
        grads[k] = (dW, db)
    g_cross, d_tokens, dc = cross_attention_backward(dh.reshape(B, Q, H // Q), cross_cache, _block(text, "cross"),
                                                     cfg.cross_heads)
    dW, db, de = hidden_backward(d_tokens.reshape(B, H), e, zs[0], layers[0][0], act)
    grads[0] = (dW, db)
    if not params:
        return None, de
    dtok, dpos, dg, g_enc = encode_backward(dc, enc_cache, text["tok"], text["pos"], text["enc.g"],
                                            _block(text, "enc"), cfg.text_heads)
    named = {"tok": dtok, "pos": dpos, "enc.g": dg, **{f"enc.{k}": v for k, v in g_enc.items()},
             **{f"cross.{k}": v for k, v in g_cross.items()}}
    flat = [np.concatenate([dW.ravel(), db]) for dW, db in grads] + [named[n].ravel() for n, _ in cfg.text_shapes]
    return np.concatenate(flat), de  # (n_params,) the layout of params


def _jvp(cfg: PromptMLPConfig, layers: list, text: dict, x: np.ndarray, t: np.ndarray, v: np.ndarray, ids: np.ndarray):
    # v (K, B, D) -> output (B, D) and its tangents (K, B, D)
    act = ACTIVATION_FUNCTIONS[cfg.activation]
    out, (_, _, zs, _, cross_cache) = _forward(cfg, layers, text, x, t, ids)
    K, B, H, Q = v.shape[0], x.shape[0], cfg.width, cfg.query_tokens
    h_dot = hidden_tangent(input_tangent(cfg.mlp, x, v), zs[0], layers[0][0], act)  # (K, B, H)
    h_dot = cross_attention_tangent(h_dot.reshape(K, B, Q, H // Q), cross_cache, _block(text, "cross"),
                                    cfg.cross_heads).reshape(K, B, H)  # the prompt does not move with x
    for k in range(1, cfg.depth + 1):
        h_dot = residual_block_tangent(h_dot, zs[k], layers[k][0], act)
    return out, dense_tangent(h_dot, layers[-1][0])


# -- public: checked once, computed in float64 --------------------------------------------------------
def _door(config: object, params: object, x: object, t: object, y: object):
    if not isinstance(config, PromptMLPConfig):
        raise TypeError(f"config must be a PromptMLPConfig, got {type(config).__name__}")
    layers, text = config.views(config.check_params(params).astype(np.float64))
    x, t = config.check_inputs(x, t)
    return config, layers, text, x, t, config.check_prompt(y, x.shape[0])


def forward(config: PromptMLPConfig, params: np.ndarray, x: object, t: object, y: object = None) -> tuple[np.ndarray, tuple]:
    r"""The network's output (B, D) and the cache :func:`backward` reads.

    Parameters
    ----------
    config : the architecture.
    params : (n_params,) weights (float32 or float64).
    x : (B, D) network inputs.
    t : float or (B,) times in [0, 1].
    y : token ids (L,) or (B, L) padded with 0; None: the empty prompt.

    Returns
    -------
    out : (B, D) float64, eps, x0 or v (``config.parameterization``).
    cache : what the backward pass reads (an internal structure).
    """
    config, layers, text, x, t, ids = _door(config, params, x, t, y)
    return _forward(config, layers, text, x, t, ids)


def backward(config: PromptMLPConfig, params: np.ndarray, cache: tuple, dy: np.ndarray) -> np.ndarray:
    r"""Gradient (n_params,) of a loss with respect to every parameter, given dL/dout (B, D) and :func:`forward`'s cache."""
    if not isinstance(config, PromptMLPConfig):
        raise TypeError(f"config must be a PromptMLPConfig, got {type(config).__name__}")
    layers, text = config.views(config.check_params(params).astype(np.float64))
    return _backward(config, layers, text, cache, dy)[0]


def loss_and_grad(config: PromptMLPConfig, params: np.ndarray, x: object, t: object, target: object,
                  weight: object | None = None, y: object = None) -> tuple[float, np.ndarray]:
    r"""The weighted squared error of :func:`npdiff.nn.mlp.mse` and its gradient (n_params,).

    x, target (B, D); t a float or (B,); weight (B,) per-example weights >= 0 (default 1); y token ids or None.
    """
    config, layers, text, x, t, ids = _door(config, params, x, t, y)
    target = as_batch(target, "target", dim=config.dim)
    if target.shape != x.shape:
        raise ValueError(f"target must have the shape of x {x.shape}, got {target.shape}")
    weight = np.ones(x.shape[0]) if weight is None else as_times(weight, x.shape[0], "weight", lo=0.0, hi=np.inf)
    out, cache = _forward(config, layers, text, x, t, ids)
    loss, dy = mse(out, target, weight)
    return loss, _backward(config, layers, text, cache, dy)[0]


def jvp(config: PromptMLPConfig, params: np.ndarray, x: object, t: object, v: object, y: object = None
        ) -> tuple[np.ndarray, np.ndarray]:
    r"""Output (B, D) and the Jacobian-vector products :math:`(\partial\,\mathrm{out}/\partial x)\,v_k`.

    ``v`` is one tangent (B, D) or K stacked tangents (K, B, D); the products have its shape. ``y`` as in :func:`forward`.
    """
    config, layers, text, x, t, ids = _door(config, params, x, t, y)
    v = as_float_array(v, "v")
    vk = v[None] if v.ndim == 2 else v
    if vk.ndim != 3 or vk.shape[1:] != x.shape:
        raise ValueError(f"v must have shape {x.shape} or (K, *{x.shape}), got {v.shape}")
    out, out_dot = _jvp(config, layers, text, x, t, vk, ids)
    return out, (out_dot[0] if v.ndim == 2 else out_dot)


def vjp(config: PromptMLPConfig, params: np.ndarray, x: object, t: object, u: object, y: object = None
        ) -> tuple[np.ndarray, np.ndarray]:
    r"""Output (B, D) and the vector-Jacobian products :math:`u_b^\top\,\partial\,\mathrm{out}_b/\partial x_b` (B, D)."""
    config, layers, text, x, t, ids = _door(config, params, x, t, y)
    u = as_float_array(u, "u")
    if u.shape != x.shape:
        raise ValueError(f"u must have the shape of x {x.shape}, got {u.shape}")
    out, cache = _forward(config, layers, text, x, t, ids)
    return out, input_cotangent(config.mlp, x, _backward(config, layers, text, cache, u, params=False)[1])


def divergence(config: PromptMLPConfig, params: np.ndarray, x: object, t: object, y: object = None
               ) -> tuple[np.ndarray, np.ndarray]:
    r"""Output (B, D) and the exact trace :math:`\mathrm{tr}\,\partial\,\mathrm{out}/\partial x` (B,) by the D unit tangents."""
    config, layers, text, x, t, ids = _door(config, params, x, t, y)
    B, D = x.shape
    units = np.broadcast_to(np.eye(D)[:, None, :], (D, B, D))  # (D, B, D): tangent d is e_d at every point
    out, out_dot = _jvp(config, layers, text, x, t, units, ids)
    return out, np.einsum("dbd->b", out_dot)  # sum_d (J e_d)_d


# -- the denoiser of the protocol -------------------------------------------------------------------
class PromptMLP(NetworkDenoiser):
    r"""The prompt-conditioned MLP as a denoiser: ``eps(x, t, y)`` with y token ids, None the empty prompt.

    Parameters
    ----------
    config : the architecture (:class:`PromptMLPConfig`).
    schedule : the continuous schedule it was trained with.
    params : (n_params,) weights; None draws initial weights from ``rng``.
    rng : Generator (or int seed) used only when ``params`` is None.
    dtype : accepted for the shared constructor; the reference computes in float64 whatever it is.
    """

    config_type = PromptMLPConfig

    def __init__(self, config: PromptMLPConfig, schedule: Any, params: np.ndarray | None = None, *,
                 rng: np.random.Generator | int | None = None, dtype: type = np.float64) -> None:
        super().__init__(config, schedule, params, rng=rng, dtype=dtype)
        self._layers, self._text = config.views(self.params.astype(np.float64))

    @property
    def vocab_size(self) -> int:
        r"""Number V of token ids the prompts may hold."""
        return self.config.vocab_size

    @property
    def max_words(self) -> int:
        r"""The longest prompt it reads, in words (token ids per prompt)."""
        return self.config.max_words

    def _door(self, x: object, t: object, y: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x, t = self.config.check_inputs(x, t)
        return x, t, self.config.check_prompt(y, x.shape[0])

    def _predict(self, x: np.ndarray, t: np.ndarray, ids: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            out = _forward(self.config, self._layers, self._text, x, t, ids)[0]
        self._finite(x, out)
        return out

    def eps(self, x: object, t: object, y: object = None) -> np.ndarray:
        r"""Predicted noise (B, D), float64; ``y``: token ids (L,) or (B, L), None the empty prompt."""
        x, t, ids = self._door(x, t, y)
        return self._eps(x, t, self._predict(x, t, ids))

    def eps_and_divergence(self, x: object, t: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r"""Predicted noise (B, D) and its exact divergence (B,) by the D unit tangents (module docstring)."""
        x, t, ids = self._door(x, t, y)
        B, D = x.shape
        units = np.broadcast_to(np.eye(D)[:, None, :], (D, B, D))  # (D, B, D)
        with np.errstate(over="ignore", invalid="ignore"):
            out, out_dot = _jvp(self.config, self._layers, self._text, x, t, units, ids)
        return self._eps_and_divergence(x, t, out, np.einsum("dbd->b", out_dot))

    def eps_jvp(self, x: object, t: object, v: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r"""Predicted noise (B, D) and :math:`(\partial\hat\epsilon/\partial x)\,v` for v (B, K, D) (or (B, D))."""
        x, t, ids = self._door(x, t, y)
        vk = as_tangents(v, x)  # (B, K, D)
        with np.errstate(over="ignore", invalid="ignore"):
            out, out_dot = _jvp(self.config, self._layers, self._text, x, t, np.swapaxes(vk, 0, 1), ids)
        eps, eps_dot = self._eps_jvp(x, t, vk, out, np.swapaxes(out_dot, 0, 1))
        return eps, (eps_dot[:, 0] if np.ndim(v) == 2 else eps_dot)

    def eps_vjp(self, x: object, t: object, u: object, y: object = None) -> tuple[np.ndarray, np.ndarray]:
        r"""Predicted noise (B, D) and :math:`u^\top\partial\hat\epsilon/\partial x` (B, D)."""
        x, t, ids = self._door(x, t, y)
        u = as_tangents(u, x, "u", one=True)[:, 0]  # (B, D)
        with np.errstate(over="ignore", invalid="ignore"):
            out, cache = _forward(self.config, self._layers, self._text, x, t, ids)
            de = _backward(self.config, self._layers, self._text, cache, u, params=False)[1]
        return self._eps_vjp(x, t, u, out, input_cotangent(self.config.mlp, x, de))

    def __repr__(self) -> str:
        c = self.config
        return (f"PromptMLP(dim={c.dim}, width={c.width}, depth={c.depth}, text_width={c.text_width}, "
                f"query_tokens={c.query_tokens}, {self.parameterization})")
