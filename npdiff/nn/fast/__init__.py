r"""The fast path of the MLP: the reference network of :mod:`npdiff.nn.mlp`, computed for speed.

Read the reference first; this package computes the same numbers, and the tests hold it equal
to the reference to 1e-12 in float64. :mod:`~npdiff.nn.fast.kernels` fuses the elementwise work
between two matmuls into Numba kernels (each with its NumPy twin);
:mod:`~npdiff.nn.fast.network` runs the forward and backward passes on preallocated buffers
(training and sampling); :mod:`~npdiff.nn.fast.trace` computes the exact divergence by blocked,
fused forward mode (the likelihood), optionally on the worker threads of
:mod:`~npdiff.nn.fast.workers`. Nothing here validates its inputs.
"""

from . import workers
from .network import Buffers, FastMLP

__all__ = ["Buffers", "FastMLP", "workers"]
