r"""Checks of the U-Net's configuration, weights and inputs, so that the network modules read as the math."""

from __future__ import annotations

import numpy as np

from ..._check import as_batch, as_times, positive_int, real_scalar
from ...parameterization import PREDICTIONS

__all__ = ["check_unet_config", "check_unet_inputs", "check_unet_widths"]


def _tuple_of_ints(value: object, name: str, minimum: int) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not value:
        raise ValueError(f"{name} must be a non-empty tuple of integers, got {value!r}")
    return tuple(positive_int(v, f"{name}[{i}]", minimum=minimum) for i, v in enumerate(value))


def check_unet_config(config) -> tuple[tuple[int, ...], tuple[int, ...]]:
    r"""Check every field of a :class:`~npdiff.nn.unet.config.UNetConfig`; returns (widths, attention_resolutions) as tuples.

    An image size the levels cannot halve, or a channel count of any layer (:attr:`UNetConfig.norm_widths`)
    that the groups or the heads do not divide, is a ``ValueError`` naming the value.
    """
    size = positive_int(config.image_size, "image_size")
    positive_int(config.channels, "channels")
    widths = _tuple_of_ints(config.widths, "widths", 1)
    attn = _tuple_of_ints(config.attention_resolutions, "attention_resolutions", 1) \
        if config.attention_resolutions else ()
    positive_int(config.num_res_blocks, "num_res_blocks")
    positive_int(config.heads, "heads")
    positive_int(config.groups, "groups")
    positive_int(config.time_dim, "time_dim")
    positive_int(config.num_classes, "num_classes", minimum=0)
    positive_int(config.emb_dim, "emb_dim", minimum=4)
    if config.emb_dim % 2:
        raise ValueError(f"emb_dim must be even (half sines, half cosines), got {config.emb_dim}")
    halvings = len(widths) - 1
    if size % (2 ** halvings):
        raise ValueError(f"image_size {size} cannot be halved {halvings} times for the {len(widths)} levels of widths "
                         f"{widths}: it must be a multiple of {2 ** halvings}")
    resolutions = [size // 2 ** i for i in range(len(widths))]
    stray = [r for r in attn if r not in resolutions]
    if stray:
        raise ValueError(f"attention_resolutions {stray} are not resolutions of the levels {resolutions}")
    if not isinstance(config.parameterization, str) or config.parameterization not in PREDICTIONS:
        raise ValueError(f"parameterization must be one of {PREDICTIONS}, got {config.parameterization!r}")
    real_scalar(config.time_scale, "time_scale", lo=0.0, lo_open=True)
    return widths, attn


def check_unet_widths(norm_widths: list[int], attention_widths: list[int], groups: int, heads: int) -> None:
    r"""Every normalized channel count divisible by ``groups``, every attention width by ``heads``; else ``ValueError``."""
    for c in norm_widths:
        if c % groups:
            raise ValueError(f"groups = {groups} must divide every normalized channel count, got {c} channels "
                             f"(the layers normalize {sorted(set(norm_widths))})")
    for c in attention_widths:
        if c % heads:
            raise ValueError(f"heads = {heads} must divide the channels of every attention layer, got {c} channels")


def check_unet_inputs(x: object, t: object, dim: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Flattened images x (B, dim) and times t (a float or (B,)) as float64 arrays."""
    x = as_batch(x, "x", dim=dim)
    return x, as_times(t, x.shape[0])
