r"""The MLP denoiser, written and differentiated by hand.

Read in this order: :mod:`~npdiff.nn.activations` and :mod:`~npdiff.nn.embedding` (the
elementwise math), :mod:`~npdiff.nn.config` (the architecture and the flat parameter vector),
:mod:`~npdiff.nn.mlp` (the reference: forward, backward and forward-mode Jacobian in plain
NumPy, each rule beside its forward), :mod:`~npdiff.nn.optim` (AdamW, clipping, EMA) and
:mod:`~npdiff.nn.model` (the trained denoiser behind the protocol of :mod:`npdiff.denoiser`, on
the base every network denoiser shares, :mod:`~npdiff.nn.network_denoiser`).
:mod:`npdiff.nn.fast` is the fast path the trainer, the samplers and the likelihood run: the
same network with fused Numba kernels and buffers, tested equal to the reference.

:mod:`npdiff.nn.unet` is the image denoiser: a convolutional U-Net with attention, each layer's
forward beside its backward and its tangent, behind the same protocol (:class:`DiffusionUNet`).
"""

from . import fast, mlp, unet
from .config import COORDS, MLPConfig
from .unet import DiffusionUNet, UNetConfig

__all__ = ["COORDS", "DiffusionUNet", "MLPConfig", "UNetConfig", "fast", "mlp", "unet"]
