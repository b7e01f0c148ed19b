r"""Likelihoods: the exact probability-flow ODE log-likelihood, the discrete variational
bound (with the few-step trajectory that minimizes it), the conversion of both to bits/dim of
K-level data, and bits/dim of images by both.
"""

from .dequantize import DIVERGED_RMS, DequantizedLikelihood, bin_log_volume, density_to_bpd, dequantize, dequantized_bpd
from .images import ImageBPD, image_bpd
from .ode import ODELikelihood, ode_log_likelihood
from .trajectory import BoundCosts, bound_costs, optimal_steps
from .vlb import VLBResult, vlb

__all__ = [
    "DIVERGED_RMS",
    "BoundCosts",
    "DequantizedLikelihood",
    "ImageBPD",
    "ODELikelihood",
    "VLBResult",
    "bin_log_volume",
    "bound_costs",
    "density_to_bpd",
    "dequantize",
    "dequantized_bpd",
    "image_bpd",
    "ode_log_likelihood",
    "optimal_steps",
    "vlb",
]
