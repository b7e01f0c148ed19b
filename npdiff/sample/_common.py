r"""What every sampler shares: its result, the prior draw, the checks on its inputs and the last denoising step."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._check import as_batch, as_generator, positive_int
from ..denoiser import Denoiser, call_eps, check_denoiser
from ..parameterization import x0_from_eps


@dataclass
class SampleResult:
    r"""The outcome of a sampler.

    Attributes
    ----------
    x : (N, D) the samples (the last state of the chain or flow).
    nfe : number of denoiser evaluations (each over the whole batch).
    trajectory : (K + 1, N, D) the states visited, from noise to data, when recorded.
    times : (K + 1,) the continuous time of each recorded state.
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


def start(denoiser: object, n: object, rng: object, x_T: object | None) -> tuple[Denoiser, np.ndarray, np.random.Generator]:
    r"""Check the common arguments and return the starting noise :math:`x_T \sim \mathcal N(0, I)`, (N, D).

    ``x_T`` given explicitly (N, D) overrides ``n`` (then ``n`` may be None).
    """
    check_denoiser(denoiser)
    rng = as_generator(rng)
    dim = getattr(denoiser, "dim", None)
    if x_T is not None:
        x = as_batch(x_T, "x_T", dim=dim).copy()
        if n is not None and positive_int(n, "n") != x.shape[0]:
            raise ValueError(f"n must equal x_T.shape[0] when both are given, got n={n} and x_T of shape {x.shape}")
        return denoiser, x, rng  # type: ignore[return-value]
    n = positive_int(n, "n")
    if dim is None:
        raise ValueError("the denoiser has no .dim: pass the starting noise x_T of shape (n, D) explicitly")
    return denoiser, rng.standard_normal((n, int(dim))), rng  # type: ignore[return-value]


def check_finite(x: np.ndarray, where: str) -> np.ndarray:
    r"""Stop a run as soon as a state stops being finite, instead of returning garbage."""
    if not np.all(np.isfinite(x)):
        raise FloatingPointError(f"the sampler produced NaN or Inf values {where}; the denoiser or step size is unstable")
    return x


def tweedie(denoiser: Denoiser, x: np.ndarray, t: float) -> np.ndarray:
    r"""The last step of a continuous-time sampler: Tweedie's denoised mean, no noise added.

    .. math:: \hat x_0 = \frac{x - \sigma(t)\,\epsilon_\theta(x, t)}{\sqrt{\bar\alpha(t)}}

    (Ho et al. 2020, Eq. 15, in continuous time: the formula of the reverse step's
    :math:`\hat x_0`). ``x`` (B, D) and ``t`` already checked by the sampler. Returns (B, D).
    """
    s = denoiser.schedule
    return x0_from_eps(x, call_eps(denoiser, x, t), np.sqrt(s.alpha_bar(t)), s.sigma(t))
