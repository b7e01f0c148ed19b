r"""Sinusoidal embeddings of time and of each input coordinate, in plain NumPy (the kernels' twin).

A scalar s (a time, or one coordinate of x) becomes ``emb_dim`` features

.. math:: \mathrm{emb}(s) = \big[\sin(c\,s\,f_0), \dots, \sin(c\,s\,f_{K-1}),\ \cos(c\,s\,f_0), \dots, \cos(c\,s\,f_{K-1})\big],
          \qquad f_k = \exp\Big(-\frac{k \log 10^4}{K - 1}\Big),\ K = \mathrm{emb\_dim}/2

(Vaswani et al. 2017, Sec. 3.5, as a function of a continuous position; Ho et al. 2020,
Appendix B use it for the time step). ``c`` is a scale: ``time_scale = 1000`` makes
:math:`c\,t` the DDPM step index for t in [0, 1]; ``coord_scale = 25`` is the Fourier-feature
scale of the popular tiny-diffusion 2D setup (Tancik et al. 2020 for why high-frequency
features help a small MLP fit sharp functions of low-dimensional inputs).

Network input layout, (B, E) with ``E = input_width(...)``::

    [ x (D columns, if raw)  |  emb(x_1) ... emb(x_D) (if coord)  |  emb(t) ]

The derivative of a coordinate block with respect to its coordinate is

.. math:: \frac{\partial\,\mathrm{emb}(x_d)}{\partial x_d} = c\,f \odot \big[\cos(c\,x_d f),\ -\sin(c\,x_d f)\big]

which is what the forward-mode Jacobian (:mod:`npdiff.nn.mlp`) pushes through the network.
The time embedding has no derivative with respect to x.
"""

from __future__ import annotations

import numpy as np

__all__ = ["embed", "embed_tangent", "frequencies", "input_width"]


def frequencies(emb_dim: int) -> np.ndarray:
    r"""The K = emb_dim / 2 frequencies :math:`f_k = 10^{-4k/(K-1)}`, from 1 down to 1e-4. (K,) float64."""
    half = emb_dim // 2
    return np.exp(-np.log(1.0e4) * np.arange(half) / (half - 1))  # (K,)


def input_width(dim: int, emb_dim: int, *, raw: bool, coord: bool) -> int:
    r"""Number of network inputs E for the layout above."""
    return (dim if raw else 0) + (dim * emb_dim if coord else 0) + emb_dim


def _sin_cos_block(s: np.ndarray, scale: float, freq: np.ndarray) -> np.ndarray:
    phase = (scale * s)[:, None] * freq[None, :]  # (B, K)
    return np.concatenate([np.sin(phase), np.cos(phase)], axis=1)  # (B, 2K)


def embed(x: np.ndarray, t: np.ndarray, *, emb_dim: int, time_scale: float, coord_scale: float,
          raw: bool, coord: bool) -> np.ndarray:
    r"""The network input for points x (B, D) at times t (B,): (B, E) float64 (layout above)."""
    freq = frequencies(emb_dim)
    parts = [x] if raw else []
    if coord:
        parts += [_sin_cos_block(x[:, d], coord_scale, freq) for d in range(x.shape[1])]
    parts.append(_sin_cos_block(t, time_scale, freq))
    return np.concatenate(parts, axis=1)  # (B, E)


def embed_tangent(x: np.ndarray, *, emb_dim: int, coord_scale: float) -> np.ndarray:
    r"""Derivative of each coordinate block by its coordinate, :math:`c f\odot[\cos, -\sin]`: (D, B, emb_dim)."""
    freq = frequencies(emb_dim)
    out = []
    for d in range(x.shape[1]):
        phase = (coord_scale * x[:, d])[:, None] * freq[None, :]  # (B, K)
        cf = coord_scale * freq[None, :]
        out.append(np.concatenate([cf * np.cos(phase), -cf * np.sin(phase)], axis=1))
    return np.stack(out)  # (D, B, emb_dim)
