r"""npdiff's U-Net rebuilt in PyTorch (same architecture, same widths), for speed comparisons only.

Imported by the benchmarks only when PyTorch is installed; never by npdiff. :class:`TorchUNet` is
written as a PyTorch user would write it (``nn.Conv2d``, ``nn.GroupNorm``, ``nn.Linear``,
``nn.Embedding``, lucidrains' denoising-diffusion-pytorch and ADM's layout) and follows
:class:`npdiff.nn.unet.config.UNetConfig`'s plan block for block: ``conv_in``, the residual blocks
with the embedding as GroupNorm's scale and shift, self-attention at the configured resolutions,
average pooling down, nearest up-sampling, skip concatenation, the output head. Its weights come from
npdiff's flat vector (:func:`load_npdiff_params`) or from PyTorch's initialization; :func:`check_same_function`
asserts that both compute the same eps with the same weights. A network that predicts x0 or v is turned
into eps as :class:`npdiff.nn.unet.model.DiffusionUNet` does (VP-linear schedule only).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

GN_EPS = 1e-5  # npdiff.nn.unet.norm.GN_EPS, PyTorch's default


class ResBlock(nn.Module):
    r"""y = skip(x) + conv2(SiLU(GN2(conv1(SiLU(GN1(x)))) * (1 + s) + t)), [s | t] = emb(SiLU(embedding))."""

    def __init__(self, c: int, o: int, time_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c, eps=GN_EPS), nn.Conv2d(c, o, 3, padding=1)
        self.emb = nn.Linear(time_dim, 2 * o)
        self.norm2, self.conv2 = nn.GroupNorm(groups, o, eps=GN_EPS), nn.Conv2d(o, o, 3, padding=1)
        self.skip = nn.Conv2d(c, o, 1) if c != o else None
        self.o = o

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x)))
        st = self.emb(e)[:, :, None, None]
        s, t = st[:, : self.o], st[:, self.o :]
        h = self.conv2(F.silu(self.norm2(h) * (1.0 + s) + t))
        return (x if self.skip is None else self.skip(x)) + h


class Attention(nn.Module):
    r"""y = x + proj(attention(qkv(GN(x)))), heads of d = C / heads consecutive channels of q, k and v."""

    def __init__(self, c: int, heads: int, groups: int) -> None:
        super().__init__()
        self.norm, self.qkv, self.proj = nn.GroupNorm(groups, c, eps=GN_EPS), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)
        self.heads = heads

    def forward(self, x):
        B, C, H, W = x.shape
        d = C // self.heads
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.heads, d, H * W).unbind(1)  # (B, M, d, N) each
        P = torch.softmax(q.transpose(-1, -2) @ k * (1.0 / math.sqrt(d)), dim=-1)  # (B, M, N query, N key)
        a = (v @ P.transpose(-1, -2)).reshape(B, C, H, W)
        return x + self.proj(a)


class TorchUNet(nn.Module):
    r"""The network of ``config`` (a :class:`~npdiff.nn.unet.config.UNetConfig`); output (B, D) flattened images."""

    def __init__(self, config, schedule=None, dtype=torch.float32) -> None:
        super().__init__()
        cfg = self.cfg = config
        T = cfg.time_dim
        half = cfg.emb_dim // 2
        self.register_buffer("freq", torch.exp(-math.log(1e4) * torch.arange(half, dtype=torch.float64) / (half - 1)))
        self.time = nn.Sequential(nn.Linear(cfg.emb_dim, T), nn.SiLU(), nn.Linear(T, T))
        self.labels = nn.Embedding(cfg.num_classes + 1, T) if cfg.num_classes else None
        self.conv_in = nn.Conv2d(cfg.channels, cfg.widths[0], 3, padding=1)
        self.blocks = nn.ModuleDict()
        for step in cfg.plan:
            key = step[1].replace(".", "_")
            if step[0] == "res":
                self.blocks[key] = ResBlock(step[2], step[3], T, cfg.groups)
            elif step[0] == "attn":
                self.blocks[key] = Attention(step[2], cfg.heads, cfg.groups)
        self.out_norm = nn.GroupNorm(cfg.groups, cfg.widths[0], eps=GN_EPS)
        self.out_conv = nn.Conv2d(cfg.widths[0], cfg.channels, 3, padding=1)
        self.steps = [(s[0], s[1].replace(".", "_")) for s in cfg.plan]
        if schedule is not None:  # VP-linear only in these benchmarks: alpha_bar in closed form
            self.beta_min, self.beta_max = schedule.beta_min, schedule.beta_max
        self.to(dtype)

    def predict(self, x, t, y=None):
        cfg = self.cfg
        phase = (cfg.time_scale * t)[:, None] * self.freq[None, :]
        emb = self.time(torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1))  # (B, T)
        if self.labels is not None:
            rows = torch.full((x.shape[0],), cfg.num_classes, dtype=torch.long) if y is None else y
            emb = emb + self.labels(rows)
        e = F.silu(emb)
        h = self.conv_in(x.reshape(x.shape[0], cfg.channels, cfg.image_size, cfg.image_size))
        skips = []
        for kind, key in self.steps:
            if kind == "res":
                h = self.blocks[key](h, e)
            elif kind == "attn":
                h = self.blocks[key](h)
            elif kind == "push":
                skips.append(h)
            elif kind == "cat":
                h = torch.cat([h, skips.pop()], dim=1)
            elif kind == "down":
                h = F.avg_pool2d(h, 2)
            else:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.out_conv(F.silu(self.out_norm(h))).reshape(x.shape[0], -1)

    def forward(self, x, t, y=None):
        return self.predict(x, t, y)

    def eps(self, x, t, y=None):
        out = self.predict(x, t, y)
        kind = self.cfg.parameterization
        if kind == "eps":
            return out
        log_ab = -(self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)
        a, sigma = torch.exp(0.5 * log_ab)[:, None], torch.sqrt(-torch.expm1(log_ab))[:, None]
        return (x - a * out) / sigma if kind == "x0" else sigma * x + a * out


def load_npdiff_params(peer: TorchUNet, config, flat: np.ndarray) -> None:
    r"""Copy npdiff's flat weights (:meth:`UNetConfig.views`) into the peer, converting each layout."""
    views = config.views(np.asarray(flat, dtype=np.float64))
    dtype = next(peer.parameters()).dtype

    def put(param, array) -> None:
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(array)).to(dtype))

    for name, arr in views.items():
        *layer, kind = name.split(".")
        if name == "labels":
            put(peer.labels.weight, arr)
        elif layer[0] == "time":
            lin = peer.time[0 if layer[1] == "0" else 2]
            put(lin.weight if kind == "W" else lin.bias, arr.T if kind == "W" else arr)
        elif layer[0] == "conv_in":
            put(peer.conv_in.weight if kind == "W" else peer.conv_in.bias, arr)
        elif layer[0] == "out":
            mod = peer.out_norm if layer[1] == "norm" else peer.out_conv
            put({"gamma": mod.weight, "beta": mod.bias, "W": mod.weight, "b": mod.bias}[kind], arr)
        else:
            block = peer.blocks[f"{layer[0]}_{layer[1]}"]
            mod = getattr(block, layer[2])
            if layer[2] == "emb" and kind == "W":  # dense layers are stored (in, out) in npdiff
                arr = arr.T
            elif layer[2] in ("skip", "qkv", "proj") and kind == "W":  # 1x1 convolutions (O, C)
                arr = arr[:, :, None, None]
            put({"gamma": mod.weight, "beta": mod.bias, "W": mod.weight, "b": mod.bias}[kind], arr)


