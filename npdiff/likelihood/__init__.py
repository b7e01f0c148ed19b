r"""Likelihoods: the exact probability-flow ODE log-likelihood, the discrete variational
bound, and the conversion of both to bits/dim of K-level data.
"""

from .dequantize import DequantizedLikelihood, bin_log_volume, density_to_bpd, dequantize, dequantized_bpd
from .ode import ODELikelihood, ode_log_likelihood
from .vlb import VLBResult, vlb

__all__ = [
    "DequantizedLikelihood",
    "ODELikelihood",
    "VLBResult",
    "bin_log_volume",
    "density_to_bpd",
    "dequantize",
    "dequantized_bpd",
    "ode_log_likelihood",
    "vlb",
]
