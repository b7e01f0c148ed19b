r"""Samplers: ancestral DDPM and DDIM on the discrete chain, the probability-flow ODE and
the reverse SDE in continuous time. Each takes a denoiser (protocol of
:mod:`npdiff.denoiser`), an explicit ``np.random.Generator``, can record its trajectory
and reports its number of denoiser evaluations in a :class:`SampleResult`.
"""

from ._common import SampleResult
from .ancestral import ddim_sample, ddim_variance, ddpm_sample
from .ode import METHODS, flow_velocity, ode_encode, ode_sample, solve_flow
from .sde import sde_sample

__all__ = [
    "METHODS",
    "SampleResult",
    "ddim_sample",
    "ddim_variance",
    "ddpm_sample",
    "flow_velocity",
    "ode_encode",
    "ode_sample",
    "sde_sample",
    "solve_flow",
]