def peer_of(model, dtype=torch.float64) -> TorchUNet:
    r"""The PyTorch network with the weights of npdiff's ``model`` (a DiffusionUNet)."""
    peer = TorchUNet(model.config, model.schedule, dtype=dtype)
    load_npdiff_params(peer, model.config, model.params)
    return peer


def eps_and_divergence(peer: TorchUNet, x, t):
    r"""eps (B, D) and its exact divergence (B,) by ``torch.func.jvp`` under ``vmap`` over the D unit tangents."""
    from torch.func import jvp, vmap

    D = x.shape[1]
    units = torch.eye(D, dtype=x.dtype)[:, None, :].expand(D, *x.shape)  # (D, B, D): tangent d is e_d at every point

    def push(v):
        return jvp(lambda z: peer.eps(z, t), (x,), (v,))

    out, out_dot = vmap(push)(units)  # (D, B, D) each
    return out[0], torch.einsum("dbd->b", out_dot)


def check_same_function(model, peer: TorchUNet, rng: np.random.Generator, n: int = 8) -> float:
    r"""Largest difference of eps (float64) between npdiff's model and the peer; asserts it is below 1e-5."""
    x = rng.standard_normal((n, model.dim))
    t = rng.uniform(0.01, 1.0, n)
    e_np = model.eps(x, t)
    with torch.no_grad():
        e_t = peer.eps(torch.from_numpy(x).to(torch.float64), torch.from_numpy(t).to(torch.float64)).numpy()
    err = float(np.abs(e_np - e_t).max())
    assert err < 1e-5 * max(1.0, float(np.abs(e_np).max())), \
        f"the PyTorch U-Net computes another function: max difference of eps {err:.2e}"
    return err
