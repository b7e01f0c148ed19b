r"""Samplers: ancestral DDPM and DDIM on the discrete chain, the probability-flow ODE and
the reverse SDE in continuous time, and few-step solvers of the flow (DPM-Solver,
DPM-Solver++, UniPC, EDM's Heun: ``fast_sample``) on shared time grids
(:mod:`npdiff.sample.grids`) or on step times chosen by GITS's dynamic programme (``dp_steps``) or by the exact KL
(:mod:`npdiff.sample.step_search`, imported by name: it needs :mod:`npdiff.likelihood`, which needs
this package). Each takes a denoiser (protocol of :mod:`npdiff.denoiser`),
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
from .step_dp import TeacherCosts, cheapest_path, dp_steps, teacher_costs
from .unipc import unipc

__all__ = [
    "DEFAULT_GRIDS",
    "FAST_SAMPLERS",
    "GRIDS",
    "METHODS",
    "SampleResult",
    "TeacherCosts",
    "cheapest_path",
    "ddim_sample",
    "ddim_variance",
    "ddpm_sample",
    "dp_steps",
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
    "teacher_costs",
    "time_grid",
    "unipc",
]
