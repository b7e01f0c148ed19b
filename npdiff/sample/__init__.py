r"""Samplers: ancestral DDPM and DDIM on the discrete chain, the probability-flow ODE and
the reverse SDE in continuous time, and few-step solvers of the flow (DPM-Solver,
DPM-Solver++, UniPC, EDM's Heun: ``fast_sample``) on shared time grids
(:mod:`npdiff.sample.grids`). Each takes a denoiser (protocol of :mod:`npdiff.denoiser`),
an explicit ``np.random.Generator``, can record its trajectory and reports its number of
denoiser evaluations in a :class:`SampleResult`.
"""

from ._common import SampleResult
from .ancestral import ddim_sample, ddim_variance, ddpm_sample
from .dpm_solver import dpm_solver_singlestep, dpmpp_multistep, singlestep_orders
from .edm import edm_heun
from .fast import DEFAULT_GRIDS, FAST_SAMPLERS, fast_sample
from .grids import GRIDS, time_grid
from .ode import METHODS, flow_velocity, ode_encode, ode_sample, solve_flow
from .sde import sde_sample
from .unipc import unipc

__all__ = [
    "DEFAULT_GRIDS",
    "FAST_SAMPLERS",
    "GRIDS",
    "METHODS",
    "SampleResult",
    "ddim_sample",
    "ddim_variance",
    "ddpm_sample",
    "dpm_solver_singlestep",
    "dpmpp_multistep",
    "edm_heun",
    "fast_sample",
    "flow_velocity",
    "ode_encode",
    "ode_sample",
    "sde_sample",
    "singlestep_orders",
    "solve_flow",
    "time_grid",
    "unipc",
]
