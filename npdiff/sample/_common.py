r"""What every sampler shares: its result, the record of the states it visits and the last denoising step.

The checks at the samplers' doors live in :mod:`npdiff.sample._checks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..denoiser import Denoiser, call_eps
from ..parameterization import x0_from_eps


@dataclass
class SampleResult:
    r"""The outcome of a sampler.

    Attributes
    ----------
    x : (N, D) array
        The samples (the last state of the chain or flow).
    nfe : int
        The number of denoiser evaluations (each over the whole batch).
    trajectory : (K + 1, N, D) array or None
        The states visited, from noise to data, when recorded.
    times : (K + 1,) array or None
        The continuous time of each recorded state.
    """

    x: np.ndarray
    nfe: int
    trajectory: np.ndarray | None = None
    times: np.ndarray | None = field(default=None)


class Recorder:
    r"""Collects states and times when asked to; a no-op otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = bool(enabled)
        self.states: list[np.ndarray] = []
        self.times: list[float] = []

    def __call__(self, x: np.ndarray, t: float) -> None:
        if self.enabled:
            self.states.append(np.array(x, copy=True))
            self.times.append(float(t))

    def result(self, x: np.ndarray, nfe: int) -> SampleResult:
        if not self.enabled:
            return SampleResult(x=x, nfe=nfe)
        return SampleResult(x=x, nfe=nfe, trajectory=np.stack(self.states), times=np.asarray(self.times))


def tweedie(denoiser: Denoiser, x: np.ndarray, t: float) -> np.ndarray:
    r"""The last step of a continuous-time sampler: Tweedie's denoised mean, no noise added.

    .. math:: \hat x_0 = \frac{x - \sigma(t)\,\epsilon_\theta(x, t)}{\sqrt{\bar\alpha(t)}}

    (Ho et al. 2020, Eq. 15, in continuous time: the formula of the reverse step's
    :math:`\hat x_0`). ``x`` (B, D) and ``t`` already checked by the sampler. Returns (B, D).
    """
    s = denoiser.schedule
    return x0_from_eps(x, call_eps(denoiser, x, t), np.sqrt(s.alpha_bar(t)), s.sigma(t))
