r"""The MLP denoiser, written and differentiated by hand.

Read in this order: :mod:`~npdiff.nn.activations` and :mod:`~npdiff.nn.embedding` (the
elementwise math, in NumPy), :mod:`~npdiff.nn.kernels` (the same math as fused Numba
kernels), :mod:`~npdiff.nn.mlp` (forward, backward, forward-mode Jacobian),
:mod:`~npdiff.nn.optim` (AdamW, clipping, EMA, learning-rate schedules) and
:mod:`~npdiff.nn.model` (the trained denoiser behind the protocol of :mod:`npdiff.denoiser`).
"""

from . import threads
from .mlp import MLP, PARAMETERIZATIONS, MLPConfig

__all__ = ["MLP", "PARAMETERIZATIONS", "MLPConfig", "threads"]
