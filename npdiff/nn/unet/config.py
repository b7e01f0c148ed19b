r"""What the U-Net is: its levels, the plan of its blocks, and the one flat vector its weights live in.

The default network, for the 8x8 digits (``UNetConfig()``: 1,383,713 parameters, and (C + 1) x 128 more for C labels)::

    x (B, 64) -> (B, 1, 8, 8)    conv_in 3x3, 1 -> 32
    level 0, 8x8, 32 channels    2 residual blocks                      push, push     down (avg pool)
    level 1, 4x4, 64 channels    2 x (residual block + attention)       push, push     down
    level 2, 2x2, 64 channels    2 x (residual block + attention)       push, push
    middle,  2x2                 residual block + attention + residual block
    level 2, 2x2                 2 x (concat skip, residual block + attention)         up (nearest)
    level 1, 4x4                 2 x (concat skip, residual block + attention)         up
    level 0, 8x8                 2 x (concat skip, residual block)
    out                          GroupNorm, SiLU, conv_out 3x3, 32 -> 1  -> (B, 64)

The time t enters as a sinusoidal embedding of ``time_scale * t`` (``emb_dim`` features,
:mod:`npdiff.nn.embedding`) through a two-layer MLP (dense, SiLU, dense) to ``time_dim`` features
(Ho et al. 2020, Appendix B); a conditional network (``num_classes`` C > 0) adds row y of a label
table (C + 1, time_dim) to it, row C being "no label" (classifier-free guidance, Ho & Salimans 2022).
Every residual block reads SiLU of that embedding as its scale and shift (:mod:`~npdiff.nn.unet.resblock`).
The down path saves the output of every residual (+ attention) block, and the up path concatenates
them back in reverse order (Ronneberger et al. 2015): ``num_res_blocks`` skips per level both ways, as
in lucidrains' denoising-diffusion-pytorch (ADM has one more block per level on the way up, which here
would cost 0.3 M parameters for the 8x8 images). GroupNorm with ``groups`` groups everywhere,
attention with ``heads`` heads at the resolutions in ``attention_resolutions``.

**The flat vector.** Every weight is a named view (:meth:`UNetConfig.views`) into one vector, in the
order of :attr:`UNetConfig.param_shapes`, so the optimizer updates all of them in one pass. Names read
``block.layer.array``: ``down1.res0.conv1.W`` (O, C, 3, 3) as PyTorch stores a ``Conv2d``,
``down1.attn0.qkv.W`` (3C, C) for a 1x1 convolution, ``time.0.W`` (in, out) for a dense layer as in
:mod:`npdiff.nn.mlp`, and ``labels`` (C + 1, time_dim) at the end of a conditional network.

**Initialization** (:meth:`UNetConfig.init_params`): PyTorch's default for every convolution and dense
layer (uniform in :math:`\pm 1/\sqrt{\mathrm{fan\_in}}`), GroupNorm's scale 1 and shift 0, the label table
standard normal (``nn.Embedding``), and ADM's zero initialization of the last convolution of every residual
branch, of every attention's output projection and of ``conv_out`` (Dhariwal & Nichol 2021's
``zero_module``): every block starts as the identity, and the network's output as 0.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..._check import as_flat_params, as_generator, as_labels
from ._validate import check_unet_config, check_unet_inputs, check_unet_widths

__all__ = ["UNetConfig", "block_params", "blocks_of"]

#: the arrays whose zero initialization makes every residual branch and the output start at 0
ZERO_INIT = (".conv2", ".proj", "out.conv")


def block_params(views: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    r"""The arrays of one block, named without ``prefix.``: ``block_params(views, "mid.res0")["conv1.W"]``."""
    n = len(prefix) + 1
    return {name[n:]: arr for name, arr in views.items() if name.startswith(prefix + ".")}


def blocks_of(views: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    r"""Every block's arrays at once, ``blocks_of(views)["mid.res0"] == block_params(views, "mid.res0")``.

    One pass over the names (a block is named by two parts, ``level.block``), where calling
    :func:`block_params` for each of the network's blocks scans all of them once per block.
    """
    table: dict[str, dict[str, np.ndarray]] = {}
    for name, arr in views.items():
        parts = name.split(".", 2)
        if len(parts) == 3:
            table.setdefault(f"{parts[0]}.{parts[1]}", {})[parts[2]] = arr
    return table


def _res_shapes(c: int, o: int, T: int) -> list[tuple[str, tuple[int, ...]]]:
    shapes = [("norm1.gamma", (c,)), ("norm1.beta", (c,)), ("conv1.W", (o, c, 3, 3)), ("conv1.b", (o,)),
              ("emb.W", (T, 2 * o)), ("emb.b", (2 * o,)), ("norm2.gamma", (o,)), ("norm2.beta", (o,)),
              ("conv2.W", (o, o, 3, 3)), ("conv2.b", (o,))]
    return shapes + ([("skip.W", (o, c)), ("skip.b", (o,))] if c != o else [])


def _attn_shapes(c: int) -> list[tuple[str, tuple[int, ...]]]:
    return [("norm.gamma", (c,)), ("norm.beta", (c,)), ("qkv.W", (3 * c, c)), ("qkv.b", (3 * c,)),
            ("proj.W", (c, c)), ("proj.b", (c,))]


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    r"""Architecture of the U-Net denoiser (module docstring).

    Attributes
    ----------
    image_size : height and width of the square images (8: the digits).
    channels : image channels (1: grey levels). The network's data dimension is ``channels * image_size**2``.
    widths : channels of each level, from the full resolution down; each level after the first halves it.
    num_res_blocks : residual blocks per level, on the way down and on the way up.
    attention_resolutions : the resolutions (in pixels) whose blocks are followed by self-attention.
    heads : attention heads; they must divide the channels of every attention layer.
    groups : GroupNorm groups; they must divide every normalized channel count.
    emb_dim : sinusoidal features of the time (even, >= 4).
    time_dim : width of the time (+ label) embedding every residual block reads.
    time_scale : the time embedding reads ``time_scale * t`` (1000: the DDPM step index).
    parameterization : what the network predicts: ``"eps"``, ``"x0"`` or ``"v"``.
    num_classes : C, the number of class labels (0: unconditional).
    """

    image_size: int = 8
    channels: int = 1
    widths: tuple[int, ...] = (32, 64, 64)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2)
    heads: int = 4
    groups: int = 8
    emb_dim: int = 32
    time_dim: int = 128
    time_scale: float = 1000.0
    parameterization: str = "eps"
    num_classes: int = 0

    def __post_init__(self) -> None:
        widths, attn = check_unet_config(self)
        object.__setattr__(self, "widths", widths)  # lists from JSON become the tuples the dataclass hashes
        object.__setattr__(self, "attention_resolutions", attn)
        steps = self.plan
        check_unet_widths([s[2] for s in steps if s[0] in ("res", "attn")] + [s[3] for s in steps if s[0] == "res"],
                          [s[2] for s in steps if s[0] == "attn"], self.groups, self.heads)

    @property
    def dim(self) -> int:
        r"""Data dimension D = channels x image_size^2: the length of a flattened image."""
        return self.channels * self.image_size ** 2

    # -- the plan: the blocks in the order the forward pass runs them ---------------------------------
    @property
    def plan(self) -> list[tuple]:
        r"""The steps between ``conv_in`` and the output head, in forward order.

        ``("res", name, c_in, c_out)``, ``("attn", name, c)``, ``("push", name, c)`` (save a skip),
        ``("cat", name, c_h, c_skip)`` (concatenate the last saved skip), ``("down", name, c)``, ``("up", name, c)``.
        """
        steps, skips = [], []
        c, size = self.widths[0], self.image_size
        for i, w in enumerate(self.widths):
            for j in range(self.num_res_blocks):
                steps.append(("res", f"down{i}.res{j}", c, w))
                c = w
                if size in self.attention_resolutions:
                    steps.append(("attn", f"down{i}.attn{j}", c))
                steps.append(("push", f"down{i}.skip{j}", c))
                skips.append(c)
            if i < len(self.widths) - 1:
                steps.append(("down", f"down{i}.pool", c))
                size //= 2
        steps += [("res", "mid.res0", c, c), ("attn", "mid.attn", c), ("res", "mid.res1", c, c)]
        for i in reversed(range(len(self.widths))):
            w = self.widths[i]
            for j in range(self.num_res_blocks):
                skip = skips.pop()
                steps.append(("cat", f"up{i}.cat{j}", c, skip))
                steps.append(("res", f"up{i}.res{j}", c + skip, w))
                c = w
                if size in self.attention_resolutions:
                    steps.append(("attn", f"up{i}.attn{j}", c))
            if i > 0:
                steps.append(("up", f"up{i}.upsample", c))
                size *= 2
        return steps

    # -- the flat parameter vector ----------------------------------------------------------------------
    @property
    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        r"""(name, shape) of every array in the flat vector, in its order (module docstring)."""
        T, w0 = self.time_dim, self.widths[0]
        shapes = [("time.0.W", (self.emb_dim, T)), ("time.0.b", (T,)), ("time.1.W", (T, T)), ("time.1.b", (T,)),
                  ("conv_in.W", (w0, self.channels, 3, 3)), ("conv_in.b", (w0,))]
        for step in self.plan:
            if step[0] == "res":
                shapes += [(f"{step[1]}.{n}", s) for n, s in _res_shapes(step[2], step[3], T)]
            elif step[0] == "attn":
                shapes += [(f"{step[1]}.{n}", s) for n, s in _attn_shapes(step[2])]
        shapes += [("out.norm.gamma", (w0,)), ("out.norm.beta", (w0,)), ("out.conv.W", (self.channels, w0, 3, 3)),
                   ("out.conv.b", (self.channels,))]
        if self.num_classes:
            shapes.append(("labels", (self.num_classes + 1, T)))
        return shapes

    @property
    def n_params(self) -> int:
        r"""Length of the flat parameter vector."""
        return sum(int(np.prod(s)) for _, s in self.param_shapes)

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        r"""Named views into ``flat`` (n_params,), one per entry of :attr:`param_shapes`."""
        out, start = {}, 0
        for name, shape in self.param_shapes:
            size = int(np.prod(shape))
            out[name] = flat[start:start + size].reshape(shape)
            start += size
        return out

    def flatten(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        r"""The inverse of :meth:`views`: one (n_params,) vector from arrays named as in :attr:`param_shapes`."""
        return np.concatenate([np.ravel(arrays[name]) for name, _ in self.param_shapes])

    def init_params(self, rng: np.random.Generator, dtype: type = np.float32) -> np.ndarray:
        r"""Initial weights (module docstring) as a (n_params,) vector of ``dtype``."""
        rng = as_generator(rng)
        flat = np.empty(self.n_params, dtype)
        views = self.views(flat)
        for name, arr in views.items():
            layer = name.rsplit(".", 1)[0]  # "down0.res0.conv1" of "down0.res0.conv1.W"
            if name == "labels":
                arr[...] = rng.standard_normal(arr.shape)
            elif layer.rsplit(".", 1)[-1].startswith("norm"):
                arr[...] = 1.0 if name.endswith(".gamma") else 0.0
            elif layer.endswith(ZERO_INIT):
                arr[...] = 0.0
            else:  # dense layers are stored (in, out), convolutions (out, in, ...)
                W = views[layer + ".W"]
                fan_in = W.shape[0] if layer.startswith("time") or layer.endswith(".emb") else int(np.prod(W.shape[1:]))
                bound = 1.0 / np.sqrt(fan_in)
                arr[...] = rng.uniform(-bound, bound, arr.shape)
        return flat

    # -- checks at the door -------------------------------------------------------------------------------
    def check_params(self, flat: object, name: str = "params") -> np.ndarray:
        r"""A finite float32 or float64 vector of length :attr:`n_params`, returned as is; else a clear error."""
        return as_flat_params(flat, self.n_params, name)

    def check_inputs(self, x: object, t: object) -> tuple[np.ndarray, np.ndarray]:
        r"""Flattened images x (B, D) and times t (B,) as float64."""
        return check_unet_inputs(x, t, self.dim)

    def check_labels(self, y: object, n: int) -> np.ndarray | None:
        r"""Labels for a batch of n images: None, or (n,) int64 in 0..C-1 (:func:`npdiff._check.as_labels`)."""
        return as_labels(y, n, self.num_classes)

    def label_index(self, y: np.ndarray | None, n: int) -> np.ndarray | None:
        r"""The label table's row for each of n images: the checked labels y, or C ("no label") for y = None; None if C = 0."""
        if not self.num_classes:
            return None
        return np.full(n, self.num_classes) if y is None else y

    # -- serialization -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        r"""A JSON-serializable dict (tuples as lists); :meth:`from_dict` inverts it."""
        d = dataclasses.asdict(self)
        d["widths"], d["attention_resolutions"] = list(self.widths), list(self.attention_resolutions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UNetConfig:
        r"""Rebuild a config; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(d, dict):
            raise TypeError(f"a U-Net config must be a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown U-Net config keys {unknown}")
        return cls(**d)
