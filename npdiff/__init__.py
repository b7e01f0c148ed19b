r"""npdiff: diffusion models from scratch in NumPy.

Read the modules in this order: :mod:`npdiff.schedule` (the forward process in
continuous time and its discrete chains), :mod:`npdiff.gaussian` (densities, KL,
the discretized decoder), :mod:`npdiff.forward` (q(x_t|x_0), q(x_t|x_s) and the
closed-form posteriors), :mod:`npdiff.parameterization` (eps, x0, v and score),
:mod:`npdiff.denoiser` (the one protocol every model and oracle follows),
:mod:`npdiff.analytic` (oracles whose scores and densities are closed-form),
:mod:`npdiff.data` (toy sets with their true densities), :mod:`npdiff.sample`
(DDPM, DDIM, probability-flow ODE, reverse SDE, few-step solvers), :mod:`npdiff.likelihood` (exact ODE
likelihood and the variational bound), :mod:`npdiff.metrics`, :mod:`npdiff.guidance`
(classifier-free and classifier guidance of conditional denoisers), and the hand-differentiated
MLP: :mod:`npdiff.nn`, :mod:`npdiff.train`, :mod:`npdiff.checkpoint`.
"""

from . import (
    analytic,
    checkpoint,
    data,
    denoiser,
    forward,
    gaussian,
    guidance,
    likelihood,
    metrics,
    nn,
    parameterization,
    sample,
    schedule,
    train,
)
from .schedule import cosine, ddpm_linear, log_snr_linear, vp_linear

__version__ = "0.1.0"

__all__ = [
    "analytic",
    "checkpoint",
    "cosine",
    "data",
    "ddpm_linear",
    "denoiser",
    "forward",
    "gaussian",
    "guidance",
    "likelihood",
    "log_snr_linear",
    "metrics",
    "nn",
    "parameterization",
    "sample",
    "schedule",
    "train",
    "vp_linear",
]
