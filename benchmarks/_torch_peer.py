r"""The npdiff MLP rebuilt in PyTorch with the same weights, for speed comparisons only.

Imported by the benchmarks only when PyTorch is installed; never by npdiff. The module
reproduces :mod:`npdiff.nn.mlp` (input layout, sinusoidal embeddings, residual blocks,
exact-erf GELU or SiLU) and :class:`npdiff.nn.model.DiffusionMLP`'s conversion to eps, so
both sides compute the same function; :func:`check_same_function` asserts it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class TorchMLP(nn.Module):
    def __init__(self, model, dtype=torch.float64) -> None:
        super().__init__()
        cfg = model.config
        self.cfg, self.schedule = cfg, model.schedule
        layers = model.config.layers(model.params.astype(np.float64))
        self.linears = nn.ModuleList()
        for W, b in layers:
            lin = nn.Linear(W.shape[0], W.shape[1]).to(dtype)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W.T.copy()))
                lin.bias.copy_(torch.from_numpy(b.copy()))
            self.linears.append(lin)
        # inference only: autograd must not spend time on weight gradients nobody asked for
        for p in self.parameters():
            p.requires_grad_(False)
        half = cfg.emb_dim // 2
        self.register_buffer("freq", torch.exp(-math.log(1e4) * torch.arange(half, dtype=dtype) / (half - 1)))
        self.act = nn.GELU() if cfg.activation == "gelu" else nn.SiLU()
        self.dtype = dtype
        sch = model.schedule  # VP-linear only in these benchmarks: alpha_bar in closed form
        self.beta_min, self.beta_max = sch.beta_min, sch.beta_max

    def _emb(self, s, scale):
        phase = (scale * s)[:, None] * self.freq[None, :]
        return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)

    def predict(self, x, t):
        cfg = self.cfg
        parts = [x] if cfg.raw else []
        if cfg.sinusoidal:
            parts += [self._emb(x[:, d], cfg.coord_scale) for d in range(cfg.dim)]
        parts.append(self._emb(t, cfg.time_scale))
        h = self.act(self.linears[0](torch.cat(parts, dim=-1)))
        for lin in self.linears[1:-1]:
            h = h + self.act(lin(h))
        return self.linears[-1](h)

    def eps(self, x, t):
        y = self.predict(x, t)
        if self.cfg.parameterization == "eps":
            return y
        log_ab = -(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)
        a, sigma = torch.exp(0.5 * log_ab)[:, None], torch.sqrt(-torch.expm1(log_ab))[:, None]
        return (x - a * y) / sigma if self.cfg.parameterization == "x0" else sigma * x + a * y

    def eps_and_divergence(self, x, t):
        r"""eps and the exact trace by D vector-Jacobian products (autograd, one per coordinate)."""
        x = x.detach().requires_grad_(True)
        e = self.eps(x, t)
        div = torch.zeros(x.shape[0], dtype=x.dtype)
        for d in range(x.shape[1]):
            (g,) = torch.autograd.grad(e[:, d].sum(), x, retain_graph=d < x.shape[1] - 1)
            div = div + g[:, d]
        return e.detach(), div


def check_same_function(model, peer: TorchMLP, rng: np.random.Generator) -> float:
    r"""Largest difference of eps and of the divergence between npdiff and the peer (float64)."""
    x = rng.standard_normal((64, model.dim))
    t = rng.uniform(0.01, 1.0, 64)
    e_np, div_np = model.with_dtype(np.float64).eps_and_divergence(x, t)
    e_t, div_t = peer.eps_and_divergence(torch.from_numpy(x), torch.from_numpy(t))
    err = max(np.abs(e_np - e_t.numpy()).max(), np.abs(div_np - div_t.numpy()).max())
    scale = max(1.0, np.abs(e_np).max(), np.abs(div_np).max())
    assert err < 1e-4 * scale, f"the PyTorch peer computes another function: max difference {err:.2e}"
    return float(err)
