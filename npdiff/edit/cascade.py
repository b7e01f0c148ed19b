r"""A two-stage cascade: a base model draws a low-resolution image, a super-resolution model draws the rest.

Cascaded diffusion (Ho et al. 2022, CDM; Saharia et al. 2022, SR3 and Imagen) factors an image's density as

.. math:: p(x_{8\times8}) = \int p_\theta(x_{8\times8} \mid z)\,p_\phi(z)\,dz,\qquad z = x_{4\times4},

a base model :math:`p_\phi` of the 4x4 image and a super-resolution model :math:`p_\theta` of the 8x8 image
given it. The super-resolution model is a conditional denoiser whose context is the low-resolution image,
noised at a level s and up-sampled, with s itself (:func:`npdiff.data.lowres.sr_context`): trained with
s drawn at random ("noise-conditioning augmentation", CDM Sec. 3), it is sampled at one small fixed s,
``aug_level``, so that it reads the base model's imperfect samples as it read noised true images in training.

The default ``aug_level`` is 0.05 on the VP-linear schedule (:math:`\sigma(s) \approx 0.17`, against the
low-resolution level spacing 2/64), a small level as CDM found best (CDM Sec. 4.2); larger s discards more of
what the base model drew. On the digits ``benchmarks/cascade.py`` measures s = 0, 0.05 and 0.2: the two small
levels are close and 0.2 is worse (``docs/measurements/cascade.md``).

Both stages run the ancestral DDPM chain (:func:`npdiff.sample.ddpm_sample`); the super-resolution model
reaches it through :class:`WithContext`, a denoiser of the plain protocol whose rows each carry their
context. Everything here speaks the protocol; the only thing asked of the super-resolution model beyond it is
``context_dim``, the width 4 d + 1 of its context for d low-resolution pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._check import as_generator
from ..data.lowres import sr_context
from ..denoiser import call_eps, call_eps_and_divergence, call_eps_jvp, call_eps_vjp, has_eps_jvp, has_eps_vjp
from ..sample import ddpm_sample
from ..threads import blas_threads
from ._validate import check_cascade, check_context_model, check_context_rows, check_upsample

__all__ = ["CascadeSample", "WithContext", "cascade_sample", "upsample"]

#: the augmentation level at sampling (module docstring)
AUG_LEVEL = 0.05


class WithContext:
    r"""A conditional denoiser with one context per row fixed: ``eps(x, t) = model.eps(x, t, context)``.

    The rows of x must be the rows of ``context`` (B, C), in order; samplers and the likelihood ODE, which
    call the whole batch at once, then see a denoiser of the plain protocol. The exact divergence, the JVP
    and the VJP are the model's with the context held fixed.

    Parameters
    ----------
    model : a conditional denoiser whose ``y`` is a context (B, C), with ``context_dim`` C.
    context : (B, C) one context per point.
    """

    def __init__(self, model: object, context: object) -> None:
        self.context = check_context_model(model, context)
        self.model = model
        self.schedule = model.schedule
        self.dim = getattr(model, "dim", None)

    def _rows(self, x: object) -> np.ndarray:
        return check_context_rows(x, self.dim, self.context.shape[0])

    def eps(self, x: object, t: float | np.ndarray) -> np.ndarray:
        r"""Predicted noise (B, D) of each row given its context."""
        x = self._rows(x)
        return call_eps(self.model, x, t, self.context)

    def eps_and_divergence(self, x: object, t: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r"""Predicted noise (B, D) and the exact divergence in x (B,), the context held fixed."""
        x = self._rows(x)
        return call_eps_and_divergence(self.model, x, t, self.context)

    @property
    def has_eps_jvp(self) -> bool:
        r"""Whether the model answers ``eps_jvp``."""
        return has_eps_jvp(self.model)

    @property
    def has_eps_vjp(self) -> bool:
        r"""Whether the model answers ``eps_vjp``."""
        return has_eps_vjp(self.model)

    def eps_jvp(self, x: object, t: float | np.ndarray, v: object) -> tuple[np.ndarray, np.ndarray]:
        r"""Predicted noise and :math:`(\partial\hat\epsilon/\partial x)\,v`, the context held fixed."""
        x = self._rows(x)
        return call_eps_jvp(self.model, x, t, v, self.context)

    def eps_vjp(self, x: object, t: float | np.ndarray, u: object) -> tuple[np.ndarray, np.ndarray]:
        r"""Predicted noise and :math:`u^\top\partial\hat\epsilon/\partial x`, the context held fixed."""
        x = self._rows(x)
        return call_eps_vjp(self.model, x, t, u, self.context)

    def __repr__(self) -> str:
        return f"WithContext({self.model!r}, {self.context.shape[0]} contexts)"


@dataclass
class CascadeSample:
    r"""What :func:`cascade_sample` returns.

    Attributes
    ----------
    x : (N, 4 d) the high-resolution samples.
    low : (N, d) the base model's low-resolution samples, clipped to [-1, 1], that conditioned them.
    nfe : denoiser evaluations, both stages together (each over the whole batch).
    """

    x: np.ndarray
    low: np.ndarray
    nfe: int


def _upsample(sr: object, low: np.ndarray, rng: np.random.Generator, aug_level: float, steps: int,
              progress: bool) -> tuple[np.ndarray, int]:
    s = np.full(low.shape[0], aug_level)  # (N,) one fixed level at sampling
    context = sr_context(low, s, rng.standard_normal(low.shape), sr.schedule)  # (N, 4 d + 1)
    res = ddpm_sample(WithContext(sr, context), low.shape[0], rng, steps=steps, progress=progress)
    return res.x, res.nfe


@blas_threads()
def upsample(sr: object, low_res: object, rng: np.random.Generator | int, *, aug_level: float = AUG_LEVEL,
             steps: int = 1000, progress: bool = False) -> np.ndarray:
    r"""Draw :math:`x \sim p_\theta(x \mid z)` for each low-resolution image z, by the ancestral DDPM chain.

    The context is :math:`[\mathrm{up}(z_s) \mid s]` at the fixed level s = ``aug_level``
    (:func:`npdiff.data.lowres.sr_context`; module docstring).

    Parameters
    ----------
    sr : the super-resolution model (a context-conditioned denoiser with ``context_dim`` = 4 d + 1).
    low_res : (N, d) low-resolution images in [-1, 1] (d = 16 for 4x4), or one (d,) image.
    rng : Generator (or int seed): the augmentation noise, then the chain's noise.
    aug_level : s in [0, ``sr.schedule.t_max``].
    steps : steps of the DDPM chain (of T = 1000).
    progress : a bar on stderr.

    Returns
    -------
    (N, 4 d) the high-resolution samples.
    """
    low, aug_level, steps = check_upsample(sr, low_res, aug_level, steps)
    return _upsample(sr, low, as_generator(rng), aug_level, steps, progress)[0]


@blas_threads()
def cascade_sample(base: object, sr: object, n: int, rng: np.random.Generator | int, *, aug_level: float = AUG_LEVEL,
                   steps: int = 1000, sr_steps: int | None = None, progress: bool = False) -> CascadeSample:
    r"""Sample the cascade: :math:`z \sim p_\phi` by the base model, then :math:`x \sim p_\theta(x \mid z)`.

    The base model's samples are clipped to [-1, 1], the range of the images it was trained on, before the
    super-resolution model reads them.

    Parameters
    ----------
    base : the low-resolution denoiser (dim d).
    sr : the super-resolution model (``context_dim`` = 4 d + 1).
    n : the number of samples.
    rng : Generator (or int seed): the base chain, then the augmentation noise, then the SR chain.
    aug_level : the fixed augmentation level s of :func:`upsample`.
    steps, sr_steps : DDPM steps of the base and the super-resolution chains (``sr_steps`` None: ``steps``).
    progress : bars on stderr.

    Returns
    -------
    :class:`CascadeSample` with ``x`` (n, 4 d), ``low`` (n, d) and ``nfe``.
    """
    n, aug_level, steps, sr_steps = check_cascade(base, sr, n, aug_level, steps, sr_steps)
    rng = as_generator(rng)
    base_res = ddpm_sample(base, n, rng, steps=steps, progress=progress)
    low = np.clip(base_res.x, -1.0, 1.0)  # (n, d)
    x, nfe = _upsample(sr, low, rng, aug_level, sr_steps, progress)
    return CascadeSample(x=x, low=low, nfe=base_res.nfe + nfe)
