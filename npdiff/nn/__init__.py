r"""The MLP denoiser, written and differentiated by hand.

Read in this order: :mod:`~npdiff.nn.activations` and :mod:`~npdiff.nn.embedding` (the
elementwise math), :mod:`~npdiff.nn.config` (the architecture and the flat parameter vector),
:mod:`~npdiff.nn.mlp` (the reference: forward, backward and forward-mode Jacobian in plain
NumPy, each rule beside its forward), :mod:`~npdiff.nn.optim` (AdamW, clipping, EMA) and
:mod:`~npdiff.nn.model` (the trained denoiser behind the protocol of :mod:`npdiff.denoiser`).
:mod:`npdiff.nn.fast` is the fast path the trainer, the samplers and the likelihood run: the
same network with fused Numba kernels and buffers, tested equal to the reference.
"""

from . import fast, mlp
from .config import COORDS, MLPConfig

__all__ = ["COORDS", "MLPConfig", "fast", "mlp"]
