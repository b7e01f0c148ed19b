r"""npdiff: diffusion models from scratch in NumPy.

Read the modules in this order: :mod:`npdiff.schedule` (the forward process in
continuous time and its discrete chains), :mod:`npdiff.gaussian` (densities, KL,
the discretized decoder), :mod:`npdiff.forward` (q(x_t|x_0), q(x_t|x_s) and the
closed-form posteriors), :mod:`npdiff.parameterization` (eps, x0, v and score),
:mod:`npdiff.denoiser` (the one protocol every model and oracle follows).
"""

from . import denoiser, forward, gaussian, parameterization, schedule
from .schedule import cosine, ddpm_linear, log_snr_linear, vp_linear

__version__ = "0.1.0"

__all__ = [
    "cosine",
    "ddpm_linear",
    "denoiser",
    "forward",
    "gaussian",
    "log_snr_linear",
    "parameterization",
    "schedule",
    "vp_linear",
]
