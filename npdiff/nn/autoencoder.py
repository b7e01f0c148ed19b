r"""The KL autoencoder of latent diffusion, with a discretized decoder, in plain NumPy with hand gradients.

Latent diffusion (Rombach et al. 2022, Sec. 3.1) first compresses an image x into a small latent z
with an autoencoder regularized towards :math:`\mathcal N(0, I)` by a weak KL term, then runs the
diffusion model on z. Here the images are the 8x8 digits on K = 17 levels (D = 64) and both halves
are MLPs::

    encoder   h = act(x W_1 + b_1), ..., [mu | log_var] = h W_e + b_e     (B, 2d)
    q(z | x)  = N(mu, diag(exp(log_var)))                                 (B, d)   d = latent_dim
    decoder   g = act(z V_1 + c_1), ..., logits = g V_o + c_o              (B, D, K)
    p(x | z)  = prod_i Categorical(v_i; softmax(logits_i))                 v_i the level of pixel i

The decoder is **discretized**: a categorical over the K levels of each pixel, so
:math:`-\log p(x\mid z)` is a code length in nats (a probability of the discrete image, not a
density), which is what lets :mod:`npdiff.latent` bound the discrete :math:`-\log P(x)` honestly
(Vahdat et al. 2021, LSGM, Eq. 2 with a discrete decoder).

**The loss** (the negative ELBO with the KL weighted by :math:`\beta`, Higgins et al. 2017, Eq. 4;
Rombach et al. 2022 use a small weight, "KL-reg."), per image, in nats:

.. math::
    L = -\log p(x\mid z) + \beta\,\mathrm{KL}\big(q(z\mid x)\,\|\,\mathcal N(0, I)\big),\qquad
    z = \mu + \sigma\odot\epsilon,\ \epsilon\sim\mathcal N(0, I),

    \mathrm{KL} = \tfrac12\textstyle\sum_j\big(\mu_j^2 + e^{\ell_j} - 1 - \ell_j\big),\quad \ell = \log\sigma^2

(Kingma & Welling 2014, Eq. 10 and App. B; the reparameterization of their Sec. 2.4).

**Backward.** With :math:`p = \mathrm{softmax}(\text{logits})` and :math:`e_v` the one-hot level,
:math:`\partial(-\log p_v)/\partial\,\text{logits} = p - e_v`; through the sample,
:math:`\bar\mu = \bar z + \beta\mu` and :math:`\bar\ell = \tfrac12\bar z\odot\sigma\odot\epsilon
+ \tfrac\beta2(e^{\ell} - 1)`; each dense layer's backward sits below its forward (dW, db, dx).

**The latent's scale.** Rombach et al. (2022, App. G) rescale the latents by
:math:`s = 1/\mathrm{std}(z)` over the training set so the diffusion sees unit variance;
``scale_factor`` holds s (set by :func:`npdiff.nn.autoencoder_train.train_autoencoder`), used by
:mod:`npdiff.latent`. Weights live in one flat vector (encoder layers, then decoder layers), views
as in :mod:`npdiff.nn.config`, so AdamW updates them in one pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._check import as_batch, as_flat_params, as_generator, positive_int, real_scalar
from ..gaussian import data_to_levels
from .activations import ACTIVATION_FUNCTIONS
from .config import Layers, init_layers, layer_views

__all__ = ["LATENT_DIMS", "Autoencoder", "AutoencoderConfig"]

#: the latent sizes allowed: a latent of 1 cannot hold a digit's shape, more than 32 is not a compression of 64 pixels
LATENT_DIMS = (2, 32)


@dataclasses.dataclass(frozen=True)
class AutoencoderConfig:
    r"""Architecture and loss weight of the KL autoencoder.

    Attributes
    ----------
    dim : pixels D per image.
    K : grey levels per pixel (the decoder's categories).
    latent_dim : d, in 2..32 (:data:`LATENT_DIMS`).
    width : hidden units of every layer.
    depth : hidden layers in the encoder and in the decoder (each), >= 1.
    activation : ``"gelu"`` or ``"silu"``.
    beta : weight of the KL term, > 0 (module docstring). The default 0.25 is measured
        (``benchmarks/latent.py``, docs/measurements/latent.md): on the digits a smaller beta narrows
        q(z | x), so samples are sharper but the bound on the test digits grows (the latent costs more
        than the decoder saves, and the decoder overfits the 1,437 training digits); a larger one blurs
        the samples. 0.25 is the beta of lowest bound among those whose samples' Fréchet distance is
        within 10% of the pixel MLP's, for this size (width 256, two hidden layers, 2,000 steps).
    scale_factor : s > 0, the latent's scale (1/std of the encoded training means once trained).
    """

    dim: int = 64
    K: int = 17
    latent_dim: int = 12
    width: int = 256
    depth: int = 2
    activation: str = "gelu"
    beta: float = 0.25
    scale_factor: float = 1.0

    def __post_init__(self) -> None:
        positive_int(self.dim, "dim")
        positive_int(self.K, "K", minimum=2)
        positive_int(self.latent_dim, "latent_dim", minimum=LATENT_DIMS[0], maximum=LATENT_DIMS[1])
        positive_int(self.width, "width")
        positive_int(self.depth, "depth")
        if not isinstance(self.activation, str) or self.activation not in ACTIVATION_FUNCTIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATION_FUNCTIONS)}, got {self.activation!r}")
        real_scalar(self.beta, "beta", lo=0.0, lo_open=True)
        real_scalar(self.scale_factor, "scale_factor", lo=0.0, lo_open=True)
        if self.beta > 1e6 or not 1e-6 <= self.scale_factor <= 1e6:
            raise ValueError(f"beta must be at most 1e6 and scale_factor in [1e-6, 1e6], got {self.beta} and "
                             f"{self.scale_factor}")

    @property
    def encoder_shapes(self) -> list[tuple[int, int]]:
        r"""(in, out) of each encoder layer: D -> H, (depth - 1) x H -> H, H -> 2d."""
        H = self.width
        return [(self.dim, H)] + [(H, H)] * (self.depth - 1) + [(H, 2 * self.latent_dim)]

    @property
    def decoder_shapes(self) -> list[tuple[int, int]]:
        r"""(in, out) of each decoder layer: d -> H, (depth - 1) x H -> H, H -> D K."""
        H = self.width
        return [(self.latent_dim, H)] + [(H, H)] * (self.depth - 1) + [(H, self.dim * self.K)]

    @property
    def n_params(self) -> int:
        r"""Length of the flat weight vector."""
        return sum(i * o + o for i, o in self.encoder_shapes + self.decoder_shapes)

    def layers(self, flat: np.ndarray) -> tuple[Layers, Layers]:
        r"""Views (W, b) of the encoder's and the decoder's layers into ``flat``."""
        n_enc = sum(i * o + o for i, o in self.encoder_shapes)
        return layer_views(flat[:n_enc], self.encoder_shapes), layer_views(flat[n_enc:], self.decoder_shapes)

    def decoder_flops(self) -> int:
        r"""Multiply-adds times two of one image through the decoder's matrix products (what sampling pays once)."""
        return sum(2 * i * o for i, o in self.decoder_shapes)

    def init_params(self, rng: np.random.Generator | int) -> np.ndarray:
        r"""PyTorch-style initial weights (:func:`~npdiff.nn.config.init_layers`), float64."""
        flat = np.zeros(self.n_params)
        enc, dec = self.layers(flat)
        init_layers(enc + dec, as_generator(rng))
        return flat

    def to_dict(self) -> dict[str, Any]:
        r"""A JSON-serializable dict; :meth:`from_dict` inverts it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AutoencoderConfig:
        r"""Rebuild a config; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(d, dict):
            raise TypeError(f"config must be a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown autoencoder config keys {unknown}")
        return cls(**d)


# -- a dense layer and its backward -------------------------------------------------------------
def dense(h: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""y = h W + b."""
    return h @ W + b  # (B, out)


def dense_backward(dy: np.ndarray, h: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Given dL/dy of y = h W + b, the gradients of W, b and the input h."""
    dW = h.T @ dy  # (in, out)
    db = dy.sum(axis=0)  # (out,)
    dx = dy @ W.T  # (B, in)
    return dW, db, dx


def mlp_forward(layers: Layers, x: np.ndarray, act) -> tuple[np.ndarray, list]:
    r"""h_k = act(h_{k-1} W_k + b_k) for the hidden layers, then the linear output; returns it and the cache."""
    cache, h = [], x
    for W, b in layers[:-1]:
        z = dense(h, W, b)  # (B, H) pre-activation, kept for the backward
        cache.append((h, z))
        h = act(z)[0]
    cache.append((h, None))
    return dense(h, *layers[-1]), cache


def mlp_backward(dy: np.ndarray, layers: Layers, cache: list, act) -> tuple[list, np.ndarray]:
    r"""The gradients (dW, db) of every layer, in order, and dx, from dL/dy of :func:`mlp_forward`."""
    grads = []
    h, _ = cache[-1]
    dW, db, dx = dense_backward(dy, h, layers[-1][0])
    grads.append((dW, db))
    for (W, _), (h, z) in zip(reversed(layers[:-1]), reversed(cache[:-1])):
        dz = dx * act(z)[1]  # through the activation
        dW, db, dx = dense_backward(dz, h, W)
        grads.append((dW, db))
    return grads[::-1], dx


# -- the categorical decoder: log-softmax over the K levels of each pixel -------------------------
def log_softmax(logits: np.ndarray) -> np.ndarray:
    r""":math:`\log p_k = \ell_k - \max\ell - \log\sum_j e^{\ell_j - \max\ell}` over the last axis (stable)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def kl_to_standard_normal(mu: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    r"""KL of q(z | x) = N(mu, e^l) to N(0, I), (B,), from mu and l = log_var (B, d) each.

    .. math:: \mathrm{KL} = \tfrac12\textstyle\sum_j(\mu_j^2 + e^{\ell_j} - 1 - \ell_j)
    """
    return 0.5 * np.sum(mu * mu + np.expm1(log_var) - log_var, axis=1)


class Autoencoder:
    r"""The KL autoencoder (module docstring): a config and its float64 weights.

    Parameters
    ----------
    config : :class:`AutoencoderConfig`.
    params : (n_params,) weights; None draws initial weights from ``rng``.
    rng : Generator or int seed, used only when ``params`` is None.
    """

    def __init__(self, config: AutoencoderConfig, params: np.ndarray | None = None, *,
                 rng: np.random.Generator | int | None = None) -> None:
        if not isinstance(config, AutoencoderConfig):
            raise TypeError(f"config must be an AutoencoderConfig, got {type(config).__name__}")
        rng = None if rng is None else as_generator(rng)  # checked even where params make it unused
        if params is None:
            if rng is None:
                raise ValueError("rng must be given to draw initial weights when params is None")
            params = config.init_params(rng)
        self.config = config
        self.params = as_flat_params(params, config.n_params).astype(np.float64)  # (n_params,) a copy
        self._act = ACTIVATION_FUNCTIONS[config.activation]
        self._enc, self._dec = config.layers(self.params)

    @property
    def latent_dim(self) -> int:
        r"""d, the latent's size."""
        return self.config.latent_dim

    def levels(self, x: object, name: str = "x") -> np.ndarray:
        r"""Check images x (B, D) on the K levels :math:`2v/(K-1) - 1`; return (x float64, levels v int64)."""
        x = as_batch(x, name, dim=self.config.dim)
        return x, data_to_levels(x, self.config.K, name)

    def check_latents(self, z: object, name: str = "z") -> np.ndarray:
        r"""Check latents z (B, d), finite; return them as float64."""
        return as_batch(z, name, dim=self.config.latent_dim)

    # -- the two halves ------------------------------------------------------------------------
    def encode(self, x: object) -> tuple[np.ndarray, np.ndarray]:
        r""":math:`(\mu, \log\sigma^2)` of q(z | x), each (B, d), for images x (B, D) on the levels."""
        x, _ = self.levels(x)
        out, _ = mlp_forward(self._enc, x, self._act)  # (B, 2d)
        d = self.config.latent_dim
        return out[:, :d], out[:, d:]

    def decoder_log_probs(self, z: object) -> np.ndarray:
        r""":math:`\log p(v_i = k \mid z)`, (B, D, K): each pixel's log-probabilities over the K levels."""
        z = self.check_latents(z)
        logits, _ = mlp_forward(self._dec, z, self._act)  # (B, D K)
        return log_softmax(logits.reshape(z.shape[0], self.config.dim, self.config.K))

    def log_prob(self, x: object, z: object) -> np.ndarray:
        r""":math:`\log p(x\mid z) = \sum_i \log p(v_i \mid z)`, (B,) nats: a discrete log-probability."""
        x, v = self.levels(x)
        z = self.check_latents(z)
        if z.shape[0] != x.shape[0]:
            raise ValueError(f"z must have one latent per image: x has {x.shape[0]} rows, z has {z.shape[0]}")
        logp = self.decoder_log_probs(z)  # (B, D, K)
        return np.take_along_axis(logp, v[:, :, None], axis=2)[:, :, 0].sum(axis=1)

    def decode(self, z: object, rng: np.random.Generator | int | None = None) -> np.ndarray:
        r"""Images (B, D) on the levels from latents z (B, d): each pixel's most probable level, or a draw with ``rng``."""
        logp = self.decoder_log_probs(z)  # (B, D, K)
        if rng is None:
            v = logp.argmax(axis=2)
        else:  # inverse CDF of each pixel's categorical
            cdf = np.cumsum(np.exp(logp), axis=2)  # (B, D, K)
            u = as_generator(rng).uniform(size=cdf.shape[:2])[:, :, None] * cdf[:, :, -1:]
            v = np.minimum((cdf < u).sum(axis=2), self.config.K - 1)
        return 2.0 * v / (self.config.K - 1) - 1.0  # (B, D)

    # -- the loss and its gradient ----------------------------------------------------------------
    def loss_and_grad(self, x: object, eps: object) -> tuple[dict[str, float], np.ndarray]:
        r"""The batch mean of L (module docstring) at :math:`z = \mu + \sigma\odot\epsilon`, and dL/dθ (n_params,).

        Parameters
        ----------
        x : (B, D) images on the levels. eps : (B, d) standard normal noise, drawn by the caller.

        Returns
        -------
        ({"loss", "reconstruction", "kl"} batch means in nats per image, gradient (n_params,) float64).
        """
        x, v = self.levels(x)
        eps = as_batch(eps, "eps", dim=self.config.latent_dim)
        if eps.shape[0] != x.shape[0]:
            raise ValueError(f"eps must have one row per image: x has {x.shape[0]} rows, eps has {eps.shape[0]}")
        B, D, K, d, beta = x.shape[0], self.config.dim, self.config.K, self.config.latent_dim, self.config.beta
        out, enc_cache = mlp_forward(self._enc, x, self._act)  # (B, 2d)
        mu, log_var = out[:, :d], out[:, d:]
        sigma = np.exp(0.5 * log_var)  # (B, d)
        z = mu + sigma * eps  # (B, d) reparameterization
        logits, dec_cache = mlp_forward(self._dec, z, self._act)  # (B, D K)
        logp = log_softmax(logits.reshape(B, D, K))  # (B, D, K)
        rec = -np.take_along_axis(logp, v[:, :, None], axis=2)[:, :, 0].sum(axis=1)  # (B,)
        kl = kl_to_standard_normal(mu, log_var)  # (B,)
        # backward: -log softmax_v -> p - onehot(v); the batch mean divides by B
        dlogits = np.exp(logp)
        np.put_along_axis(dlogits, v[:, :, None], np.take_along_axis(dlogits, v[:, :, None], axis=2) - 1.0, axis=2)
        dec_grads, dz = mlp_backward(dlogits.reshape(B, D * K) / B, self._dec, dec_cache, self._act)
        dmu = dz + beta * mu / B  # (B, d)
        dlog_var = 0.5 * dz * sigma * eps + 0.5 * beta * np.expm1(log_var) / B  # (B, d)
        enc_grads, _ = mlp_backward(np.concatenate([dmu, dlog_var], axis=1), self._enc, enc_cache, self._act)
        grad = np.concatenate([g.ravel() for pair in enc_grads + dec_grads for g in pair])  # the flat layout
        figures = {"loss": float(np.mean(rec + beta * kl)), "reconstruction": float(rec.mean()), "kl": float(kl.mean())}
        return figures, grad

    def with_scale_factor(self, scale_factor: float) -> Autoencoder:
        r"""The same weights with ``config.scale_factor`` set to ``scale_factor``."""
        return Autoencoder(dataclasses.replace(self.config, scale_factor=scale_factor), self.params)

    def __repr__(self) -> str:
        c = self.config
        return (f"Autoencoder(D={c.dim}, K={c.K}, latent_dim={c.latent_dim}, width={c.width}, depth={c.depth}, "
                f"beta={c.beta:g}, scale_factor={c.scale_factor:.4g})")
