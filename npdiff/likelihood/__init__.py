r"""Likelihoods: the exact probability-flow ODE log-likelihood, the discrete variational
bound (with the few-step trajectory that minimizes it), the conversion of both to bits/dim of
K-level data (uniform or truncated-normal dequantization, importance-weighted over draws),
bits/dim of images by both, and the exact density of a deterministic sampler's samples with its
KL divergence to the data (with the sampler's exact Jacobian by tangents);
Hutchinson's random estimate of the divergence, by its own name, never in place of the exact one.
"""

from .dequantize import (
    DEQUANTIZATIONS,
    DIVERGED_RMS,
    DequantizedLikelihood,
    bin_log_volume,
    check_dequantization,
    density_to_bpd,
    dequantization_log_density,
    dequantize,
    dequantized_bpd,
    dequantized_vlb_bpd,
    truncated_normal_scale,
)
from .hutchinson import HutchinsonEstimate, hutchinson_divergence
from .images import ImageBPD, image_bpd
from .ode import ODELikelihood, ode_log_likelihood
from .sampler_density import (
    FastSampler,
    KLNotEstimableError,
    SamplerDensity,
    SamplerKL,
    SolverMap,
    TangentDenoiser,
    sampler_kl,
    sampler_log_density,
    sampler_log_density_at,
)
from .scoring import MeanSE, PointScores, mean_se, score_points
from .trajectory import BoundCosts, bound_costs, optimal_steps
from .vlb import VLBResult, bound_chain, vlb

__all__ = [
    "DIVERGED_RMS",
    "BoundCosts",
    "DequantizedLikelihood",
    "FastSampler",
    "HutchinsonEstimate",
    "ImageBPD",
    "KLNotEstimableError",
    "ODELikelihood",
    "SamplerDensity",
    "SamplerKL",
    "SolverMap",
    "TangentDenoiser",
    "VLBResult",
    "bin_log_volume",
    "bound_costs",
    "density_to_bpd",
    "dequantize",
    "dequantized_bpd",
    "hutchinson_divergence",
    "image_bpd",
    "ode_log_likelihood",
    "optimal_steps",
    "sampler_kl",
    "sampler_log_density",
    "sampler_log_density_at",
    "vlb",
]
__all__ += ["DEQUANTIZATIONS", "bound_chain", "check_dequantization", "dequantization_log_density", "dequantized_vlb_bpd",
            "truncated_normal_scale"]  # dequantization by a uniform or a truncated-normal noise, and the bound's chain
__all__ += ["MeanSE", "PointScores", "mean_se", "score_points"]  # scoring of points of a known density
